"""Layout of the demo head (metres, FLAME axes: +Y up, face toward +Z, +X the subject's left)."""

from __future__ import annotations

import numpy as np

HEAD_CENTRE = np.array([0.0, 0.025, -0.015])  # centre of the skull ellipsoid
SKULL_AXES_UP = (0.076, 0.110, 0.094)  # x, y, z semi-axes of the upper front skull
SKULL_AXIS_Y_DOWN = 0.118  # y semi-axis below the centre
SKULL_AXIS_Z_BACK = 0.102  # z semi-axis behind the centre
JAW_AXIS_X = 0.058  # x semi-axis at the bottom of the head (the jaw is narrower than the skull)
JAW_FORWARD = 0.026  # how far the chin/jaw pushes the lower front forward and down
NECK_CENTRE_Z = -0.02  # z of the neck cylinder axis
NECK_RADII = (0.054, 0.052)  # x, z radii of the neck
NECK_BOTTOM = -0.175  # y of the neck cut
NECK_BLEND = 0.012  # fillet size where the neck meets the head

MOUTH_Y = -0.045  # lip line on the face midline
MOUTH_HALF_WIDTH = 0.025  # mouth corners at x = +-this
MOUTH_BAND = (0.002, 0.0005, -0.0005, -0.002)  # rows of the mouth band relative to MOUTH_Y
MOUTH_SINK = 0.007  # how deep the mouth band is sunk at the midline
EYE_CENTRE_XY = (0.032, 0.031)  # eyeball centres at x = +-0.032, y = 0.031
EYE_RADIUS = 0.012
EYE_PROTRUSION = 0.0035  # how far the eyeball front pokes out of the socket skin
NOSE_TIP_Y = -0.004
BROW_Y = 0.051  # brow ridge height
FACE_FRONT_Z = (0.005, 0.045)  # z range over which the face's expression/identity fields fade in
JAW_OPEN_ANGLE = 0.12  # radians of jaw rotation that the jaw_open expression approximates, linearised

JOINT_NAMES = ("root", "neck", "jaw", "left_eye", "right_eye")
PARENTS = np.array([-1, 0, 1, 1, 1], dtype=np.int64)
ROOT_TARGET = (-0.16, NECK_CENTRE_Z)  # (y, z) of the root joint: the neck base
NECK_TARGET = (-0.06, -0.028)  # (y, z) of the neck joint: top of the neck, below the skull
JAW_TARGET = (MOUTH_Y, -0.015)  # (y, z) of the jaw hinge: at lip height, between the ears

# --- tessellation ----------------------------------------------------------------------------------------
NUM_COLS = 72  # vertices per head ring
FRONT_DENSITY = 0.45  # 0: uniform columns; larger puts more columns on the face than the back
ROW_SPACING_FACE = 0.0048  # target row spacing over the face (front y in [-0.10, 0.07])
ROW_SPACING_ELSEWHERE = 0.011
EYE_RINGS, EYE_COLS = 9, 16
