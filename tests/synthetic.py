"""Synthetic CGI face frames and shots (passes, iBUG-68 landmarks, exact motion) for backend tests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from neural_backend.protocol.passes import FramePasses

SKIN_LINEAR = np.array([0.45, 0.25, 0.18], dtype=np.float32)
FACE_A, FACE_B = 48.0, 62.0  # face ellipse semi-axes (px): about 124 px tall in a 256 px frame


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2


def _canonical_landmarks() -> np.ndarray:
    """68 iBUG landmarks of the synthetic face, in face coordinates (origin at the face centre, y down)."""
    jaw_angles = np.linspace(np.pi, 0.0, 17)  # image left ear -> chin -> image right ear
    jaw = np.stack([FACE_A * 0.98 * np.cos(jaw_angles), 0.05 * FACE_B + FACE_B * 0.9 * np.sin(jaw_angles)], 1)
    brow_x = np.linspace(-34, -8, 5)
    brow_left = np.stack([brow_x, -26 - 4 * np.sin(np.linspace(0, np.pi, 5))], 1)
    brow_right = brow_left[::-1] * [-1, 1]
    nose_bridge = np.stack([np.zeros(4), np.linspace(-14, 8, 4)], 1)
    nostrils = np.stack([np.linspace(-8, 8, 5), 12 + 2 * np.cos(np.linspace(-1.2, 1.2, 5))], 1)

    def eye(cx: float) -> np.ndarray:
        t = np.array([np.pi, 2 * np.pi / 3, np.pi / 3, 0, -np.pi / 3, -2 * np.pi / 3])
        return np.stack([cx + 9 * np.cos(t), -12 - 4 * np.sin(t)], 1)

    t_outer = np.linspace(np.pi, -np.pi, 13)[:-1]
    mouth_outer = np.stack([18 * np.cos(t_outer), 30 - 6 * np.sin(t_outer)], 1)  # 48 = image-left corner
    t_inner = np.linspace(np.pi, -np.pi, 9)[:-1]
    mouth_inner = np.stack([12 * np.cos(t_inner), 30 - 2 * np.sin(t_inner)], 1)
    parts = [jaw, brow_left, brow_right, nose_bridge, nostrils, eye(-20), eye(20), mouth_outer, mouth_inner]
    landmarks = np.concatenate(parts).astype(np.float64)
    assert landmarks.shape == (68, 2)
    assert landmarks[48, 0] < landmarks[54, 0] and landmarks[36, 0] < landmarks[45, 0]  # iBUG sides
    return landmarks


def face_landmarks(size: int = 256) -> np.ndarray:
    """The synthetic face's 68 iBUG landmarks (float32 pixels) for a frontal face centred in a size² frame."""
    return (_canonical_landmarks() * (size / 256) + size / 2).astype(np.float32)


