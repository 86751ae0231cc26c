"""Find an expression by answering "A or B?" in Blender: the panel and operators of ``rigs.preference``.

The session's state lives in the scene (:class:`RIGSTYLE_PG_preference`): the controls, seed, reliability
and the answers given so far as a string (``"ab-a"``; ``-`` is "can't tell"). The
:class:`rigs.preference.PreferenceSession` is rebuilt from it by replaying the answers (deterministic for
the seed), so the search survives saving the .blend, and undo takes back an answer.

Each query renders the rig at the current frame twice, with candidate A's and B's expression offsets added
(the keyed channels muted for the render, every value put back afterwards), and shows the two side by side
in the image :data:`CANDIDATES_IMAGE`: refined by the backend's preview mode when *Refine* is on and the
backend answers its health check, else the CGI render (the panel says which).
"""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from neural_backend.client.results import BackendError
from neural_backend.protocol.passes import FramePasses
from rigs.expression import ACTION_UNITS, EMOTIONS, ExpressionError, ExpressionOffset, ExpressionSpace
from rigs.preference import PreferenceError, PreferenceSession
from rigs.sequences import continuous_quaternions, quaternions_from_rotvecs

from .connection import BackendSettings, backend_settings, check_health
from .expression import rig_expression_space
from .images import image_rgb, show_rgb
from .names import CANDIDATES_IMAGE, EXPRESSION_KEY_PREFIX
from .overrides import temporarily
from .render_passes import render_frame_passes
from .rig_builder import RigObjects
from .rig_params import joint_names, read_params, set_params, shape_keys
from .sequences import existing_fcurves, export_sequence, fcurves_of, new_fcurve
from .ui import context_rig

iface_ = bpy.app.translations.pgettext_iface  # translated UI text with values filled in after

CAN_NOT_TELL = "-"  # the answer string's "can't tell"
GAP = 8  # pixels between the two candidates in the side-by-side image
GAP_COLOUR = 0.8  # linear grey of the gap
SESSION_CACHE = 4  # replayed sessions kept (one per scene in practice)
CONTROL_ITEMS = [
    *[(name, name.capitalize(), f"The emotion {name} (0: none, 1: full)") for name in EMOTIONS],
    *[
        (name, f"{name} {unit.label}", f"Action unit {name}, {unit.label}")
        for name, unit in ACTION_UNITS.items()
    ],
]
DEFAULT_CONTROLS = {"happiness", "surprise"}


class RIGSTYLE_PG_preference(bpy.types.PropertyGroup):
    """An "A or B?" expression search (saved with the scene)"""

    controls: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Controls",
        description="The 2 to 6 emotions or action units whose intensities the search finds",
        items=CONTROL_ITEMS,
        options={"ENUM_FLAG"},
        default=DEFAULT_CONTROLS,
    )
    reliability: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Reliability",
        description="How reliably you answer (PrefGen's k): lower it when you are unsure between faces",
        default=10.0,
        min=0.5,
        soft_max=100.0,
    )
    seed: bpy.props.IntProperty(name="Seed", description="Seed of the search's random choices", min=0)  # type: ignore[valid-type]
    refine: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Refine",
        description="Show the candidates refined by the backend (preview mode) when it is reachable",
        default=True,
    )
    session_controls: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Session Controls", description="The controls of the running search, comma-separated"
    )
    answers: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Answers", description='The answers so far: "a", "b" or "-" (can\'t tell) per query'
    )
    status: bpy.props.StringProperty(name="Status")  # type: ignore[valid-type]


def settings_of(scene: bpy.types.Scene) -> RIGSTYLE_PG_preference:
    return scene.rigstyle_preference


# ---- the session, replayed from the scene's answers ------------------------------------------------------

_sessions: OrderedDict[tuple[object, ...], PreferenceSession] = OrderedDict()


def session_of(settings: RIGSTYLE_PG_preference) -> PreferenceSession | None:
    """The running search (None before Start), its answers replayed from ``settings``.

    Raises:
        PreferenceError: the stored controls or answers are not a valid session (an edited file).
    """
    if not settings.session_controls:
        return None
    controls = tuple(settings.session_controls.split(","))
    key = (controls, settings.seed, round(settings.reliability, 6), settings.answers)
    if key in _sessions:
        _sessions.move_to_end(key)
        return _sessions[key]
    session = PreferenceSession(controls, seed=settings.seed, noise=settings.reliability)
    for letter in settings.answers:
        if letter not in ("a", "b", CAN_NOT_TELL):
            raise PreferenceError(f'answers: {letter!r} is not "a", "b" or "{CAN_NOT_TELL}"')
        session.next_query()
        session.answer(None if letter == CAN_NOT_TELL else letter)
    _sessions[key] = session
    while len(_sessions) > SESSION_CACHE:
        _sessions.popitem(last=False)
    return session


