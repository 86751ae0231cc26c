"""Semantic expression controls for any rig: FACS action units and emotions, solved into the rig's own
expression coefficients and jaw pose. numpy only.

An action unit (AU) is defined once, for every rig, as a displacement pattern of the 68 iBUG landmarks in a
head-aligned frame measured in inter-ocular distances (IOD): x from the subject's right eye to the left
one, y up, z out of the face. For a given rig, :func:`action_unit_offset` turns the patterns into the
rig's units and solves the expression coefficients (and, for the jaw-drop AU, the jaw's rotation) whose
landmark motion matches them best: a ridge-regularised least squares over the rig's landmark Jacobian at
its neutral face, the ridge just large enough to keep every coefficient within ±3. Named expressions of
the rig whose name matches the AU (the demo head's ``smile`` for AU12, ...) are regularised ten times
less, so the solve prefers them. Jacobians and solutions are cached per rig.

Emotions are AU combinations (EMFACS-style, table in ``docs/expressions.md``), scaled by an intensity in
[0, 1]. The result is an :class:`ExpressionOffset`: expression-coefficient and jaw-pose deltas that
``apply`` adds to a frame's parameters.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import RigError
from .model import Rig
from .sequences import ParamSequence

# iBUG-68 landmark groups (subject's right = image left for a frontal face).
RIGHT_BROW, LEFT_BROW = range(17, 22), range(22, 27)  # outer → inner, inner → outer
RIGHT_EYE, LEFT_EYE = range(36, 42), range(42, 48)
UPPER_LIDS, LOWER_LIDS = (37, 38, 43, 44), (40, 41, 46, 47)
NOSTRILS = range(31, 36)
CORNERS = (48, 54, 60, 64)
UPPER_LIP = (49, 50, 51, 52, 53, 61, 62, 63)
LOWER_LIP = (55, 56, 57, 58, 59, 65, 66, 67)
CHIN = (6, 7, 8, 9, 10)
JAW_JOINT = "jaw"
JAW_STEP = 0.05  # radians: the finite-difference step of the jaw's Jacobian columns
MIN_RIDGE, MAX_RIDGE = 1e-6, 1e3  # regularisation of the least squares, relative to the Jacobian's scale
COEFFICIENT_LIMIT = 3.0  # largest expression coefficient (or jaw radians) one AU at intensity 1 may use
NAMED_PREFERENCE = 0.1  # regularisation factor of a rig's named expression that matches the AU

# A movement of a landmark group: (indices, displacement (x, y, z) in IOD, "outward" makes x point away
# from the face's midline for each landmark).
Move = tuple[tuple[int, ...], tuple[float, float, float], bool]


@dataclass(frozen=True)
class ActionUnit:
    """One FACS action unit as landmark movements at intensity 1."""

    name: str
    label: str
    moves: tuple[Move, ...]
    jaw: bool = False  # solved with the jaw's rotation (jaw drop) rather than expression coefficients
    named: tuple[str, ...] = ()  # rig expression names that do what this AU does


def _move(
    indices: Iterable[int], dx: float = 0.0, dy: float = 0.0, dz: float = 0.0, outward: bool = False
) -> Move:
    return tuple(indices), (dx, dy, 0.0), outward


ACTION_UNITS: dict[str, ActionUnit] = {
    au.name: au
    for au in (
        ActionUnit("AU1", "inner brow raiser", (_move((20, 21, 22, 23), dy=0.10), _move((19, 24), dy=0.06)),
                   named=("brow_raise",)),
        ActionUnit("AU2", "outer brow raiser", (_move((17, 18, 25, 26), dy=0.10), _move((19, 24), dy=0.06)),
                   named=("brow_raise",)),
        ActionUnit("AU4", "brow lowerer", (_move((*RIGHT_BROW, *LEFT_BROW), dy=-0.06),
                                           _move((20, 21, 22, 23), dx=-0.04, outward=True)),
                   named=("brow_furrow",)),
        ActionUnit("AU5", "upper lid raiser", (_move((37, 38, 43, 44), dy=0.035),)),
        ActionUnit("AU6", "cheek raiser", (_move(LOWER_LIDS, dy=0.025), _move((36, 45), dy=0.01),
                                           _move((1, 2, 14, 15), dy=0.02)),
                   named=("squint",)),
        ActionUnit("AU7", "lid tightener", (_move(LOWER_LIDS, dy=0.03), _move(UPPER_LIDS, dy=-0.01)),
                   named=("squint",)),
        ActionUnit("AU9", "nose wrinkler", (_move(NOSTRILS, dy=0.035), _move((21, 22), dy=-0.03),
                                            _move((50, 51, 52), dy=0.015)),
                   named=("nose_wrinkle",)),
        ActionUnit("AU10", "upper lip raiser", (_move(UPPER_LIP, dy=0.05),)),
        ActionUnit("AU12", "lip corner puller", (_move(CORNERS, dx=0.07, dy=0.06, outward=True),),
                   named=("smile",)),
        ActionUnit("AU15", "lip corner depressor", (_move(CORNERS, dy=-0.06),), named=("frown",)),
        ActionUnit("AU17", "chin raiser", (_move(CHIN, dy=0.04), _move(LOWER_LIP, dy=0.03))),
        ActionUnit("AU20", "lip stretcher", (_move(CORNERS, dx=0.08, dy=-0.01, outward=True),)),
        ActionUnit("AU23", "lip tightener", (_move(CORNERS, dx=-0.03, outward=True),
                                            _move((50, 51, 52, 61, 62, 63), dy=-0.01),
                                            _move((56, 57, 58, 65, 66, 67), dy=0.01)),
                   named=("mouth_pucker",)),
        ActionUnit("AU25", "lips part", (_move((56, 57, 58, 65, 66, 67), dy=-0.05),
                                        _move((61, 62, 63), dy=0.01))),
        ActionUnit("AU26", "jaw drop", (_move((*LOWER_LIP, *CHIN), dy=-0.18), _move((5, 11), dy=-0.08)),
                   jaw=True, named=("jaw_open",)),
        ActionUnit("AU43", "eyes closed", (_move(UPPER_LIDS, dy=-0.07), _move(LOWER_LIDS, dy=0.01)),
                   named=("blink",)),
    )
}  # fmt: skip

# EMFACS-style prototypes: AU -> intensity at emotion intensity 1. A trailing "R"/"L" on an AU name moves
# only the subject's right / left half of the face.
EMOTIONS: dict[str, dict[str, float]] = {
    "happiness": {"AU6": 1.0, "AU12": 1.0},
    "sadness": {"AU1": 1.0, "AU4": 0.6, "AU15": 1.0},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU26": 0.6},
    "fear": {"AU1": 1.0, "AU2": 0.6, "AU4": 0.6, "AU5": 1.0, "AU7": 0.5, "AU20": 1.0, "AU26": 0.4},
    "anger": {"AU4": 1.0, "AU5": 0.6, "AU7": 1.0, "AU23": 1.0},
    "disgust": {"AU9": 1.0, "AU10": 0.6, "AU15": 0.6, "AU17": 0.6},
    "contempt": {"AU12R": 0.8},
}


class ExpressionError(RigError):
    """An unknown emotion or action unit, an intensity outside [0, 1], or a rig with no expression space."""


@dataclass(frozen=True)
class ExpressionOffset:
    """Deltas to add to a frame's parameters: expression coefficients and the jaw joint's axis-angle."""

    expression: np.ndarray  # (E,) expression-coefficient delta in the rig's order
    jaw: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) jaw axis-angle delta
    jaw_joint: int | None = None  # the rig's jaw joint index (None: the rig has none)

    def __add__(self, other: ExpressionOffset) -> ExpressionOffset:
        return ExpressionOffset(self.expression + other.expression, self.jaw + other.jaw, self.jaw_joint)

    def scaled(self, factor: float) -> ExpressionOffset:
        return ExpressionOffset(self.expression * factor, self.jaw * factor, self.jaw_joint)

    def apply(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``params`` (``expression``, ``pose``, ... as :meth:`Rig.forward` takes them) with the offset added.

        A shorter or missing ``expression`` is padded with zeros; a missing ``pose`` is the rest pose when
        the offset moves the jaw. Other entries pass through unchanged.
        """
        out = {name: np.array(value, dtype=np.float64) for name, value in params.items()}
        current = out.get("expression", np.zeros(0))
        size = max(len(self.expression), current.shape[-1] if current.ndim else 0)
        expression = np.zeros((*current.shape[:-1], size)) if current.ndim > 1 else np.zeros(size)
        expression[..., : current.shape[-1]] = current
        expression[..., : len(self.expression)] += self.expression
        out["expression"] = expression
        if self.jaw_joint is not None and np.any(self.jaw):
            if "pose" not in out:
                raise ExpressionError("params: a jaw offset needs 'pose' (the rig's joints × 3)")
            pose = out["pose"]
            if pose.shape[-1] != 3:  # flat (J * 3,) per frame
                pose = pose.reshape(*pose.shape[:-1], -1, 3)
            pose = pose.copy()
            pose[..., self.jaw_joint, :] += self.jaw
            out["pose"] = pose
        return out


