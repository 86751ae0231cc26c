"""The rig data model: an immutable :class:`Rig` (FLAME-style arrays) and its :meth:`Rig.forward` pass."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import RigError, assert_shape
from .landmarks import dynamic_landmark_row
from .lbs import barycentric_points, blend_shapes, check_parents, lbs, rodrigues
from .regions import REGION_NAMES

# Field name -> (dtype, symbolic shape). Symbols: V vertices, F faces, S betas, E expressions, J joints,
# L landmarks, P = (J - 1) * 9 pose-corrective features, V3 = V * 3, H = 3 * joints per hand, K hand PCA
# components, Y head-yaw rows and D contour landmarks of the dynamic landmark table. Order matters: a symbol
# is bound by the first field that uses it.
_ARRAY_FIELDS: dict[str, tuple[type, tuple[str | int, ...]]] = {
    "v_template": (np.float64, ("V", 3)),
    "faces": (np.int64, ("F", 3)),
    "shapedirs": (np.float64, ("V", 3, "S")),
    "exprdirs": (np.float64, ("V", 3, "E")),
    "parents": (np.int64, ("J",)),
    "posedirs": (np.float64, ("P", "V3")),
    "j_regressor": (np.float64, ("J", "V")),
    "lbs_weights": (np.float64, ("V", "J")),
    "landmark_faces": (np.int64, ("L",)),
    "landmark_bary": (np.float64, ("L", 3)),
    "face_regions": (np.uint8, ("F",)),
    "hand_mean": (np.float64, (2, "H")),
    "hand_components": (np.float64, (2, "K", "H")),
    "dynamic_landmark_faces": (np.int64, ("Y", "D")),
    "dynamic_landmark_bary": (np.float64, ("Y", "D", 3)),
}
_STRING_FIELDS = ("name", "kind", "gender")
_WEIGHT_SUM_TOL = 1e-3  # skinning weight rows and barycentrics must sum to 1 within this


@dataclass(frozen=True)
class RigOutput:
    """Result of :meth:`Rig.forward`."""

    vertices: np.ndarray  # (V, 3) posed vertices, metres
    joints: np.ndarray  # (J, 3) posed joint positions
    landmarks: np.ndarray  # (L, 3) posed landmark positions


@dataclass(frozen=True, eq=False)
class Rig:
    """A parametric head/body model in FLAME's conventions (metres, Y up, face toward +Z).

    Arrays are validated, converted to the dtypes below and stored read-only. The fields after
    ``face_regions`` are optional: official FLAME / SMPL-X files fill them (see :func:`rigs.load`).
    """

    name: str  # human-readable model name
    v_template: np.ndarray  # (V, 3) float64 rest vertices
    faces: np.ndarray  # (F, 3) int64 triangles, counter-clockwise seen from outside
    shapedirs: np.ndarray  # (V, 3, S) float64 identity blendshapes (betas)
    exprdirs: np.ndarray  # (V, 3, E) float64 expression blendshapes
    posedirs: np.ndarray  # (P, V * 3) float64 pose correctives, P = (J - 1) * 9
    j_regressor: np.ndarray  # (J, V) float64 joint regressor
    lbs_weights: np.ndarray  # (V, J) float64 skinning weights, rows sum to 1
    parents: np.ndarray  # (J,) int64, parents[0] == -1, parents[j] < j
    joint_names: tuple[str, ...]  # (J,) joint names
    expression_names: tuple[str, ...]  # (E,) expression blendshape names
    landmark_faces: np.ndarray  # (L,) int64 face of every landmark
    landmark_bary: np.ndarray  # (L, 3) float64 barycentric coordinates of every landmark
    face_regions: np.ndarray  # (F,) uint8 region label per face, see rigs.regions
    kind: str = "custom"  # model family: "flame", "smplx", "demo" or "custom"
    gender: str = "neutral"  # "neutral", "male" or "female" (as the model file says)
    hand_mean: np.ndarray = field(default_factory=lambda: np.zeros((2, 0)))  # (2, H) mean hand pose, L/R
    hand_components: np.ndarray = field(  # (2, K, H) hand pose PCA basis (rows), left then right
        default_factory=lambda: np.zeros((2, 0, 0))
    )
    dynamic_landmark_faces: np.ndarray = field(  # (Y, D) int64 contour landmark faces per head-yaw row
        default_factory=lambda: np.zeros((0, 0), dtype=np.int64)
    )
    dynamic_landmark_bary: np.ndarray = field(  # (Y, D, 3) float64 their barycentric coordinates
        default_factory=lambda: np.zeros((0, 0, 3))
    )
    dynamic_landmark_chain: tuple[int, ...] = ()  # joints whose rotations give the head yaw, child first

    def __post_init__(self) -> None:
        for name in _STRING_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise RigError(f"{name}: expected a non-empty string, got {value!r}")
        dims: dict[str, int] = {}
        for name, (dtype, spec) in _ARRAY_FIELDS.items():
            array = _coerce_field(name, getattr(self, name), dtype)
            expected = _bind_dims(spec, np.shape(array), dims)
            assert_shape(name, array, expected)
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        for name, count in (("joint_names", dims["J"]), ("expression_names", dims["E"])):
            names = tuple(getattr(self, name))
            if not all(isinstance(n, str) for n in names) or len(names) != count:
                raise RigError(f"{name}: expected {count} strings, got {list(names)!r}")
            object.__setattr__(self, name, names)
        chain = self.dynamic_landmark_chain
        if not all(isinstance(j, int | np.integer) and 0 <= j < dims["J"] for j in chain):
            raise RigError(
                f"dynamic_landmark_chain: expected joint indices in [0, {dims['J']}), got {chain!r}"
            )
        object.__setattr__(self, "dynamic_landmark_chain", tuple(int(j) for j in chain))
        _check_contents(self)

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.parents.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def num_expressions(self) -> int:
        return int(self.exprdirs.shape[2])

    @property
    def shape_components(self) -> int:
        """Number of identity (shape) components, the same as :attr:`num_betas`."""
        return self.num_betas

    @property
    def expression_components(self) -> int:
        """Number of expression components, the same as :attr:`num_expressions`."""
        return self.num_expressions

    @property
    def num_hand_components(self) -> int:
        """Number of hand pose PCA components per hand (0: the rig has no hand PCA)."""
        return int(self.hand_components.shape[1])

    @property
    def num_landmarks(self) -> int:
        """Number of static landmarks (``forward().landmarks`` without dynamic ones)."""
        return int(self.landmark_faces.shape[0])

    @property
    def num_dynamic_landmarks(self) -> int:
        """Number of contour landmarks added by ``forward(dynamic_landmarks=True)`` (0: none)."""
        return int(self.dynamic_landmark_faces.shape[1]) if self.dynamic_landmark_faces.shape[0] else 0

    @property
    def rest_joints(self) -> np.ndarray:
        """(J, 3) joint positions of the template at rest."""
        return self.j_regressor @ self.v_template

    def forward(
        self,
        betas: np.ndarray | None = None,
        expression: np.ndarray | None = None,
        pose: np.ndarray | None = None,
        transl: np.ndarray | None = None,
        *,
        dynamic_landmarks: bool = False,
    ) -> RigOutput:
        """Shape, express, pose and place the rig.

        Args:
            betas: (S,) identity coefficients, or fewer (the rest are zero). None: all zero.
            expression: (E,) expression coefficients, or fewer (the rest are zero). None: all zero.
            pose: (J, 3) axis-angle per joint relative to its parent (also accepted flat, (J * 3,)).
                None: rest pose.
            transl: (3,) global translation. None: no translation.
            dynamic_landmarks: also return the contour landmarks chosen by head yaw (smplx's
                ``use_face_contour``), appended after the static ones: (L + D, 3) landmarks.

        Returns:
            The posed vertices, joints and landmarks.

        Raises:
            RigError: a parameter has the wrong shape or contains NaN/inf, or dynamic landmarks were asked
                of a rig without a dynamic landmark table; the message names it.
        """
        num_joints = self.num_joints
        betas = _coefficients("betas", betas, self.num_betas)
        expression = _coefficients("expression", expression, self.num_expressions)
        pose = _parameter("pose", pose, (num_joints, 3), flat_ok=True)
        transl = _parameter("transl", transl, (3,))
        v_shaped = (
            self.v_template + blend_shapes(betas, self.shapedirs) + blend_shapes(expression, self.exprdirs)
        )
        vertices, joints = lbs(
            v_shaped, pose, self.posedirs, self.j_regressor, self.parents, self.lbs_weights
        )
        # Landmarks before translating, as smplx does: barycentrics that sum to 1 only to file precision
        # then move exactly with the mesh.
        landmarks = barycentric_points(vertices, self.faces, self.landmark_faces, self.landmark_bary)
        if dynamic_landmarks:
            landmarks = np.concatenate([landmarks, self._dynamic_landmarks(vertices, pose)])
        return RigOutput(vertices=vertices + transl, joints=joints + transl, landmarks=landmarks + transl)

    def _dynamic_landmarks(self, vertices: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """(D, 3) contour landmarks of the posed ``vertices`` for the head yaw of ``pose`` (J, 3)."""
        if self.num_dynamic_landmarks == 0:
            raise RigError("dynamic_landmarks: this rig has no dynamic landmark embedding")
        head = np.eye(3)
        for rot in rodrigues(pose[list(self.dynamic_landmark_chain)]):
            head = rot @ head
        row = dynamic_landmark_row(head, self.dynamic_landmark_faces.shape[0])
        return barycentric_points(
            vertices, self.faces, self.dynamic_landmark_faces[row], self.dynamic_landmark_bary[row]
        )


def _coerce_field(field: str, value: object, dtype: type) -> np.ndarray:
    array = np.asarray(value)
    if np.issubdtype(dtype, np.integer):
        if not np.issubdtype(array.dtype, np.integer):
            raise RigError(f"{field}: expected an integer array, got dtype {array.dtype}")
        if array.size and (array.min() < np.iinfo(dtype).min or array.max() > np.iinfo(dtype).max):
            raise RigError(f"{field}: values out of range for {np.dtype(dtype).name}")
    elif not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise RigError(f"{field}: expected a float array, got dtype {array.dtype}")
    array = np.array(array, dtype=dtype, copy=True)
    if np.issubdtype(dtype, np.floating) and not np.all(np.isfinite(array)):
        raise RigError(f"{field}: contains NaN or inf")
    return array


def _bind_dims(spec: tuple[str | int, ...], shape: tuple[int, ...], dims: dict[str, int]) -> list[int | None]:
    """Resolve a symbolic shape, binding unknown symbols from ``shape`` (the first field using one)."""
    expected: list[int | None] = []
    for axis, symbol in enumerate(spec):
        if isinstance(symbol, int):
            expected.append(symbol)
            continue
        if symbol not in dims and axis < len(shape):
            dims[symbol] = shape[axis]
            if symbol == "V":
                dims["V3"] = shape[axis] * 3
            if symbol == "J":
                dims["P"] = (shape[axis] - 1) * 9
        expected.append(dims.get(symbol))
    return expected


def _check_contents(rig: Rig) -> None:
    """Index ranges, tree order and weight sums (shapes are already checked)."""
    num_verts, num_faces = rig.num_vertices, rig.faces.shape[0]
    if rig.faces.size and (rig.faces.min() < 0 or rig.faces.max() >= num_verts):
        raise RigError(
            f"faces: vertex indices must lie in [0, {num_verts}), got [{rig.faces.min()}, {rig.faces.max()}]"
        )
    check_parents(rig.parents)
    lm = rig.landmark_faces
    if lm.size and (lm.min() < 0 or lm.max() >= num_faces):
        raise RigError(
            f"landmark_faces: face indices must lie in [0, {num_faces}), got [{lm.min()}, {lm.max()}]"
        )
    unknown = sorted(set(np.unique(rig.face_regions).tolist()) - set(REGION_NAMES))
    if unknown:
        raise RigError(
            f"face_regions: unknown region labels {unknown}, expected keys of rigs.regions.REGION_NAMES"
        )
    dyn = rig.dynamic_landmark_faces
    if dyn.size and (dyn.min() < 0 or dyn.max() >= num_faces):
        raise RigError(
            f"dynamic_landmark_faces: face indices must lie in [0, {num_faces}), "
            f"got [{dyn.min()}, {dyn.max()}]"
        )
    if dyn.size and not rig.dynamic_landmark_chain:
        raise RigError("dynamic_landmark_chain: dynamic landmarks need the joints that give the head yaw")
    if rig.hand_mean.shape[1] % 3:
        raise RigError(f"hand_mean: expected 3 values per hand joint, got {rig.hand_mean.shape[1]} per hand")
    for name in ("lbs_weights", "landmark_bary", "dynamic_landmark_bary"):
        sums = getattr(rig, name).sum(axis=-1).reshape(-1)
        if sums.size and np.abs(sums - 1.0).max() > _WEIGHT_SUM_TOL:
            worst = int(np.abs(sums - 1.0).argmax())
            raise RigError(f"{name}: rows must sum to 1, row {worst} sums to {sums[worst]:.6g}")


def _coefficients(name: str, value: np.ndarray | None, size: int) -> np.ndarray:
    """(size,) coefficients; shorter input is zero-padded, longer input is an error."""
    if value is None:
        return np.zeros(size)
    array = _finite_array(name, value)
    if array.ndim != 1 or array.shape[0] > size:
        got = ", ".join(str(s) for s in array.shape)
        raise RigError(f"{name}: expected shape [{size}] (or fewer values), got [{got}]")
    return np.pad(array, (0, size - array.shape[0]))


def _parameter(
    name: str, value: np.ndarray | None, shape: tuple[int, ...], flat_ok: bool = False
) -> np.ndarray:
    if value is None:
        return np.zeros(shape)
    array = _finite_array(name, value)
    if flat_ok and array.shape == (int(np.prod(shape)),):
        array = array.reshape(shape)
    assert_shape(name, array, list(shape))
    return array


def _finite_array(name: str, value: object) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RigError(f"{name}: expected numbers, got {type(value).__name__} ({exc})") from None
    if not np.all(np.isfinite(array)):
        raise RigError(f"{name}: contains NaN or inf")
    return array
