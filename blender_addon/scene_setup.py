"""Camera, lights, world and render settings for a rig shot."""

from __future__ import annotations

import math

import bpy
import numpy as np

from rigs import Rig

from .rig_builder import RigObjects

FACE_FRACTION = 0.35  # share of the frame height the face's landmarks span


def configure_render(scene: bpy.types.Scene, width: int, height: int, samples: int) -> None:
    """Cycles on the CPU at a small size, linear output, a neutral view transform."""
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 4
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    world = scene.world or bpy.data.worlds.new("RigStyle World")
    scene.world = world
    if world.node_tree is None:  # Blender < 5.0 creates worlds without nodes
        world.use_nodes = True
    background = world.node_tree.nodes.get("Background")
    background.inputs["Color"].default_value = (0.05, 0.05, 0.06, 1.0)
    background.inputs["Strength"].default_value = 1.0


def add_camera_and_lights(scene: bpy.types.Scene, rig: Rig, objects: RigObjects) -> bpy.types.Object:
    """A camera framing the rig's face from the front, plus a key and a fill area light."""
    world_from_rig = np.array(objects.armature.matrix_world, dtype=float)
    landmarks = rig.forward().landmarks
    target = world_from_rig[:3, :3] @ landmarks.mean(axis=0) + world_from_rig[:3, 3]
    face_height = float(np.ptp(landmarks[:, 1]))
    camera_data = bpy.data.cameras.new("RigStyle Camera")
    camera_data.lens = 50.0
    camera_data.sensor_width = 36.0
    camera_data.sensor_fit = "AUTO"
    half_fov = math.atan(camera_data.sensor_width / (2 * camera_data.lens))
    distance = face_height / (2 * FACE_FRACTION * math.tan(half_fov))
    camera = bpy.data.objects.new("RigStyle Camera", camera_data)
    camera.location = (target[0], target[1] - distance, target[2])
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)  # look along +Y, at the face
    scene.collection.objects.link(camera)
    scene.camera = camera
    for name, offset, energy in (("Key", (-0.4, -0.6, 0.35), 6.0), ("Fill", (0.5, -0.5, 0.1), 2.0)):
        light_data = bpy.data.lights.new(f"RigStyle {name}", "AREA")
        light_data.energy = energy
        light_data.size = 0.4
        light = bpy.data.objects.new(f"RigStyle {name}", light_data)
        light.location = tuple(target + np.array(offset) * distance / 0.7)
        direction = target - np.array(light.location)
        light.rotation_euler = _look_rotation(direction)
        scene.collection.objects.link(light)
    return camera


def _look_rotation(direction: np.ndarray) -> tuple[float, float, float]:
    import mathutils

    return tuple(mathutils.Vector(direction).to_track_quat("-Z", "Y").to_euler())
