"""A procedural, licence-free demo head in FLAME's layout: :func:`demo_head`.

Units and axes follow FLAME: metres, +Y up, the face looks toward +Z, +X is the subject's left. The head
is a deformed sphere grid (skull ellipsoid + jaw + nose, brows, sockets, lips, ears) smoothly joined to a
neck cylinder, plus two eyeball spheres. Joints are FLAME's five: root, neck, jaw, left_eye, right_eye.

Jaw convention: opening the mouth is a *positive* rotation about +X at the jaw joint (pose[2] =
(+a, 0, 0)); it moves the chin down and back, like FLAME's jaw pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import regions
from ..mesh import embed_points, raycast, ring_grid_faces, smoothstep
from ..model import Rig
from .blendshapes import EXPRESSION_NAMES, expression_dirs, identity_dirs
from .landmarks import landmark_targets
from .layout import (
    EYE_CENTRE_XY,
    EYE_COLS,
    EYE_PROTRUSION,
    EYE_RADIUS,
    EYE_RINGS,
    FRONT_DENSITY,
    HEAD_CENTRE,
    JAW_AXIS_X,
    JAW_FORWARD,
    JAW_TARGET,
    JOINT_NAMES,
    MOUTH_BAND,
    MOUTH_HALF_WIDTH,
    MOUTH_SINK,
    MOUTH_Y,
    NECK_BLEND,
    NECK_BOTTOM,
    NECK_CENTRE_Z,
    NECK_RADII,
    NECK_TARGET,
    NOSE_TIP_Y,
    NUM_COLS,
    PARENTS,
    ROOT_TARGET,
    ROW_SPACING_ELSEWHERE,
    ROW_SPACING_FACE,
    SKULL_AXES_UP,
    SKULL_AXIS_Y_DOWN,
    SKULL_AXIS_Z_BACK,
)


@dataclass(frozen=True)
class HeadSurface:
    """The head+neck grid: a top pole, rings of ``NUM_COLS`` vertices each, a bottom pole."""

    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    ring: np.ndarray  # (V,) ring index of every vertex (-1 top pole, num_rings bottom pole)
    neckness: np.ndarray  # (V,) 0 on the head, 1 on the neck cylinder
    band_rings: tuple[int, ...]  # ring indices of the four mouth-band rows, top to bottom


@dataclass(frozen=True)
class DemoMesh:
    """The whole demo mesh (head+neck first, then the left and the right eyeball) with per-vertex tags."""

    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    eye_of: np.ndarray  # (V,) -1 on the head and neck, 0 on the left (+X) eyeball, 1 on the right one
    ring: np.ndarray  # (V,) head ring index as in HeadSurface.ring; -2 on the eyeballs
    neckness: np.ndarray  # (V,) 0 on the head, 1 on the neck cylinder, 0 on the eyeballs
    band_rings: tuple[int, ...]  # head rings of the mouth band, top to bottom
    eye_centres: np.ndarray  # (2, 3) left (+X) then right (-X)
    num_head_faces: int  # faces [0, num_head_faces) belong to the head and neck


def demo_head() -> Rig:
    """The built-in demo head: deterministic, procedural, free of any licence.

    Returns:
        A :class:`Rig` with about 4,900 vertices, FLAME's five joints, 12 identity components (in
        ``rigs.demo.blendshapes.IDENTITY_NAMES`` order), 12 named expressions (``jaw_open``, ``smile``,
        ``brow_raise``, ``blink``, ...), 68 iBUG-300W landmarks and per-face region labels (skin, eyes,
        mouth, hair, neck). ``posedirs`` are zero: pose correctives are left to the Blender side.
    """
    mesh = build_demo_mesh()
    is_eye = mesh.eye_of >= 0
    j_regressor = _joint_regressor(mesh)
    joints = j_regressor @ mesh.vertices
    lbs_weights = _skinning_weights(mesh, joints)
    face_regions = _face_regions(mesh)
    allowed = np.flatnonzero(np.isin(face_regions, (regions.SKIN, regions.MOUTH)))
    targets = landmark_targets(
        mesh.vertices, mesh.faces, allowed, mesh.ring, mesh.band_rings, mesh.eye_centres
    )
    landmark_faces, landmark_bary = embed_points(mesh.vertices, mesh.faces, targets, allowed)
    return Rig(
        name="rigstyle-demo-head",
        kind="demo",
        v_template=mesh.vertices,
        faces=mesh.faces,
        shapedirs=identity_dirs(mesh.vertices, mesh.neckness, mesh.eye_of, mesh.eye_centres),
        exprdirs=expression_dirs(mesh.vertices, is_eye, joints[JAW], lbs_weights[:, JAW]),
        posedirs=np.zeros(((len(JOINT_NAMES) - 1) * 9, mesh.vertices.size)),
        j_regressor=j_regressor,
        lbs_weights=lbs_weights,
        parents=PARENTS,
        joint_names=JOINT_NAMES,
        expression_names=EXPRESSION_NAMES,
        landmark_faces=landmark_faces,
        landmark_bary=landmark_bary,
        face_regions=face_regions,
    )


def build_demo_mesh() -> DemoMesh:
    """The head+neck surface with both eyeballs set into their sockets."""
    head = build_head_surface()
    eye_centres = _eye_centres(head)
    vertices, faces, eye_of = [head.vertices], [head.faces], [np.full(len(head.vertices), -1)]
    offset = len(head.vertices)
    for k, centre in enumerate(eye_centres):
        eye_vertices, eye_faces = eyeball(centre)
        vertices.append(eye_vertices)
        faces.append(eye_faces + offset)
        eye_of.append(np.full(len(eye_vertices), k))
        offset += len(eye_vertices)
    num_eye_vertices = offset - len(head.vertices)
    return DemoMesh(
        vertices=np.concatenate(vertices),
        faces=np.concatenate(faces),
        eye_of=np.concatenate(eye_of),
        ring=np.concatenate([head.ring, np.full(num_eye_vertices, -2)]),
        neckness=np.concatenate([head.neckness, np.zeros(num_eye_vertices)]),
        band_rings=head.band_rings,
        eye_centres=eye_centres,
        num_head_faces=len(head.faces),
    )


# --- head surface ----------------------------------------------------------------------------------------


def build_head_surface() -> HeadSurface:
    """The head+neck grid: rings of constant polar angle around ``HEAD_CENTRE``, poles at crown and cut."""
    phi = _column_angles()
    theta, band_rings = _ring_angles()
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    points, neck = _surface(th, ph)
    points = points + _face_features(points, th, ph)
    points = _shape_mouth_band(points, band_rings)
    top, top_neck = _surface(np.array([0.0]), np.array([0.0]))
    bottom, bottom_neck = _surface(np.array([np.pi]), np.array([0.0]))
    vertices = np.concatenate([top, points.reshape(-1, 3), bottom])
    num_rings = len(theta)
    ring = np.concatenate([[-1], np.repeat(np.arange(num_rings), NUM_COLS), [num_rings]])
    neckness = np.concatenate([top_neck, neck.reshape(-1), bottom_neck])
    faces = ring_grid_faces(num_rings, NUM_COLS)
    return HeadSurface(vertices, faces, ring, neckness, band_rings)


def _column_angles() -> np.ndarray:
    """Azimuths, 0 at the face (+Z) increasing toward +X, denser at the front, mirror-symmetric."""
    u = np.arange(NUM_COLS) * (2.0 * np.pi / NUM_COLS)
    return u - FRONT_DENSITY * np.sin(u)


def _directions(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    return np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)], axis=-1)


def _surface(theta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points of the featureless head+neck along rays from ``HEAD_CENTRE``, and their neckness (0..1)."""
    d = _directions(theta, phi)
    r_head = _head_radius(d)
    r_neck = _neck_radius(d)
    # Smooth maximum of the two radii: a fillet where neck and head meet; h is the neck's share.
    h = np.clip(0.5 + 0.5 * (r_neck - r_head) / NECK_BLEND, 0.0, 1.0)
    radius = r_head + (r_neck - r_head) * h + NECK_BLEND * h * (1.0 - h)
    return HEAD_CENTRE + radius[..., None] * d, h