def action_unit_offset(rig: Rig | ExpressionSpace, units: Mapping[str, float]) -> ExpressionOffset:
    """The rig's expression and jaw deltas that perform ``units`` (AU name -> intensity in [0, 1]).

    Raises:
        ExpressionError: an unknown AU, an intensity outside [0, 1], or a rig with no expression space.
    """
    space = space_of(rig)
    total = ExpressionOffset(np.zeros(rig.num_expressions), np.zeros(3), space.jaw_joint)
    for name, intensity in units.items():
        _check_intensity(f"{name} intensity", intensity)
        total = total + _unit_solution(space, name).scaled(float(intensity))
    return total


def emotion_offset(rig: Rig | ExpressionSpace, emotion: str, intensity: float = 1.0) -> ExpressionOffset:
    """The rig's deltas for an emotion (see :data:`EMOTIONS`) at ``intensity`` in [0, 1]."""
    if emotion not in EMOTIONS:
        raise ExpressionError(f"emotion: unknown {emotion!r}; known: {', '.join(EMOTIONS)}")
    _check_intensity("intensity", intensity)
    units = {unit: weight * float(intensity) for unit, weight in EMOTIONS[emotion].items()}
    return action_unit_offset(rig, units)


def target_displacement(rig: Rig, units: Mapping[str, float]) -> np.ndarray:
    """(68, 3) landmark displacement the AUs ask for, in the rig's units and axes (what the solve aims at)."""
    space = space_of(rig)
    return sum((_target(space, name) * float(w) for name, w in units.items()), np.zeros((68, 3)))