def clear_sessions() -> None:
    """Forget the replayed sessions (they are rebuilt from the scenes on demand)."""
    _sessions.clear()


# ---- the candidates ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidates:
    """The two faces of a query as shown: linear RGB images, and whether the backend refined them."""

    a: np.ndarray
    b: np.ndarray
    refined: bool
    note: str  # what the images are, for the panel


def render_candidates(
    scene: bpy.types.Scene,
    objects: RigObjects,
    offsets: tuple[ExpressionOffset, ExpressionOffset],
    backend: BackendSettings | None,
    scale: float = 1.0,
) -> Candidates:
    """Render the rig at the current frame with each offset added; refine both with ``backend`` (preview
    mode) when given and healthy. The scene is left as it was."""
    folder = Path(tempfile.mkdtemp(prefix="rigstyle-ab-"))
    saved = scene.render.resolution_percentage
    scene.render.resolution_percentage = max(1, round(saved * scale))
    try:
        passes = [
            render_with_offset(scene, objects, offset, folder / name, f"ab-{name}")
            for name, offset in zip("ab", offsets, strict=True)
        ]
    finally:
        scene.render.resolution_percentage = saved
    cgi = Candidates(passes[0].beauty, passes[1].beauty, False, "CGI render")
    if backend is None:
        return cgi
    health = check_health(backend)
    if not health.ok:
        return Candidates(cgi.a, cgi.b, False, f"CGI render: backend {health.summary}")
    try:
        with backend.client() as client:
            refined = [client.refine_frame(p, mode="preview").image for p in passes]
    except BackendError as error:
        return Candidates(cgi.a, cgi.b, False, f"CGI render: the backend failed ({error})")
    return Candidates(refined[0], refined[1], True, f"refined by {backend.address}")


def render_with_offset(
    scene: bpy.types.Scene, objects: RigObjects, offset: ExpressionOffset, folder: Path, shot: str
) -> FramePasses:
    """The current frame's passes with ``offset`` added to the rig's expression (and jaw)."""
    frame = scene.frame_current
    scene.frame_set(frame)
    with offset_applied(objects, offset):
        return render_frame_passes(scene, objects, frame, shot, folder, passes=())


@contextmanager
def offset_applied(objects: RigObjects, offset: ExpressionOffset) -> Iterator[None]:
    """The rig's current values plus ``offset`` for the length of the block: the F-curves of the channels
    it changes are muted (so frame changes and renders keep the values); everything is put back after."""
    params = read_params(objects)
    edited = offset.apply(params)
    names = [k.name.removeprefix(EXPRESSION_KEY_PREFIX) for k in shape_keys(objects, EXPRESSION_KEY_PREFIX)]
    joints = joint_names(objects)
    jaw = joints[offset.jaw_joint] if offset.jaw_joint is not None and np.any(offset.jaw) else None
    paths = [f'key_blocks["{EXPRESSION_KEY_PREFIX}{n}"].value' for n in names]
    muted = _fcurves(objects.mesh.data.shape_keys, paths, 1)
    if jaw is not None:
        muted += _fcurves(objects.armature, [f'pose.bones["{jaw}"].rotation_quaternion'], 4)
    with temporarily([(fcurve, "mute", True) for fcurve in muted]):
        try:
            set_params(
                objects,
                expression=dict(zip(names, edited["expression"].tolist(), strict=True)),
                pose={jaw: edited["pose"][offset.jaw_joint]} if jaw is not None else None,
            )
            yield
        finally:
            set_params(
                objects,
                expression=dict(zip(names, params["expression"].tolist(), strict=True)),
                pose={jaw: params["pose"][offset.jaw_joint]} if jaw is not None else None,
            )


def _fcurves(owner: bpy.types.ID, paths: Sequence[str], components: int) -> list[bpy.types.FCurve]:
    fcurves = existing_fcurves(owner)
    if fcurves is None:
        return []
    found = (fcurves.find(path, index=i) for path in paths for i in range(components))
    return [fcurve for fcurve in found if fcurve is not None]


def show_side_by_side(candidates: Candidates) -> bpy.types.Image:
    """A (left) and B (right) in :data:`CANDIDATES_IMAGE`, shown like the preview (``images.show_rgb``)."""
    a, b = candidates.a, candidates.b
    rgb = np.full((a.shape[0], a.shape[1] + GAP + b.shape[1], 3), GAP_COLOUR, dtype=np.float32)
    rgb[:, : a.shape[1]] = a
    rgb[:, a.shape[1] + GAP :] = b
    return show_rgb(CANDIDATES_IMAGE, rgb)


def candidate_pixels() -> np.ndarray:
    """The side-by-side image as (H, W, 3) linear RGB, top row first (for tests and scripts)."""
    return image_rgb(CANDIDATES_IMAGE)