def synthetic_face(
    frame: int = 0,
    shift: tuple[float, float] = (0.0, 0.0),
    angle_deg: float = 0.0,
    size: int = 256,
    scale: float = 1.0,
    skin: np.ndarray = SKIN_LINEAR,
    mouth_open: float = 5.0,
    noise: float = 0.0,
    shot: str = "synthetic",
) -> FramePasses:
    """A shaded skin ellipse with eyes, mouth, hair cap, neck and background, plus plausible landmarks.

    The face is about ``124 * scale`` pixels tall, centred at the frame centre + ``shift``, rotated by
    ``angle_deg`` (clockwise on screen). ``mouth_open`` is the mouth's half height in face pixels (an
    expression); ``noise`` the standard deviation of per-pixel Gaussian render noise (seeded by ``frame``,
    like a path tracer's sampling noise, different every frame).
    """
    theta = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = np.array([size / 2 + shift[0], size / 2 + shift[1]])
    ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    local = (np.stack([xs, ys], -1) - centre) @ rot / scale  # frame -> face coordinates
    x, y = local[..., 0], local[..., 1]

    region = np.zeros((size, size), np.uint8)
    beauty = np.empty((size, size, 3), np.float32)
    beauty[:] = np.stack([0.08 + 0.06 * ys / size, 0.1 + 0.02 * xs / size, 0.14 + 0.0 * xs], -1)
    neck = (np.abs(x) < 26) & (y > 20)
    region[neck] = 5
    beauty[neck] = skin * 0.6
    face = _ellipse(x, y, 0, 0, FACE_A, FACE_B) <= 1
    region[face] = 1
    # Lambert shading of an ellipsoid plus a slow warm/cool variation, like a CGI skin render.
    nx, ny = np.clip(x / FACE_A, -1, 1), np.clip(y / FACE_B, -1, 1)
    nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
    light = np.array([-0.35, -0.45, 0.82])
    shade = 0.35 + 0.75 * np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, 1)
    tint = 1 + 0.08 * np.sin(x / 17.0)[..., None] * np.array([1.0, -0.5, -0.5])
    skin_rgb = (skin * shade[..., None] * tint).astype(np.float32)
    beauty[face] = skin_rgb[face]
    hair = (_ellipse(x, y, 0, -6, FACE_A + 7, FACE_B + 10) <= 1) & (y < -0.55 * FACE_B)
    region[hair] = 4
    beauty[hair] = [0.05, 0.03, 0.02]
    for cx in (-20.0, 20.0):
        eye = _ellipse(x, y, cx, -12, 9, 4.5) <= 1
        region[eye] = 2
        beauty[eye] = [0.55, 0.55, 0.52]
        beauty[eye & (_ellipse(x, y, cx, -12, 3.5, 3.5) <= 1)] = [0.03, 0.02, 0.02]
    mouth = _ellipse(x, y, 0, 30, 17, mouth_open) <= 1
    region[mouth] = 3
    beauty[mouth] = [0.15, 0.03, 0.03]
    if noise > 0:
        grain = np.random.default_rng(1000 + frame).normal(0.0, noise, beauty.shape).astype(np.float32)
        beauty = np.clip(beauty + grain, 0.0, None)

    landmarks = scale * _canonical_landmarks() @ rot.T + centre
    intrinsics = np.array([[300.0, 0, size / 2], [0, 300.0, size / 2], [0, 0, 1]])
    return FramePasses(
        shot=shot,
        frame=frame,
        beauty=beauty,
        region=region,
        landmarks2d=landmarks.astype(np.float32),
        intrinsics=intrinsics,
        extrinsics=np.eye(4),
    )


def _shot_pose(t: float) -> tuple[tuple[float, float], float, float]:
    """Shift (px), angle (degrees) and mouth opening of the synthetic shot at time ``t`` (frames)."""
    shift = (-14.0 + 3.5 * t, 4.0 * np.sin(0.5 * t))
    return shift, 6.0 * np.sin(0.35 * t), 5.0 + 2.5 * np.sin(0.8 * t)


def rigid_motion(
    size: int,
    region: np.ndarray,
    now: tuple[tuple[float, float], float],
    before: tuple[tuple[float, float], float],
) -> np.ndarray:
    """Exact pixel flow to the previous frame for :func:`synthetic_face` frames of one moving face.

    Everything but the background (region 0, which is static) moves rigidly with the face: a pixel centre
    p at pose ``now`` = (shift, angle) shows the face point that sat at ``before``'s pose transform of the
    same face coordinates.

    Returns:
        (size, size, 2) float32 flow: p + flow[p] is where p's content was in the previous frame.
    """
    ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    p = np.stack([xs, ys], -1)

    def pose(shift: tuple[float, float], angle: float) -> tuple[np.ndarray, np.ndarray]:
        theta = np.deg2rad(angle)
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        return np.array([size / 2 + shift[0], size / 2 + shift[1]]), rot

    centre, rot = pose(*now)
    centre_before, rot_before = pose(*before)
    local = (p - centre) @ rot  # face coordinates, as synthetic_face computes them
    q = local @ rot_before.T + centre_before
    flow = (q - p) * (region != 0)[..., None]
    return flow.astype(np.float32)


def synthetic_shot(
    frames: int = 8, size: int = 128, noise: float = 0.02, shot: str = "moving"
) -> list[FramePasses]:
    """A moving, talking synthetic face: translation, rotation and mouth opening change every frame; each
    frame carries per-frame render noise and the exact ``motion`` pass (flow to the previous frame)."""
    scale = size / 256
    result = []
    for t in range(frames):
        shift, angle, mouth = _shot_pose(float(t))
        shift_px = (shift[0] * scale, shift[1] * scale)
        passes = synthetic_face(t, shift_px, angle, size, scale, mouth_open=mouth, noise=noise, shot=shot)
        before_shift, before_angle, _ = _shot_pose(t - 1.0)
        motion = rigid_motion(
            size,
            passes.region,
            (shift_px, angle),
            ((before_shift[0] * scale, before_shift[1] * scale), before_angle),
        )
        result.append(replace(passes, extra={"motion": motion}))
    return result