def landmark_displacement(rig: Rig, offset: ExpressionOffset) -> np.ndarray:
    """(68, 3) landmark displacement an offset makes at the rig's neutral face (exact, not linearised)."""
    space = space_of(rig)
    rest = {"expression": np.zeros(rig.num_expressions), "pose": np.zeros((rig.num_joints, 3))}
    params = offset.apply(rest)
    return ibug68(rig, expression=params["expression"], pose=params["pose"]) - space.neutral


def ibug68(rig: Rig, expression: np.ndarray | None = None, pose: np.ndarray | None = None) -> np.ndarray:
    """The rig's 68 iBUG landmarks for an expression and pose: its first 68, or FLAME's 51 static ones
    after its 17 contour landmarks (chosen by head yaw, as FLAME's dynamic embedding does).

    Raises:
        ExpressionError: the rig has neither.
    """
    if rig.num_landmarks >= 68:
        return rig.forward(expression=expression, pose=pose).landmarks[:68]
    if rig.num_landmarks == 51 and rig.num_dynamic_landmarks == 17:
        landmarks = rig.forward(expression=expression, pose=pose, dynamic_landmarks=True).landmarks
        return np.concatenate([landmarks[51:], landmarks[:51]])
    raise ExpressionError(
        f"rig {rig.name!r} has {rig.num_landmarks} landmarks; action units need the 68 iBUG points "
        "(or FLAME's 51 plus its 17 contour points)"
    )