# ---- keying the estimate ---------------------------------------------------------------------------------


def key_offset(
    scene: bpy.types.Scene, objects: RigObjects, offset: ExpressionOffset, start: int, end: int
) -> int:
    """Add ``offset`` to the rig's values on every frame ``start..end`` and key them there (keys outside
    the range stay; channels the offset leaves alone are not keyed). Returns the number of channels keyed."""
    take = export_sequence(objects, start, end, scene)
    frames = np.arange(start, end + 1, dtype=np.float64)
    blocks = shape_keys(objects, EXPRESSION_KEY_PREFIX)
    expression = take.expression + offset.expression[None, : take.expression.shape[1]]
    keyed = 0
    keys = fcurves_of(objects.mesh.data.shape_keys)
    for index, block in enumerate(blocks):
        if abs(offset.expression[index]) > 1e-9:
            _key(keys, f'key_blocks["{block.name}"].value', 0, frames, expression[:, index], "expression")
            keyed += 1
    if offset.jaw_joint is not None and np.any(offset.jaw):
        jaw = joint_names(objects)[offset.jaw_joint]
        rotvecs = take.pose[:, offset.jaw_joint] + offset.jaw[None]
        quats = continuous_quaternions(quaternions_from_rotvecs(rotvecs[:, None]))[:, 0]
        armature = fcurves_of(objects.armature)
        for component in range(4):
            _key(
                armature,
                f'pose.bones["{jaw}"].rotation_quaternion',
                component,
                frames,
                quats[:, component],
                jaw,
            )
        keyed += 4
    scene.frame_set(scene.frame_current)
    return keyed


def _key(
    fcurves: bpy.types.bpy_prop_collection,
    path: str,
    index: int,
    frames: np.ndarray,
    values: np.ndarray,
    group: str,
) -> None:
    fcurve = fcurves.find(path, index=index) or new_fcurve(fcurves, path, index, group)
    for frame, value in zip(frames.tolist(), values.tolist(), strict=True):
        fcurve.keyframe_points.insert(frame, value, options={"FAST"})
    fcurve.update()


# ---- operators and panel ---------------------------------------------------------------------------------


def _rig_and_space(
    operator: bpy.types.Operator, context: bpy.types.Context
) -> tuple[RigObjects, ExpressionSpace] | None:
    objects = context_rig(context)
    if objects is None:
        operator.report({"ERROR"}, "No RigStyle rig in the scene: add one (Add > RigStyle Demo Head)")
        return None
    try:
        return objects, rig_expression_space(objects)
    except ExpressionError as error:
        operator.report({"ERROR"}, str(error))
        return None


def _running_session(
    operator: bpy.types.Operator, settings: RIGSTYLE_PG_preference
) -> PreferenceSession | None:
    """The running search, or None with the reason reported (not started, or a stored state that is not
    a valid session)."""
    try:
        session = session_of(settings)
    except PreferenceError as error:
        operator.report({"ERROR"}, str(error))
        return None
    if session is None:
        operator.report({"ERROR"}, "No A or B? search is running: press Start")
    return session


def _show_query(operator: bpy.types.Operator, context: bpy.types.Context) -> set[str]:
    """Render the pending query's candidates and show them side by side."""
    found = _rig_and_space(operator, context)
    settings = settings_of(context.scene)
    session = session_of(settings)
    if found is None or session is None:
        return {"CANCELLED"}
    objects, space = found
    a, b = session.next_query()
    backend = backend_settings(context) if settings.refine else None
    scale = context.scene.rigstyle_render.preview_scale / 100.0  # the render panel's Preview Size
    try:
        candidates = render_candidates(
            context.scene, objects, (session.offset(space, a), session.offset(space, b)), backend, scale
        )
    except ValueError as error:  # the camera or render settings do not fit the passes
        operator.report({"ERROR"}, f"Cannot render the candidates: {error}")
        return {"CANCELLED"}
    show_side_by_side(candidates)
    settings.status = f"query {len(session.answers) + 1}: {candidates.note}"
    operator.report({"INFO"}, f"A (left) and B (right) shown in {CANDIDATES_IMAGE!r}: {candidates.note}")
    return {"FINISHED"}


class RIGSTYLE_OT_preference_start(bpy.types.Operator):
    """Start a new "A or B?" search over the chosen controls and show its first two candidates"""

    bl_idname = "rigstyle.preference_start"
    bl_label = "Start A or B?"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return (
            context.scene is not None
            and context.scene.camera is not None
            and context_rig(context) is not None
        )

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = settings_of(context.scene)
        controls = [name for name, _, _ in CONTROL_ITEMS if name in settings.controls]
        try:
            PreferenceSession(controls, seed=settings.seed, noise=settings.reliability)
        except PreferenceError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        settings.session_controls, settings.answers = ",".join(controls), ""
        return _show_query(self, context)