def _head_radius(d: np.ndarray) -> np.ndarray:
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    down = np.clip(-dy, 0.0, 1.0)
    ax = SKULL_AXES_UP[0] + (JAW_AXIS_X - SKULL_AXES_UP[0]) * smoothstep(0.0, 0.85, down)
    ay = np.where(dy > 0, SKULL_AXES_UP[1], SKULL_AXIS_Y_DOWN)
    az = np.where(dz > 0, SKULL_AXES_UP[2], SKULL_AXIS_Z_BACK)
    radius = 1.0 / np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2 + (dz / az) ** 2)
    # The jaw: the lower front reaches further than the skull ellipsoid, then curls back under the chin.
    below = np.degrees(np.arcsin(np.clip(-dy, -1.0, 1.0)))  # angle below the horizontal
    rise = smoothstep(0.0, 56.0, below)
    fall = 1.0 - smoothstep(56.0, 80.0, below)
    front = np.clip(dz / np.sqrt(dx * dx + dz * dz + 1e-12), 0.0, 1.0) ** 2
    return radius + JAW_FORWARD * rise * fall * front


def _neck_radius(d: np.ndarray) -> np.ndarray:
    """Distance from ``HEAD_CENTRE`` to the neck cylinder (axis +Y, cut at ``NECK_BOTTOM``) along ``d``."""
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    rx, rz = NECK_RADII
    oz = HEAD_CENTRE[2] - NECK_CENTRE_Z
    a = (dx / rx) ** 2 + (dz / rz) ** 2
    b = 2.0 * oz * dz / rz**2
    c = (oz / rz) ** 2 - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        side = (-b + np.sqrt(b * b - 4.0 * a * c)) / (2.0 * a)
        cut = (NECK_BOTTOM - HEAD_CENTRE[1]) / dy
    side = np.where(a > 1e-12, side, np.inf)
    return np.where(dy < -1e-9, np.minimum(side, cut), 0.0)