# ---- emotion transfer on a take (NED, training-free) ---------------------------------------------

# What speech moves and emotion transfer must leave as it is: the inner- and outer-lip gaps (vertical) and
# the mouth width (horizontal), as (landmark a, landmark b, head-frame axis) of a - b.
SPEECH_MEASURES = ((66, 62, 1), (57, 51, 1), (54, 48, 0))
SMOOTHING_FRAMES = 2.0  # Gaussian sigma, in frames, applied to an intensity curve


def speech_constraints(rig: Rig | ExpressionSpace) -> np.ndarray:
    """(3, E): how each expression coefficient changes the lip gaps and the mouth width (linearised at the
    neutral face). An offset ``x`` with ``speech_constraints(rig) @ x == 0`` leaves them as they are."""
    space = space_of(rig)
    rows = []
    for a, b, axis in SPEECH_MEASURES:
        direction = np.zeros((68, 3))
        direction[a] += space.frame[axis]
        direction[b] -= space.frame[axis]
        rows.append(direction.reshape(-1) @ space.jacobian)
    return np.stack(rows)


def speech_preserving_offset(rig: Rig | ExpressionSpace, emotion: str) -> ExpressionOffset:
    """The emotion's offset at intensity 1 for a talking take: expression coefficients only (the jaw is the
    speech's), solved to match the emotion's landmark pattern while the lip gaps and the mouth width stay
    unchanged, so brows, eyes, cheeks and the corners' height carry the emotion."""
    if emotion not in EMOTIONS:
        raise ExpressionError(f"emotion: unknown {emotion!r}; known: {', '.join(EMOTIONS)}")
    space = space_of(rig)
    units = {u: w for u, w in EMOTIONS[emotion].items() if not ACTION_UNITS[_split_side(u)[0]].jaw}
    target = sum((_target(space, u) * w for u, w in units.items()), np.zeros((68, 3)))
    preferred = {
        space.expression_names.index(name)
        for unit in units
        for name in ACTION_UNITS[_split_side(unit)[0]].named
        if name in space.expression_names
    }
    solution = bounded_least_squares(space.jacobian, target.reshape(-1), preferred, speech_constraints(rig))
    return ExpressionOffset(solution, np.zeros(3), space.jaw_joint)


def transfer_emotion(
    rig: Rig | ExpressionSpace,
    take: ParamSequence,
    emotion: str | None = None,
    intensity: float | np.ndarray = 1.0,
    reference: ParamSequence | None = None,
) -> ParamSequence:
    """``take`` with an emotion added to its expressions, its speech kept (NED's task, without training).

    Args:
        rig: the rig the take animates (or its :class:`ExpressionSpace`).
        take: the performance (``rigs.sequences``: AMASS / FLAME tracker), in the rig's parameters.
        emotion: a label of :data:`EMOTIONS`; or None with ``reference``.
        intensity: in [0, 1], a constant or one value per frame (smoothed over ±2 frames so it cannot
            flicker).
        reference: a take of the same rig whose expression style to transfer: the per-frame median of its
            expression (its offset from the neutral face), made speech-preserving the same way.

    Returns:
        A new take: the same poses (the jaw untouched), betas and translation; expressions plus the
        offset, which keeps the inner- and outer-lip gaps and the mouth width of every frame.

    Raises:
        ExpressionError: neither or both of ``emotion`` and ``reference``, an unknown emotion, an intensity
            outside [0, 1] or of the wrong length, a take or reference that does not fit the rig.
    """
    if (emotion is None) == (reference is None):
        raise ExpressionError("transfer_emotion: give an emotion label or a reference take (one of them)")
    space = space_of(rig)
    _check_take("take", take, space)
    curve = _intensity_curve(intensity, take.num_frames)
    if reference is not None:
        _check_take("reference", reference, space)
        style = np.median(_padded(reference.expression, space.num_expressions), axis=0)
        target = space.jacobian @ style
        solution = bounded_least_squares(space.jacobian, target, (), speech_constraints(rig))
        offset = ExpressionOffset(solution, np.zeros(3), space.jaw_joint)
    else:
        offset = speech_preserving_offset(space, str(emotion))
    expression = _padded(take.expression, space.num_expressions) + curve[:, None] * offset.expression
    return replace(take, expression=expression)


