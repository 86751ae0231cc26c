"""The rig data model: an immutable :class:`Rig` (FLAME-style arrays) and its :meth:`Rig.forward` pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import RigError, assert_shape
from .lbs import barycentric_points, blend_shapes, check_parents, lbs
from .regions import REGION_NAMES

# Field name -> (dtype, symbolic shape). Symbols: V vertices, F faces, S betas, E expressions, J joints,
# L landmarks, P = (J - 1) * 9 pose-corrective features, V3 = V * 3. Order matters: a symbol is bound
# by the first field that uses it.
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
}
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

    Arrays are validated, converted to the dtypes below and stored read-only.
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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise RigError(f"name: expected a non-empty string, got {self.name!r}")
        dims: dict[str, int] = {}
        for field, (dtype, spec) in _ARRAY_FIELDS.items():
            array = _coerce_field(field, getattr(self, field), dtype)
            expected = _bind_dims(spec, np.shape(array), dims)
            assert_shape(field, array, expected)
            array.flags.writeable = False
            object.__setattr__(self, field, array)
        for field, count in (("joint_names", dims["J"]), ("expression_names", dims["E"])):
            names = tuple(getattr(self, field))
            if not all(isinstance(n, str) for n in names) or len(names) != count:
                raise RigError(f"{field}: expected {count} strings, got {list(names)!r}")
            object.__setattr__(self, field, names)
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
    def num_landmarks(self) -> int:
        return int(self.landmark_faces.shape[0])

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
    ) -> RigOutput:
        """Shape, express, pose and place the rig.

        Args:
            betas: (S,) identity coefficients, or fewer (the rest are zero). None: all zero.
            expression: (E,) expression coefficients, or fewer (the rest are zero). None: all zero.
            pose: (J, 3) axis-angle per joint relative to its parent (also accepted flat, (J * 3,)).
                None: rest pose.
            transl: (3,) global translation. None: no translation.

        Returns:
            The posed vertices, joints and landmarks.

        Raises:
            RigError: a parameter has the wrong shape or contains NaN/inf; the message names it.
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
        vertices = vertices + transl
        joints = joints + transl
        landmarks = barycentric_points(vertices, self.faces, self.landmark_faces, self.landmark_bary)
        return RigOutput(vertices=vertices, joints=joints, landmarks=landmarks)


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
    for field in ("lbs_weights", "landmark_bary"):
        sums = getattr(rig, field).sum(axis=1)
        if sums.size and np.abs(sums - 1.0).max() > _WEIGHT_SUM_TOL:
            worst = int(np.abs(sums - 1.0).argmax())
            raise RigError(f"{field}: rows must sum to 1, row {worst} sums to {sums[worst]:.6g}")


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
