"""Render the passes of a params-only request (rig parameters + camera) with pyrender, offscreen on EGL.

The passes follow Blender's (``blender_addon/render_passes.py``) for the same rig and camera:

- ``region``: exact labels per pixel. pyrender's segmentation mode draws without multisampling, so a pixel
  takes the label of the face under its centre, as Blender's one-sample, unfiltered region render does.
- ``landmarks2d``: the rig's landmarks projected with the OpenCV camera (pixel corners at 0).
- ``beauty``: a simple lit linear-RGB shading in the regions' base colours; not meant to match Cycles.

Cameras are OpenCV's (x right, y down, looking down +z); pyrender's are OpenGL's (y up, looking down -z).
pyrender's ``IntrinsicsCamera`` maps a camera-space point to the same window coordinates as the OpenCV
intrinsics do, and OpenGL samples pixel centres at +0.5, so only the axes need flipping.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rigs import Rig, RigError, RigOutput
from rigs.camera import project, transform
from rigs.mesh import face_normals
from rigs.regions import OTHER, REGION_COLORS

from ..protocol.passes import PARAM_SHAPES, FramePasses, PassError, check_array

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # headless; must be set before OpenGL is first imported
import pyrender  # noqa: E402

OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # flips y and z; its own inverse
BACKGROUND = (0.05, 0.05, 0.06)  # linear RGB, the demo scene's world colour
DISPLAY_GAMMA = 2.2  # pyrender's lit shader writes colour ** (1 / 2.2)
KEY_LIGHT = ((-0.5, 0.5, 0.8), 3.0)  # (direction towards the light in OpenGL camera space, intensity)
FILL_LIGHT = ((0.6, 0.0, 0.8), 1.0)
AMBIENT = 0.15  # ambient light level (pyrender scene ambient)
MAX_SIDE = 8192  # pixels; larger frames are refused before any allocation


class ParamRenderError(PassError, ValueError):
    """A params-only request that cannot be rendered; the message names the field."""


# All GL work runs on this one thread, in one offscreen renderer that is resized per frame: an EGL context
# can be current on one thread only (pyrender never releases it), and deleting one pyrender renderer
# terminates the EGL display that every other renderer shares.
_gl_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rigstyle-pyrender")
_renderer: list[pyrender.OffscreenRenderer] = []  # the renderer once made (on the GL thread only)


def render_passes(
    rig: Rig,
    params: dict[str, np.ndarray],
    intrinsics: np.ndarray,
    extrinsics: np.ndarray,
    size: tuple[int, int],
    shot: str,
    frame: int,
    world_from_rig: np.ndarray | None = None,
) -> FramePasses:
    """Pose ``rig`` with ``params`` and render its ``beauty`` and ``region`` passes and ``landmarks2d``.

    Args:
        rig: the rig the parameters refer to.
        params: any of ``betas`` (S,), ``expression`` (E,), ``pose`` (J, 3) and ``transl`` (3,); missing
            ones are zero, short ``betas``/``expression`` are zero-padded.
        intrinsics: (3, 3) pinhole matrix, no skew.
        extrinsics: (4, 4) world -> OpenCV camera transform.
        size: (height, width) in pixels.
        shot: shot id of the returned passes.
        frame: frame number of the returned passes.
        world_from_rig: (4, 4) placement of the rig's frame in the world (in Blender, the armature
            object's ``matrix_world``). None: identity.

    Returns:
        The frame's passes, with ``params`` as given (float32).

    Raises:
        ParamRenderError: a bad size, matrix or parameter (unknown name, wrong shape, NaN); it names it.
    """
    height, width = _check_size(size)
    intrinsic = _array("intrinsics", intrinsics, [3, 3])
    extrinsic = _array("extrinsics", extrinsics, [4, 4])
    placement = np.eye(4) if world_from_rig is None else _array("world_from_rig", world_from_rig, [4, 4])
    _check_pinhole(intrinsic)
    for name, matrix in (("extrinsics", extrinsic), ("world_from_rig", placement)):
        if not np.array_equal(matrix[3], [0.0, 0.0, 0.0, 1.0]):
            raise ParamRenderError(f"{name}: expected an affine transform, last row [0, 0, 0, 1]")
    posed = _forward(rig, params)
    camera_from_rig = extrinsic @ placement
    region, beauty = _rasterise(
        transform(camera_from_rig, posed.vertices), rig.faces, rig.face_regions, intrinsic, (height, width)
    )
    landmarks = project(transform(placement, posed.landmarks), intrinsic, extrinsic)
    try:
        return FramePasses(
            shot=shot,
            frame=frame,
            beauty=beauty,
            region=region,
            landmarks2d=landmarks.astype(np.float32),
            intrinsics=intrinsic,
            extrinsics=extrinsic,
            params=dict(params),
        )
    except PassError as exc:
        raise ParamRenderError(exc.message) from None


def front_camera(rig: Rig, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(3, 3) intrinsics and (4, 4) extrinsics of a square ``size`` px camera in front of the rig's face (at
    rest), the face filling the middle of the frame: brow to chin 80% of its height, a 50 mm lens."""
    focal = 50.0 / 36.0 * size
    intrinsics = np.array([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])
    landmarks = rig.forward().landmarks
    centre = landmarks.mean(axis=0)
    distance = focal * float(np.ptp(landmarks[:, 1])) / (0.8 * size)
    extrinsics = np.diag([1.0, -1.0, -1.0, 1.0])  # looks down world -Z at the face, which faces +Z
    extrinsics[:3, 3] = -extrinsics[:3, :3] @ (centre + [0.0, 0.0, distance])
    return intrinsics, extrinsics


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals of (V, 3) ``vertices`` and (F, 3) ``faces``."""
    normals = np.zeros_like(vertices)
    per_face = face_normals(vertices, faces)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], per_face)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-12)


def close_renderer() -> None:
    """Free the offscreen renderer and its GL context; the next render makes a new one."""
    _gl_thread.submit(_close).result()


def _rasterise(
    camera_vertices: np.ndarray,
    faces: np.ndarray,
    face_regions: np.ndarray,
    intrinsic: np.ndarray,
    size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) uint8 region labels and (H, W, 3) float32 linear beauty of a mesh in OpenCV camera space.

    Args:
        camera_vertices: (V, 3) vertices in OpenCV camera space.
        faces: (F, 3) triangles.
        face_regions: (F,) uint8 label per face.
        intrinsic: (3, 3) pinhole matrix.
        size: (height, width).
    """
    height, width = size
    depth = camera_vertices[:, 2]
    if not np.any(depth > 0):  # nothing in front of the camera
        background = np.broadcast_to(np.asarray(BACKGROUND, np.float32), (height, width, 3))
        return np.zeros((height, width), np.uint8), background.copy()
    scene, seg_node_map = _scene(transform(OPENGL_FROM_OPENCV, camera_vertices), faces, face_regions)
    znear, zfar = _clip_range(depth[depth > 0])
    camera = pyrender.IntrinsicsCamera(
        fx=intrinsic[0, 0], fy=intrinsic[1, 1], cx=intrinsic[0, 2], cy=intrinsic[1, 2], znear=znear, zfar=zfar
    )
    scene.add(camera, pose=np.eye(4))
    labels, color = _gl_thread.submit(_draw, scene, seg_node_map, (height, width)).result()
    region = np.ascontiguousarray(labels[..., 0], dtype=np.uint8)
    beauty = (color[..., :3].astype(np.float32) / 255.0) ** DISPLAY_GAMMA
    return region, beauty