def _check_take(name: str, take: ParamSequence, rig: ExpressionSpace) -> None:
    if take.pose.shape[1] != rig.num_joints:
        raise ExpressionError(
            f"{name}: a take of another rig ({take.pose.shape[1]} joints; this rig has {rig.num_joints})"
        )
    if take.expression.shape[1] > rig.num_expressions:
        raise ExpressionError(
            f"{name}: a take of another rig ({take.expression.shape[1]} expression components; this rig "
            f"has {rig.num_expressions})"
        )


def _padded(expression: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((expression.shape[0], size))
    out[:, : expression.shape[1]] = expression
    return out


def _intensity_curve(intensity: float | np.ndarray, frames: int) -> np.ndarray:
    values = np.asarray(intensity, dtype=np.float64)
    if values.ndim == 0:
        _check_intensity("intensity", float(values))
        return np.full(frames, float(values))
    if values.shape != (frames,):
        raise ExpressionError(
            f"intensity: expected one value per frame ({frames}), got shape {list(values.shape)}"
        )
    if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
        raise ExpressionError("intensity: every value of the curve must be in [0, 1]")
    radius = int(np.ceil(3 * SMOOTHING_FRAMES))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / SMOOTHING_FRAMES) ** 2)
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


# ---- per rig: its landmark Jacobian and the solved units (cached) ---------------------------------


@dataclass
class ExpressionSpace:
    """What the solves need of a rig: its landmarks at the neutral face and how its expression coefficients
    (and jaw) move them. Built from a :class:`Rig` (cached), or by a host that has only the landmarks and
    shape keys (:func:`expression_space`, e.g. a rig inside Blender)."""

    neutral: np.ndarray  # (68, 3) landmarks at the neutral face
    frame: np.ndarray  # (3, 3) rows: the head frame's x, y, z axes in rig coordinates
    iod: float  # inter-ocular distance, rig units
    jacobian: np.ndarray  # (68 * 3, E) landmark motion per unit expression coefficient
    jaw_columns: np.ndarray  # (68 * 3, 3) landmark motion per radian of jaw rotation (x, y, z)
    jaw_joint: int | None
    expression_names: tuple[str, ...]
    num_joints: int
    solved: dict[str, ExpressionOffset] = field(default_factory=dict)

    @property
    def num_expressions(self) -> int:
        return int(self.jacobian.shape[1])


_SPACES: weakref.WeakKeyDictionary[Rig, ExpressionSpace] = weakref.WeakKeyDictionary()


def space_of(rig: Rig | ExpressionSpace) -> ExpressionSpace:
    """The rig's expression space, built once per rig and cached (a space is returned as it is)."""
    if isinstance(rig, ExpressionSpace):
        return rig
    space = _SPACES.get(rig)
    if space is None:
        space = _SPACES[rig] = _build_space(rig)
    return space