def _ring_angles() -> tuple[np.ndarray, tuple[int, ...]]:
    """Polar angles of the rings: denser over the face, with four rings exactly on the mouth band."""
    theta = np.linspace(0.0, np.pi, 4001)
    profiles = [_surface(theta, np.full_like(theta, p))[0] for p in (0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi)]
    step = np.mean([np.linalg.norm(np.diff(p, axis=0), axis=1) for p in profiles], axis=0)
    front_y = profiles[0][:, 1]
    face = smoothstep(0.085, 0.07, front_y) * smoothstep(-0.115, -0.10, front_y)
    spacing = ROW_SPACING_ELSEWHERE + (ROW_SPACING_FACE - ROW_SPACING_ELSEWHERE) * face
    u = np.concatenate([[0.0], np.cumsum(step / (0.5 * (spacing[1:] + spacing[:-1])))])
    # Mouth-band rings: where the front midline crosses the band heights (y falls monotonically there).
    mid = (theta > 0.25 * np.pi) & (theta < 0.8 * np.pi)
    band_theta = [float(np.interp(-(MOUTH_Y + dy), -front_y[mid], theta[mid])) for dy in MOUTH_BAND]
    knots = [0.0, *np.interp(band_theta, theta, u), u[-1]]
    rings_u: list[float] = []
    for lo, hi in zip(knots[:-1], knots[1:], strict=True):
        n = max(1, int(round(hi - lo)))
        rings_u.extend(np.linspace(lo, hi, n + 1)[1:])
    rings_u = rings_u[:-1]  # the last knot is the bottom pole, not a ring
    ring_theta = np.interp(rings_u, u, theta)
    band = tuple(int(np.argmin(np.abs(ring_theta - t))) for t in band_theta)
    return ring_theta, band