def _scene(
    vertices: np.ndarray, faces: np.ndarray, face_regions: np.ndarray
) -> tuple[pyrender.Scene, dict[pyrender.Node, int]]:
    """A pyrender scene of (V, 3) OpenGL-camera-space ``vertices``: one node per region label, plus lights.

    Each node holds its faces both ways round: pyrender culls back faces (always, in segmentation mode),
    while Cycles shows both sides, e.g. the inside of the neck seen through its open end.
    """
    gamma_background = np.power(BACKGROUND, 1.0 / DISPLAY_GAMMA)  # the clear colour skips the shader's gamma
    scene = pyrender.Scene(bg_color=(*gamma_background, 1.0), ambient_light=(AMBIENT, AMBIENT, AMBIENT))
    positions = vertices.astype(np.float32)
    normals = vertex_normals(vertices, faces).astype(np.float32)
    seg_node_map = {}
    for label in np.unique(face_regions):
        own = faces[face_regions == label]
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=(*REGION_COLORS.get(int(label), REGION_COLORS[OTHER]), 1.0),
            metallicFactor=0.0,
            roughnessFactor=0.6,
        )
        primitive = pyrender.Primitive(
            positions=positions,
            normals=normals,
            indices=np.concatenate([own, own[:, ::-1]]).astype(np.uint32),
            material=material,
        )
        node = scene.add(pyrender.Mesh([primitive]))
        seg_node_map[node] = int(label)
    for direction, intensity in (KEY_LIGHT, FILL_LIGHT):
        light = pyrender.DirectionalLight(color=np.ones(3), intensity=intensity)
        scene.add(light, pose=_light_pose(np.asarray(direction, dtype=float)))
    return scene, seg_node_map