def _build_space(rig: Rig) -> ExpressionSpace:
    jaw_joint = rig.joint_names.index(JAW_JOINT) if JAW_JOINT in rig.joint_names else None
    if rig.num_expressions == 0 and jaw_joint is None:
        raise ExpressionError(f"rig {rig.name!r} has no expression space (no expression components, no jaw)")
    neutral = ibug68(rig)
    columns = []
    for index in range(rig.num_expressions):
        unit = np.zeros(rig.num_expressions)
        unit[index] = 1.0
        columns.append((ibug68(rig, expression=unit) - neutral).reshape(-1))
    jacobian = np.stack(columns, axis=1) if columns else np.zeros((68 * 3, 0))
    jaw_columns = np.zeros((68 * 3, 3))
    if jaw_joint is not None:
        for axis in range(3):
            pose = np.zeros((rig.num_joints, 3))
            pose[jaw_joint, axis] = JAW_STEP
            moved = ibug68(rig, pose=pose)
            jaw_columns[:, axis] = (moved - neutral).reshape(-1) / JAW_STEP
    return expression_space(neutral, jacobian, rig.expression_names, rig.num_joints, jaw_columns, jaw_joint)


def expression_space(
    neutral: np.ndarray,
    jacobian: np.ndarray,
    expression_names: Sequence[str],
    num_joints: int,
    jaw_columns: np.ndarray | None = None,
    jaw_joint: int | None = None,
) -> ExpressionSpace:
    """An expression space from arrays: the 68 neutral landmarks (68, 3), their motion per expression
    coefficient (68 * 3, E) and, optionally, per radian of jaw rotation (68 * 3, 3).

    Raises:
        ExpressionError: shapes that do not fit, or eyes that coincide.
    """
    neutral = np.asarray(neutral, dtype=np.float64)
    jacobian = np.asarray(jacobian, dtype=np.float64)
    if neutral.shape != (68, 3) or jacobian.ndim != 2 or jacobian.shape[0] != 68 * 3:
        raise ExpressionError(
            f"expression space: expected (68, 3) landmarks and a (204, E) Jacobian, got "
            f"{list(neutral.shape)} and {list(jacobian.shape)}"
        )
    if len(expression_names) != jacobian.shape[1]:
        raise ExpressionError(
            f"expression space: {len(expression_names)} names for {jacobian.shape[1]} columns"
        )
    right, left = neutral[list(RIGHT_EYE)].mean(axis=0), neutral[list(LEFT_EYE)].mean(axis=0)
    across = left - right
    iod = float(np.linalg.norm(across))
    if iod < 1e-12:
        raise ExpressionError("expression space: the eyes' landmarks coincide")
    x = across / iod
    up = 0.5 * (left + right) - neutral[[48, 54]].mean(axis=0)
    y = up - (up @ x) * x
    y /= np.linalg.norm(y)
    columns = np.zeros((68 * 3, 3)) if jaw_columns is None else np.asarray(jaw_columns, dtype=np.float64)
    return ExpressionSpace(
        neutral, np.stack([x, y, np.cross(x, y)]), iod, jacobian, columns, jaw_joint,
        tuple(expression_names), int(num_joints),
    )  # fmt: skip


def _unit_solution(space: ExpressionSpace, name: str) -> ExpressionOffset:
    base, side = _split_side(name)
    if base not in ACTION_UNITS:
        raise ExpressionError(f"action unit: unknown {name!r}; known: {', '.join(ACTION_UNITS)}")
    if name not in space.solved:
        space.solved[name] = _solve(space, ACTION_UNITS[base], _target(space, name))
    return space.solved[name]


def _split_side(name: str) -> tuple[str, str | None]:
    if name[-1:] in ("L", "R") and name[:-1] in ACTION_UNITS:
        return name[:-1], name[-1]
    return name, None