class RIGSTYLE_OT_preference_answer(bpy.types.Operator):
    """Answer which candidate is nearer the expression you want, and show the next two"""

    bl_idname = "rigstyle.preference_answer"
    bl_label = "Answer"
    bl_options = {"REGISTER", "UNDO"}

    choice: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Choice",
        items=[
            ("A", "A", "The left candidate is nearer what you want"),
            ("B", "B", "The right candidate is nearer what you want"),
            ("NONE", "Can't Tell", "Neither is nearer: nothing is learned, the next query differs"),
        ],
    )
    show_next: bpy.props.BoolProperty(name="Show Next", default=True, options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and bool(settings_of(context.scene).session_controls)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = settings_of(context.scene)
        if _running_session(self, settings) is None:
            return {"CANCELLED"}
        settings.answers += {"A": "a", "B": "b"}.get(self.choice, CAN_NOT_TELL)
        return _show_query(self, context) if self.show_next else {"FINISHED"}


class RIGSTYLE_OT_preference_apply(bpy.types.Operator):
    """Key the estimated expression on the rig: on the current frame, or added over the scene's frame range"""

    bl_idname = "rigstyle.preference_apply"
    bl_label = "Apply Estimate"
    bl_options = {"REGISTER", "UNDO"}

    target: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Apply To",
        items=[
            ("FRAME", "Current Frame", "Add the estimate to the current frame's values and key them"),
            ("RANGE", "Frame Range", "Add the estimate to every frame of the scene's range and key them"),
        ],
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and bool(settings_of(context.scene).session_controls)

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        session = _running_session(self, settings_of(scene))
        found = _rig_and_space(self, context) if session is not None else None
        if found is None or session is None:
            return {"CANCELLED"}
        objects, space = found
        start, end = (
            (scene.frame_current, scene.frame_current)
            if self.target == "FRAME"
            else (scene.frame_start, scene.frame_end)
        )
        keyed = key_offset(scene, objects, session.offset(space), start, end)
        self.report({"INFO"}, f"keyed {keyed} channels on frames {start}..{end}")
        return {"FINISHED"}


class RIGSTYLE_PT_preference(bpy.types.Panel):
    """Find an expression by answering "A or B?" on two renders"""

    bl_label = "A or B? Expression Search"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "RigStyle"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and context_rig(context) is not None

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = settings_of(context.scene)
        chosen = [name for name, _, _ in CONTROL_ITEMS if name in settings.controls]
        text = ", ".join(chosen) or iface_("Choose 2 to 6 controls")
        layout.prop_menu_enum(settings, "controls", text=text, translate=False)
        row = layout.row(align=True)
        row.prop(settings, "reliability")
        row.prop(settings, "seed")
        layout.prop(settings, "refine")
        layout.operator(
            RIGSTYLE_OT_preference_start.bl_idname, text="Restart" if settings.session_controls else "Start"
        )
        try:
            session = session_of(settings)
        except PreferenceError as error:
            layout.label(text=str(error), icon="ERROR")
            return
        if session is None:
            return
        query = iface_("Query {number}: A left, B right in {image}")
        layout.label(
            text=query.format(number=len(session.answers) + 1, image=CANDIDATES_IMAGE), translate=False
        )
        row = layout.row(align=True)
        for choice, label in (("A", "A"), ("B", "B"), ("NONE", "Can't Tell")):
            row.operator(RIGSTYLE_OT_preference_answer.bl_idname, text=label).choice = choice
        mean, covariance = session.estimate()
        column = layout.column(align=True)
        for name, value, variance in zip(session.controls, mean, np.diag(covariance), strict=True):
            sd = float(np.sqrt(max(variance, 0.0)))
            column.label(text=f"{name}: {value:.2f} ± {sd:.2f}", translate=False)  # names and numbers only
        row = layout.row(align=True)
        row.operator(RIGSTYLE_OT_preference_apply.bl_idname, text="Key on Frame").target = "FRAME"
        row.operator(RIGSTYLE_OT_preference_apply.bl_idname, text="Key over Range").target = "RANGE"
        if settings.status:
            layout.label(text=settings.status, translate=False)


classes = (
    RIGSTYLE_PG_preference,
    RIGSTYLE_OT_preference_start,
    RIGSTYLE_OT_preference_answer,
    RIGSTYLE_OT_preference_apply,
    RIGSTYLE_PT_preference,
)


def install() -> None:
    bpy.types.Scene.rigstyle_preference = bpy.props.PointerProperty(type=RIGSTYLE_PG_preference)


def uninstall() -> None:
    del bpy.types.Scene.rigstyle_preference
    clear_sessions()