def _face_features(points: np.ndarray, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Offsets that turn the smooth head into a face: brows, sockets, nose, cheeks, lips, chin, ears."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    ax = np.abs(x)
    d = _directions(theta, phi)
    front = smoothstep(0.2, 0.6, d[..., 2])
    dz = np.zeros_like(x)
    # Brow ridge and the two eye sockets under it.
    dz += 0.005 * _gauss(y - 0.051, 0.008) * _gauss(ax - 0.028, 0.026)
    dz -= 0.010 * _gauss(ax - EYE_CENTRE_XY[0], 0.016) * _gauss(y - EYE_CENTRE_XY[1], 0.010)
    # Nose: a ridge from the nasion to the tip with a steep underside, plus the two alae.
    ridge = np.where(
        y > NOSE_TIP_Y,
        smoothstep(0.052, NOSE_TIP_Y, y) ** 1.2,
        1.0 - smoothstep(NOSE_TIP_Y, -0.019, y),
    )
    width = 0.0055 + 0.0045 * smoothstep(0.03, NOSE_TIP_Y, y)
    dz += 0.023 * ridge * _gauss(x, width)
    dz += 0.009 * _gauss(ax - 0.013, 0.006) * _gauss(y + 0.011, 0.0055)
    # Cheekbones, lips and chin.
    dz += 0.004 * _gauss(ax - 0.045, 0.016) * _gauss(y - 0.004, 0.014)
    lips_x = np.exp(-((x / (MOUTH_HALF_WIDTH * 0.95)) ** 4))
    dz += 0.0045 * lips_x * _gauss(y - (MOUTH_Y + 0.0065), 0.0045)
    dz += 0.005 * lips_x * _gauss(y - (MOUTH_Y - 0.0075), 0.0055)
    dz += 0.006 * _gauss(x, 0.017) * _gauss(y + 0.080, 0.011)
    offsets = np.zeros_like(points)
    offsets[..., 2] = dz * front
    # Ears: flaps pushed out sideways on both sides.
    side = smoothstep(0.75, 0.92, np.abs(d[..., 0]))
    offsets[..., 0] = np.sign(x) * 0.011 * side * _gauss(y - 0.022, 0.02) * _gauss(z + 0.012, 0.012)
    return offsets


def _shape_mouth_band(points: np.ndarray, band_rings: tuple[int, ...]) -> np.ndarray:
    """Pinch the mouth-band rings together at the corners (a lens-shaped slit) and sink the middle ones."""
    points = points.copy()
    rows = points[list(band_rings)]  # (4, C, 3)
    x = rows[1, :, 0]
    centre_y = 0.5 * (rows[1, :, 1] + rows[2, :, 1])
    inside = np.clip(np.abs(x) / MOUTH_HALF_WIDTH, 0.0, 1.0)
    front = rows[1, :, 2] > HEAD_CENTRE[2]
    pinch = np.where(front, 1.0 - 0.85 * _gauss(np.abs(x) - MOUTH_HALF_WIDTH, 0.007), 1.0)
    depth = np.where(front & (np.abs(x) < MOUTH_HALF_WIDTH), np.cos(0.5 * np.pi * inside) ** 2, 0.0)
    for k, ring in enumerate(band_rings):
        offset = rows[k, :, 1] - centre_y
        points[ring, :, 1] = centre_y + offset * pinch
        sink = MOUTH_SINK if k in (1, 2) else 0.3 * MOUTH_SINK
        points[ring, :, 2] -= sink * depth
    return points


def _gauss(x: np.ndarray, sigma: float | np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * (x / sigma) ** 2)


# --- eyes ------------------------------------------------------------------------------------------------


def _eye_centres(head: HeadSurface) -> np.ndarray:
    """(2, 3) eyeball centres, left (+X) then right (-X), set so each eye pokes out of its socket."""
    x, y = EYE_CENTRE_XY
    origins = np.array([[x, y, 1.0], [-x, y, 1.0]])
    _, hits = raycast(head.vertices, head.faces, origins, np.tile([0.0, 0.0, -1.0], (2, 1)))
    centres = hits.copy()
    centres[:, 2] += EYE_PROTRUSION - EYE_RADIUS
    return centres


def eyeball(centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV sphere of radius ``EYE_RADIUS`` at ``centre``, its poles on the Z axis (pupil at +Z)."""
    theta = np.linspace(0.0, np.pi, EYE_RINGS + 2)[1:-1]
    phi = np.arange(EYE_COLS) * (2.0 * np.pi / EYE_COLS)
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    unit = np.concatenate([[[0.0, 1.0, 0.0]], _directions(th, ph).reshape(-1, 3), [[0.0, -1.0, 0.0]]])
    # Rotate +90 degrees about X so the +Y pole looks forward (+Z); a proper rotation keeps faces outward.
    unit = np.stack([unit[:, 0], -unit[:, 2], unit[:, 1]], axis=1)
    return centre + EYE_RADIUS * unit, ring_grid_faces(EYE_RINGS, EYE_COLS)


# --- labels, joints, weights -----------------------------------------------------------------------------

ROOT, NECK, JAW, LEFT_EYE, RIGHT_EYE = range(len(JOINT_NAMES))


def _face_regions(mesh: DemoMesh) -> np.ndarray:
    """(F,) labels: scalp above the hairline, neck, the mouth band, eyeballs; skin elsewhere."""
    faces = mesh.faces
    centroid = mesh.vertices[faces].mean(axis=1)
    x, y, z = centroid[:, 0], centroid[:, 1], centroid[:, 2]
    labels = np.full(len(faces), regions.SKIN, dtype=np.uint8)
    # Scalp: above a line from the upper forehead over the ears to the nape (the ears stay skin).
    hairline = np.interp(z, [-0.2, -0.11, -0.05, 0.0, 0.06, 0.2], [-0.06, -0.045, 0.035, 0.058, 0.083, 0.083])
    ear = (np.abs(x) > 0.06) & (np.hypot(y - 0.022, z + 0.012) < 0.03)
    labels[(y > hairline) & ~ear] = regions.HAIR
    labels[mesh.neckness[faces].mean(axis=1) > 0.5] = regions.NECK
    face_ring = mesh.ring[faces]
    in_band = (face_ring.min(axis=1) >= mesh.band_rings[0]) & (face_ring.max(axis=1) <= mesh.band_rings[-1])
    labels[in_band & (np.abs(x) < MOUTH_HALF_WIDTH) & (z > HEAD_CENTRE[2])] = regions.MOUTH
    labels[np.arange(len(faces)) >= mesh.num_head_faces] = regions.EYES
    return labels


def _joint_regressor(mesh: DemoMesh) -> np.ndarray:
    """(J, V) averaging weights: eyes over their eyeball, the others over skin around a target (y, z)."""
    regressor = np.zeros((len(JOINT_NAMES), len(mesh.vertices)))
    skin = mesh.eye_of < 0
    for joint, target in ((ROOT, ROOT_TARGET), (NECK, NECK_TARGET), (JAW, JAW_TARGET)):
        regressor[joint] = _side_average(mesh.vertices, skin, target)
    for joint, eye in ((LEFT_EYE, 0), (RIGHT_EYE, 1)):
        members = mesh.eye_of == eye
        regressor[joint, members] = 1.0 / members.sum()
    return regressor


def _side_average(
    vertices: np.ndarray, mask: np.ndarray, target: tuple[float, float], k: int = 16
) -> np.ndarray:
    """Weights over the ``k`` vertices on each side whose (y, z) is closest to ``target``.

    The mesh is mirror-symmetric in X, so equal Gaussian weights on both sides put the average at x = 0,
    inside the body, at about the target height and depth.
    """
    dist2 = (vertices[:, 1] - target[0]) ** 2 + (vertices[:, 2] - target[1]) ** 2
    weights = np.zeros(len(vertices))
    for side in (vertices[:, 0] > 1e-9, vertices[:, 0] < -1e-9):
        candidates = np.flatnonzero(side & mask)
        nearest = candidates[np.argsort(dist2[candidates], kind="stable")[:k]]
        weights[nearest] = np.exp(-dist2[nearest] / (2.0 * 0.004**2))
    return weights / weights.sum()


def _skinning_weights(mesh: DemoMesh, joints: np.ndarray) -> np.ndarray:
    """(V, J) weights: neck blends root to neck, head on neck, lower face on jaw, eyeballs rigid on eyes."""
    # Up the neck cylinder the weight moves from the root to the neck joint; the head itself (chin and
    # under-chin included, even below the neck joint's height) follows the neck joint fully.
    neck_part = smoothstep(0.2, 0.8, mesh.neckness)
    up_the_neck = smoothstep(joints[ROOT, 1] + 0.01, joints[NECK, 1] - 0.005, mesh.vertices[:, 1])
    along_neck = 1.0 - neck_part * (1.0 - up_the_neck)
    jaw = _jaw_share(mesh)
    weights = np.zeros((len(mesh.vertices), len(JOINT_NAMES)))
    weights[:, ROOT] = 1.0 - along_neck
    weights[:, NECK] = along_neck * (1.0 - jaw)
    weights[:, JAW] = along_neck * jaw
    for eye, joint in ((0, LEFT_EYE), (1, RIGHT_EYE)):
        weights[mesh.eye_of == eye] = np.eye(len(JOINT_NAMES))[joint]
    return weights


def _jaw_share(mesh: DemoMesh) -> np.ndarray:
    """(V,) share of the jaw: 1 below the lip line (chin, lower lip), a soft falloff up the cheeks and back
    toward the jaw hinge, 0 on the neck. Across the mouth the cut runs between the band's middle rings."""
    x, y, z = mesh.vertices[:, 0], mesh.vertices[:, 1], mesh.vertices[:, 2]
    upper, lower = (mesh.vertices[mesh.ring == r] for r in mesh.band_rings[1:3])  # column order
    band_middle = 0.5 * (upper[:, 1] + lower[:, 1])
    is_ring = mesh.ring >= 0
    column = np.zeros(len(mesh.vertices), dtype=int)
    column[is_ring] = np.arange(is_ring.sum()) % NUM_COLS
    cut = np.where(is_ring, band_middle[column], MOUTH_Y)
    # Sharp at the middle of the mouth, softening toward the corners (so they stay half-way and the mouth
    # opens as a lens) and further out over the cheeks.
    soft = 0.0004 + 0.02 * smoothstep(0.3 * MOUTH_HALF_WIDTH, MOUTH_HALF_WIDTH + 0.035, np.abs(x))
    below = smoothstep(cut + soft, cut - soft, y)
    front = smoothstep(JAW_TARGET[1] - 0.02, JAW_TARGET[1] + 0.02, z)
    return below * front * (1.0 - smoothstep(0.2, 0.6, mesh.neckness))