def _target(space: ExpressionSpace, name: str) -> np.ndarray:
    """(68, 3) rig-space displacement of one AU at intensity 1 (one side only for ``AU12R`` / ``AU12L``)."""
    base, side = _split_side(name)
    if base not in ACTION_UNITS:
        raise ExpressionError(f"action unit: unknown {name!r}; known: {', '.join(ACTION_UNITS)}")
    midline = space.neutral.mean(axis=0)
    lateral = (space.neutral - midline) @ space.frame[0]  # + on the subject's left
    target = np.zeros((68, 3))
    for indices, delta, outward in ACTION_UNITS[base].moves:
        for i in indices:
            d = np.array(delta, dtype=np.float64)
            if outward:
                d[0] *= np.sign(lateral[i]) if abs(lateral[i]) > 1e-9 else 0.0
            target[i] += d
    if side is not None:  # keep the subject's right (x < 0) or left (x > 0) half
        keep = lateral < 0 if side == "R" else lateral > 0
        target[~keep] = 0.0
    return (target @ space.frame) * space.iod


def _solve(space: ExpressionSpace, unit: ActionUnit, target: np.ndarray) -> ExpressionOffset:
    """The expression (or, for the jaw drop, jaw) values whose landmark motion matches ``target``."""
    if unit.jaw and space.jaw_joint is not None:  # jaw drop: rotation about the jaw's x axis
        rotation = np.zeros(3)
        rotation[0] = bounded_least_squares(space.jaw_columns[:, :1], target.reshape(-1))[0]
        return ExpressionOffset(np.zeros(space.num_expressions), rotation, space.jaw_joint)
    preferred = [space.expression_names.index(n) for n in unit.named if n in space.expression_names]
    solution = bounded_least_squares(space.jacobian, target.reshape(-1), preferred)
    return ExpressionOffset(solution, np.zeros(3), space.jaw_joint)


def bounded_least_squares(
    basis: np.ndarray,
    target: np.ndarray,
    preferred: Iterable[int] = (),
    constraints: np.ndarray | None = None,
) -> np.ndarray:
    """Ridge least squares ``basis @ x ≈ target`` with every ``|x_i| <= COEFFICIENT_LIMIT``.

    The ridge is the smallest that keeps the coefficients within the limit (PCA expression spaces such as
    FLAME's would otherwise reach a pattern with huge, meaningless coefficients); ``preferred`` columns are
    regularised :data:`NAMED_PREFERENCE` times less. ``constraints`` (k, n): ``constraints @ x = 0``
    exactly (Lagrange multipliers).
    """
    count = basis.shape[1]
    if count == 0:
        return np.zeros(0)
    weights = np.ones(count)
    weights[list(preferred)] = NAMED_PREFERENCE
    gram, rhs = basis.T @ basis, basis.T @ target
    scale = float(np.trace(gram)) / count or 1.0
    rows = 0 if constraints is None else constraints.shape[0]
    system = np.zeros((count + rows, count + rows))
    system[count:, :count] = constraints if constraints is not None else 0.0
    system[:count, count:] = constraints.T if constraints is not None else 0.0
    right = np.concatenate([rhs, np.zeros(rows)])

    def solve(ridge: float) -> np.ndarray:
        system[:count, :count] = gram + ridge * scale * np.diag(weights)
        return np.linalg.lstsq(system, right, rcond=None)[0][:count]

    solution = solve(MIN_RIDGE)
    if np.abs(solution).max() > COEFFICIENT_LIMIT:
        low, high = np.log(MIN_RIDGE), np.log(MAX_RIDGE)
        for _ in range(40):  # bisection on log(ridge): the coefficients shrink as the ridge grows
            middle = 0.5 * (low + high)
            if np.abs(solve(float(np.exp(middle)))).max() > COEFFICIENT_LIMIT:
                low = middle
            else:
                high = middle
        solution = solve(float(np.exp(high)))
    return solution


def _check_intensity(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ExpressionError(f"{name}: expected a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ExpressionError(f"{name}: expected a number in [0, 1], got {value}")