def _light_pose(towards_light: np.ndarray) -> np.ndarray:
    """(4, 4) pose of a directional light shining along ``-towards_light`` (3,) (lights shine down -z)."""
    z = towards_light / np.linalg.norm(towards_light)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    return pose


def _clip_range(depths: np.ndarray) -> tuple[float, float]:
    """(znear, zfar) that keep every positive vertex depth in (N,) ``depths`` inside the view volume."""
    zfar = 2.0 * float(depths.max())
    return max(0.5 * float(depths.min()), zfar * 1e-6), zfar


def _draw(
    scene: pyrender.Scene, seg_node_map: dict[pyrender.Node, int], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 segmentation and lit colour images of ``scene``; runs on the GL thread."""
    if not _renderer:
        _renderer.append(pyrender.OffscreenRenderer(size[1], size[0]))
    renderer = _renderer[0]
    renderer.viewport_height, renderer.viewport_width = size
    labels, _ = renderer.render(scene, pyrender.RenderFlags.SEG, seg_node_map)
    color, _ = renderer.render(scene)
    return labels, color


def _close() -> None:
    while _renderer:
        _renderer.pop().delete()


def _forward(rig: Rig, params: dict[str, np.ndarray]) -> RigOutput:
    unknown = sorted(set(params) - set(PARAM_SHAPES))
    if unknown:
        raise ParamRenderError(f"params: unknown parameters {unknown}; known: {sorted(PARAM_SHAPES)}")
    values = {name: _array(name, value, PARAM_SHAPES[name]) for name, value in params.items()}
    try:
        return rig.forward(
            values.get("betas"), values.get("expression"), values.get("pose"), values.get("transl")
        )
    except RigError as exc:
        raise ParamRenderError(str(exc)) from None


def _array(name: str, value: object, shape: list[int | None]) -> np.ndarray:
    try:
        return check_array(name, value, shape, "float64")
    except PassError as exc:
        raise ParamRenderError(exc.message) from None


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    sides = tuple(size) if isinstance(size, tuple | list) else ()
    if len(sides) != 2 or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in sides):
        raise ParamRenderError(f"size: expected (height, width) integers, got {size!r}")
    height, width = int(sides[0]), int(sides[1])
    if not (8 <= height <= MAX_SIDE and 8 <= width <= MAX_SIDE):
        raise ParamRenderError(f"size: height and width must lie in [8, {MAX_SIDE}], got {height}x{width}")
    return height, width


def _check_pinhole(intrinsic: np.ndarray) -> None:
    if intrinsic[0, 0] <= 0 or intrinsic[1, 1] <= 0:
        raise ParamRenderError("intrinsics: focal lengths [0, 0] and [1, 1] must be positive")
    if intrinsic[0, 1] != 0 or not np.array_equal(intrinsic[2], [0.0, 0.0, 1.0]) or intrinsic[1, 0] != 0:
        raise ParamRenderError("intrinsics: expected a pinhole matrix without skew, last row [0, 0, 1]")
