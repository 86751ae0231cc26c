"""rosinality stylegan2-pytorch ``.pt`` checkpoints, read and written without running code from them.

A rosinality file is a ``torch.save`` dict. Converted files (``convert_weight.py``; also the generators that
pSp, e4e and ReStyle ship) are ``{"g_ema": state_dict, "latent_avg": (style_dim,)}``, sometimes with ``"g"``
and ``"d"``; training checkpoints are ``{"g", "d", "g_ema", "g_optim", "d_optim", "args", "ada_aug_p"?}``
with ``args`` an ``argparse.Namespace`` and no ``latent_avg``. Files are loaded by torch's restricted
``torch.load(weights_only=True)`` unpickler (tensors and plain containers only). ``argparse.Namespace`` is
allowed for the duration of that call and then accepted only as the top-level ``args``; any other global is
refused with a :class:`~neural_backend.checkpoints.io.CheckpointError` naming it. Optimizer states and the
like are ignored.

The architecture is inferred from the tensor shapes (resolution from the number of ``to_rgbs``, style size
and mapping depth from ``style.*``, channels per resolution), cross-checked against ``args`` when present.
rosinality's layers compute exactly what NVlabs' do (its upsampling conv is the transposed convolution of
the unflipped weight followed by the blur, as NVlabs' ``flip_weight=False`` path; its ResBlock's division by
sqrt(2) is NVlabs' resnet gains), so each rosinality tensor is one of ours, reshaped: the tables are
:func:`generator_rules` and :func:`discriminator_rules`. NVlabs buffers rosinality has no counterpart for
(the unused ``resample_filter`` of non-resampling layers) keep their constructed values.

Channel tables. Our networks have ``min(channel_base // r, channel_max)`` channels at resolution ``r``;
rosinality's own ``Generator(size, style_dim, n_mlp, channel_multiplier)`` can build only the tables
``min(16384 * channel_multiplier // r, 512)``. Reading accepts any table of our form (forks with other
widths load too): ``channel_base``/``channel_max`` are inferred from it, preferring the writer's
``rigstyle_config``, then rosinality's ``(16384 * channel_multiplier, 512)``, then the smallest base.
Writing refuses, by default, a table rosinality's code cannot build, because that file would not load in
rosinality, pSp or e4e code; ``allow_nonstandard_channels=True`` writes it anyway (RigStyle reads it back).

Extra keys written by :func:`save_rosinality` and ignored by rosinality's code: ``rigstyle_config`` and
``rigstyle_discriminator_config`` (plain dicts of our constructor kwargs). They carry what rosinality
cannot express, ``conv_clamp`` and ``num_fp16_res``, so a round trip keeps them; original rosinality code
runs such a generator without the clamp.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..stylegan2 import Discriminator, Generator, estimate_w_avg
from .base import (
    CONFIG_KEY,
    D_CONFIG_KEY,
    KIND_ROSINALITY,
    Checkpoint,
    CheckpointError,
    build_network,
    check_tensor_names,
)

ROSINALITY_BASE = 16384  # rosinality channels: min(ROSINALITY_BASE * channel_multiplier // r, ROSINALITY_MAX)
ROSINALITY_MAX = 512
_MULTIPLIERS = (2, 1, *range(3, 33))  # rosinality's default first; above 32 every table up to 1024 is all 512
W_AVG_SAMPLES = 10_000  # random z averaged into w_avg when a file has no latent_avg
W_AVG_SEED = 0
UPSAMPLE_GAIN = 4.0  # rosinality stores its upsampling FIR kernels multiplied by factor**2
_MAX_LOG2_RESOLUTION = 15
_MBSTD = {"mbstd_group_size": 4, "mbstd_num_channels": 1}  # rosinality's fixed minibatch-std settings


class TensorRule(NamedTuple):
    """One tensor in both namings: ``ours.reshape(rosinality shape) * scale == theirs``.

    rosinality's shape is ours with ``lead`` ones prepended and ``trail`` ones appended.
    """

    ours: str
    theirs: str
    lead: int = 0
    trail: int = 0
    scale: float = 1.0

    def their_shape(self, shape: Sequence[int]) -> list[int]:
        """rosinality's shape of a tensor whose shape in our naming is ``shape``."""
        return [1] * self.lead + list(shape) + [1] * self.trail


# (our suffix, rosinality suffix, lead, trail): a StyledConv (ours: SynthesisLayer) and a ToRGB.
_STYLED_CONV = (
    ("weight", "conv.weight", 1, 0),  # (O, I, 3, 3) <-> (1, O, I, 3, 3)
    ("affine.weight", "conv.modulation.weight", 0, 0),
    ("affine.bias", "conv.modulation.bias", 0, 0),
    ("noise_strength", "noise.weight", 1, 0),  # () <-> (1,)
    ("bias", "activate.bias", 0, 0),
)
_TO_RGB = (
    ("weight", "conv.weight", 1, 0),  # (3, C, 1, 1) <-> (1, 3, C, 1, 1)
    ("affine.weight", "conv.modulation.weight", 0, 0),
    ("affine.bias", "conv.modulation.bias", 0, 0),
    ("bias", "bias", 1, 2),  # (3,) <-> (1, 3, 1, 1)
)
# Discriminator: our DiscriminatorBlock suffix <-> rosinality ResBlock suffix (all same shape).
_RES_BLOCK = (
    ("conv0.weight", "conv1.0.weight"),
    ("conv0.bias", "conv1.1.bias"),
    ("conv1.resample_filter", "conv2.0.kernel"),
    ("conv1.weight", "conv2.1.weight"),
    ("conv1.bias", "conv2.2.bias"),
    ("skip.resample_filter", "skip.0.kernel"),
    ("skip.weight", "skip.1.weight"),
)
_D_EPILOGUE = (
    ("b4.conv.weight", "final_conv.0.weight"),
    ("b4.conv.bias", "final_conv.1.bias"),
    ("b4.fc.weight", "final_linear.0.weight"),
    ("b4.fc.bias", "final_linear.0.bias"),
    ("b4.out.weight", "final_linear.1.weight"),
    ("b4.out.bias", "final_linear.1.bias"),
)


def _layer(ours: str, theirs: str, table: Sequence[tuple[str, str, int, int]]) -> list[TensorRule]:
    return [TensorRule(f"{ours}.{a}", f"{theirs}.{b}", lead, trail) for a, b, lead, trail in table]


def generator_rules(img_resolution: int, mapping_layers: int) -> list[TensorRule]:
    """Every rosinality ``g_ema`` tensor and its Generator counterpart (``latent_avg`` is separate).

    Blocks: ``b4`` is ``input``/``conv1``/``to_rgb1``; block ``i`` (resolution 8 * 2**i) is
    ``convs.{2i}`` (upsampling conv0), ``convs.{2i+1}`` (conv1) and ``to_rgbs.{i}``. Noise images are
    ``noises.noise_{k}``, k = 0 for the 4x4 conv and then two per resolution.
    """
    rules = [
        TensorRule(f"mapping.fc{i}.{p}", f"style.{i + 1}.{p}")
        for i in range(mapping_layers)
        for p in ("weight", "bias")
    ]
    rules.append(TensorRule("synthesis.b4.const", "input.input", lead=1))
    rules += _layer("synthesis.b4.conv1", "conv1", _STYLED_CONV)
    rules.append(TensorRule("synthesis.b4.conv1.noise_const", "noises.noise_0", lead=2))
    rules += _layer("synthesis.b4.torgb", "to_rgb1", _TO_RGB)
    for i in range(_log2(img_resolution) - 2):
        block = f"synthesis.b{8 << i}"
        for conv, index in (("conv0", 2 * i), ("conv1", 2 * i + 1)):
            rules += _layer(f"{block}.{conv}", f"convs.{index}", _STYLED_CONV)
            rules.append(TensorRule(f"{block}.{conv}.noise_const", f"noises.noise_{index + 1}", lead=2))
        rules.append(
            TensorRule(
                f"{block}.conv0.resample_filter", f"convs.{2 * i}.conv.blur.kernel", scale=UPSAMPLE_GAIN
            )
        )
        rules += _layer(f"{block}.torgb", f"to_rgbs.{i}", _TO_RGB)
        rules.append(
            TensorRule(f"{block}.resample_filter", f"to_rgbs.{i}.upsample.kernel", scale=UPSAMPLE_GAIN)
        )
    return rules


def discriminator_rules(img_resolution: int) -> list[TensorRule]:
    """Every rosinality discriminator tensor and its (resnet) Discriminator counterpart.

    ``convs.0`` is the 1x1 fromRGB of ``b{img_resolution}``; ``convs.{i}`` (i >= 1) is the ResBlock of
    resolution ``img_resolution >> (i - 1)``; ``final_conv``/``final_linear`` are the 4x4 epilogue.
    """
    top = f"b{img_resolution}"
    rules = [
        TensorRule(f"{top}.fromrgb.weight", "convs.0.0.weight"),
        TensorRule(f"{top}.fromrgb.bias", "convs.0.1.bias"),
    ]
    for i in range(1, _log2(img_resolution) - 1):
        block = f"b{img_resolution >> (i - 1)}"
        rules += [TensorRule(f"{block}.{a}", f"convs.{i}.{b}") for a, b in _RES_BLOCK]
    rules += [TensorRule(a, b) for a, b in _D_EPILOGUE]
    return rules


def to_rosinality(state: Mapping[str, torch.Tensor], rules: Sequence[TensorRule]) -> dict[str, torch.Tensor]:
    """Our state dict -> rosinality's (new contiguous CPU tensors); names not in ``rules`` are dropped."""
    out: dict[str, torch.Tensor] = {}
    for rule in rules:
        tensor = state[rule.ours].detach().to("cpu").reshape(rule.their_shape(state[rule.ours].shape))
        out[rule.theirs] = (tensor * rule.scale if rule.scale != 1 else tensor).contiguous().clone()
    return out


def from_rosinality(
    state: Mapping[str, torch.Tensor], rules: Sequence[TensorRule]
) -> dict[str, torch.Tensor]:
    """rosinality's state dict -> ours, for the names in ``rules`` (shapes must already be checked)."""
    out: dict[str, torch.Tensor] = {}
    for rule in rules:
        tensor = state[rule.theirs].detach()
        shape = list(tensor.shape)[rule.lead : tensor.ndim - rule.trail]
        out[rule.ours] = tensor.reshape(shape) / rule.scale if rule.scale != 1 else tensor.reshape(shape)
    return out


def rosinality_shapes(
    shapes: Mapping[str, Sequence[int]], rules: Sequence[TensorRule]
) -> dict[str, list[int]]:
    """rosinality names and shapes of the tensors whose shapes in our naming are ``shapes``."""
    return {rule.theirs: rule.their_shape(shapes[rule.ours]) for rule in rules}


def channel_table(channel_base: int, channel_max: int, img_resolution: int) -> dict[int, int]:
    """Channels at each resolution 4 .. ``img_resolution`` of our networks."""
    return {4 << i: min(channel_base // (4 << i), channel_max) for i in range(_log2(img_resolution) - 1)}


def rosinality_channel_multiplier(table: Mapping[int, int], hint: int | None = None) -> int | None:
    """The ``channel_multiplier`` with which rosinality's code builds ``table`` (``hint`` first), or None."""
    resolution = max(table)
    candidates = ([hint] if isinstance(hint, int) and hint > 0 else []) + list(_MULTIPLIERS)
    for multiplier in candidates:
        if channel_table(ROSINALITY_BASE * multiplier, ROSINALITY_MAX, resolution) == dict(table):
            return multiplier
    return None


def infer_channel_config(
    table: Mapping[int, int], preferred: Sequence[tuple[int, int]] = ()
) -> tuple[int, int]:
    """``(channel_base, channel_max)`` giving ``table``: the first fitting ``preferred``, else lowest base.

    Raises:
        ValueError: no ``min(channel_base // r, channel_max)`` gives ``table``.
    """
    resolution = max(table)
    for base, cmax in preferred:
        if channel_table(base, cmax, resolution) == dict(table):
            return base, cmax
    cmax = max(table.values())
    low, high = 1, math.inf
    for res, channels in table.items():
        if channels < cmax:  # channel_base // res == channels
            low, high = max(low, channels * res), min(high, channels * res + res - 1)
        else:  # channel_base // res >= channel_max
            low = max(low, cmax * res)
    if min(table.values()) < 1 or low > high or channel_table(low, cmax, resolution) != dict(table):
        text = ", ".join(f"{res}: {channels}" for res, channels in sorted(table.items()))
        raise ValueError(f"channel table {{{text}}} is not of the form min(channel_base // r, channel_max)")
    return low, cmax


# ---------------------------------------------------------------------------------------------- reading


def load_torch_file(path: Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU; ``argparse.Namespace`` is accepted as top-level ``args``.

    Raises:
        CheckpointError: ``"refusing to unpickle posix.system in FILE"`` for a global that torch's
            restricted unpickler refuses, or an unreadable, truncated or corrupt file (one line).
    """
    try:
        with path.open("rb") as handle:
            is_zip = handle.read(4) == b"PK\x03\x04"
        with _namespace_allowed():
            # zip files are memory-mapped: tensors nobody reads (optimizer states) never leave the disk
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        message = str(exc)
        name = _refused_global(message) or (
            _unsafe_global(path) if "Weights only load failed" in message else None
        )
        if name is not None:
            raise CheckpointError(f"refusing to unpickle {name} in {path}") from None
        raise CheckpointError(f"{path}: truncated or corrupt torch file ({_first_reason(exc)})") from None
    where = _misplaced_namespace(data)
    if where is not None:
        raise CheckpointError(
            f"{path}: argparse.Namespace is only accepted as the top-level 'args', found one at {where}"
        )
    return data


@contextlib.contextmanager
def _namespace_allowed() -> Iterator[None]:
    if argparse.Namespace in torch.serialization.get_safe_globals():  # the caller allowed it already
        yield
        return
    with torch.serialization.safe_globals([argparse.Namespace]):
        yield


def _refused_global(message: str) -> str | None:
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found is None:
        return None
    name = found.group(1).rstrip(".")
    return name if "." in name else f"builtins.{name}"  # torch drops the builtins. prefix


def _unsafe_global(path: Path) -> str | None:
    """The first global torch would refuse in a zip ``path`` (static scan; nothing is loaded), or None."""
    try:
        with _namespace_allowed():
            names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - legacy or broken files: no name to report
        return None
    return sorted(names)[0] if names else None


def _first_reason(exc: BaseException) -> str:
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    skip = ("Weights only load failed", "(1)", "(2)", "Check the documentation")
    lines = [
        line.removeprefix("WeightsUnpickler error: ") for line in lines if line and not line.startswith(skip)
    ]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _misplaced_namespace(data: object) -> str | None:
    """Where an ``argparse.Namespace`` is other than ``data["args"]`` (a readable key path), or None."""
    stack: list[tuple[str, object]] = [("top level", data)]
    seen: set[int] = set()  # a pickle can make containers that hold themselves
    while stack:
        where, value = stack.pop()
        if isinstance(value, torch.Tensor) or id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, argparse.Namespace):
            if where != "['args']":
                return where
            stack += [(f"{where}.{k}", v) for k, v in vars(value).items()]
        elif isinstance(value, Mapping):
            prefix = "" if where == "top level" else where
            stack += [(f"{prefix}[{k!r}]", v) for k, v in value.items()]
        elif isinstance(value, list | tuple | set | frozenset):
            prefix = "" if where == "top level" else where
            stack += [(f"{prefix}[{i}]", v) for i, v in enumerate(value)]
    return None


def read_rosinality(path: Path) -> Checkpoint:
    """Read a rosinality stylegan2-pytorch ``.pt``: generator from ``g_ema`` (or ``g``), discriminator ``d``.

    Without ``latent_avg`` (training checkpoints) ``w_avg`` is estimated as the mean W of
    :data:`W_AVG_SAMPLES` seeded random z and a note says so. A ``d`` that cannot be loaded does not stop
    the generator: the reason is kept in ``discriminator_problem``. The global torch RNG is left as it was.

    Raises:
        CheckpointError: a refused global, not a rosinality checkpoint, an inexpressible channel table,
            ``args`` that disagree with the tensors, or missing, unexpected or misshaped tensors.
    """
    path = Path(path)
    data = load_torch_file(path)
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path}: not a rosinality checkpoint (top level is a {type(data).__name__})")
    notes: list[str] = []
    if "input.input" in data:  # a bare generator state dict
        data, key = {"g_ema": data}, "g_ema"
    else:
        key = "g_ema" if "g_ema" in data else "g"
        if key == "g" and "g" in data:
            notes.append("generator taken from 'g': the file has no 'g_ema' (the moving average)")
    if not isinstance(data.get(key), Mapping):
        keys = ", ".join(sorted(map(str, data))[:8])
        raise CheckpointError(
            f"{path}: not a rosinality checkpoint (no 'g_ema' or 'g' state dict; keys: {keys})"
        )
    args = _args(path, data.get("args"))
    state = _tensors(path, key, data[key])
    config = _generator_config(path, key, state, args, data.get(CONFIG_KEY))
    with torch.random.fork_rng(devices=[]):  # random initial weights, about to be replaced
        generator = build_network(path, Generator, config)
    rules = generator_rules(config["img_resolution"], config["mapping_layers"])
    _load(path, key, generator, rules, state)
    latent_avg = data.get("latent_avg")
    with torch.no_grad():
        if latent_avg is None:
            generator.mapping.w_avg.copy_(estimate_w_avg(generator, W_AVG_SAMPLES, W_AVG_SEED))
            notes.append(
                f"mapping.w_avg estimated as the mean W of {W_AVG_SAMPLES} seeded random z "
                "(the file has no latent_avg)"
            )
        else:
            generator.mapping.w_avg.copy_(_latent_avg(path, latent_avg, generator.w_dim))
    discriminator, problem = None, None
    if "d" in data:
        try:
            discriminator = _read_discriminator(path, data["d"], args, data.get(D_CONFIG_KEY))
        except CheckpointError as exc:
            problem = "discriminator d not loaded: " + str(exc).removeprefix(f"{path}: ")
    return Checkpoint(path, KIND_ROSINALITY, generator.eval(), discriminator, problem, tuple(notes))


def _args(path: Path, args: object) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, argparse.Namespace):
        raise CheckpointError(f"{path}: 'args' is a {type(args).__name__}, expected an argparse.Namespace")
    values = vars(args)
    if values.get("arch", "stylegan2") != "stylegan2":
        raise CheckpointError(f"{path}: args.arch={values['arch']!r} is not supported (only 'stylegan2')")
    return values


def _tensors(path: Path, key: str, state: Mapping[Any, Any]) -> dict[str, torch.Tensor]:
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: {key}.{name} is a {type(value).__name__}, not a tensor")
    return dict(state)


def _indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for name in state if (m := re.match(pattern, name))})


def _dim(
    path: Path, key: str, state: Mapping[str, torch.Tensor], what: str, candidates: Sequence[tuple[str, int]]
) -> int:
    """Size ``dim`` of the first present tensor among ``candidates`` (name, dim)."""
    for name, dim in candidates:
        tensor = state.get(name)
        if tensor is not None and tensor.ndim > dim:
            return int(tensor.shape[dim])
    names = ", ".join(f"{key}.{name}" for name, _ in candidates)
    raise CheckpointError(f"{path}: cannot infer {what}: missing tensors {names}")


def _generator_config(
    path: Path, key: str, state: Mapping[str, torch.Tensor], args: Mapping[str, Any], stored: object
) -> dict[str, Any]:
    """Our Generator's kwargs from the shapes of a rosinality generator (and ``args``, ``stored``)."""
    to_rgbs = _indices(state, r"to_rgbs\.(\d+)\.")
    if to_rgbs and to_rgbs[-1] + 3 > _MAX_LOG2_RESOLUTION:
        raise CheckpointError(f"{path}: implausible generator: {key}.to_rgbs.{to_rgbs[-1]}")
    resolution = 8 << to_rgbs[-1] if to_rgbs else 4
    styles = _indices(state, r"style\.(\d+)\.weight$")
    if not styles:
        raise CheckpointError(f"{path}: not a rosinality generator: no mapping layers ({key}.style.1.weight)")
    mapping_layers = styles[-1]
    z_dim = _dim(path, key, state, "the style size", [("style.1.weight", 1)])
    w_dim = _dim(path, key, state, "the style size", [(f"style.{mapping_layers}.weight", 0)])
    table = {4: _dim(path, key, state, "the channels at 4x4", [("input.input", 1), ("conv1.conv.weight", 1)])}
    for i in range(_log2(resolution) - 2):
        candidates = [
            (f"convs.{2 * i}.conv.weight", 1),
            (f"convs.{2 * i + 1}.conv.weight", 1),
            (f"to_rgbs.{i}.conv.weight", 2),
        ]
        table[8 << i] = _dim(path, key, state, f"the channels at {8 << i}x{8 << i}", candidates)
    img_channels = _dim(path, key, state, "the colour channels", [("to_rgb1.conv.weight", 1)])
    shape_config = {
        "z_dim": z_dim,
        "c_dim": 0,
        "w_dim": w_dim,
        "img_resolution": resolution,
        "img_channels": img_channels,
        "mapping_layers": mapping_layers,
    }
    _check_args(path, args, {"size": resolution, "latent": w_dim, "n_mlp": mapping_layers}, table)
    config = _with_stored(path, CONFIG_KEY, shape_config, table, stored, args.get("channel_multiplier"))
    config.setdefault("conv_clamp", None)
    config.setdefault("num_fp16_res", 0)
    return config


def _check_args(
    path: Path, args: Mapping[str, Any], found: Mapping[str, int], table: Mapping[int, int]
) -> None:
    for name, value in found.items():
        if name in args and args[name] != value:
            raise CheckpointError(
                f"{path}: args.{name}={args[name]!r} disagrees with the tensors ({name} {value})"
            )
    multiplier = args.get("channel_multiplier")
    if multiplier is not None:
        expected = (
            channel_table(ROSINALITY_BASE * multiplier, ROSINALITY_MAX, max(table))
            if isinstance(multiplier, int)
            else None
        )
        if expected != dict(table):
            raise CheckpointError(
                f"{path}: args.channel_multiplier={multiplier!r} disagrees with the tensors' channels "
                f"{dict(table)}"
            )


def _with_stored(
    path: Path,
    key: str,
    shape_config: Mapping[str, Any],
    table: Mapping[int, int],
    stored: object,
    hint: object,
) -> dict[str, Any]:
    """``shape_config`` with channel_base/channel_max added, plus what the writer's ``stored`` config adds.

    ``stored`` (``rigstyle_config`` or ``rigstyle_discriminator_config``) supplies what the tensors cannot
    tell (``conv_clamp``, ``num_fp16_res``, an equivalent ``channel_base``/``channel_max``); values that the
    tensors determine must agree with them.
    """
    if stored is not None and not isinstance(stored, Mapping):
        raise CheckpointError(f"{path}: {key!r} must be a dict, got {type(stored).__name__}")
    stored = dict(stored or {})
    for name, value in shape_config.items():
        if name in stored and stored[name] != value:
            raise CheckpointError(
                f"{path}: {key!r} says {name}={stored[name]!r} but the tensors say {value!r}"
            )
    preferred: list[tuple[int, int]] = []
    if isinstance(stored.get("channel_base"), int) and isinstance(stored.get("channel_max"), int):
        preferred.append((stored["channel_base"], stored["channel_max"]))
    multiplier = rosinality_channel_multiplier(table, hint if isinstance(hint, int) else None)
    if multiplier is not None:
        preferred.append((ROSINALITY_BASE * multiplier, ROSINALITY_MAX))
    try:
        base, cmax = infer_channel_config(table, preferred)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    clamp = stored.get("conv_clamp")
    if clamp is not None and (isinstance(clamp, bool) or not isinstance(clamp, int | float)):
        raise CheckpointError(f"{path}: {key!r} has conv_clamp={clamp!r}, expected a number or None")
    fp16 = stored.get("num_fp16_res", 0)
    if isinstance(fp16, bool) or not isinstance(fp16, int):
        raise CheckpointError(f"{path}: {key!r} has num_fp16_res={fp16!r}, expected an int")
    return {**stored, **shape_config, "channel_base": base, "channel_max": cmax}


def _load(
    path: Path,
    key: str,
    network: torch.nn.Module,
    rules: Sequence[TensorRule],
    state: Mapping[str, torch.Tensor],
) -> None:
    """Check ``state``'s rosinality names and shapes against ``network`` and load it strictly."""
    ours = network.state_dict()
    expected = rosinality_shapes({name: list(t.shape) for name, t in ours.items()}, rules)
    check_tensor_names(
        path,
        {f"{key}.{name}": list(t.shape) for name, t in state.items()},
        {f"{key}.{name}": shape for name, shape in expected.items()},
    )
    mapped = from_rosinality(state, rules)
    network.load_state_dict({**ours, **mapped}, strict=True)  # unmapped NVlabs buffers keep their values


def _latent_avg(path: Path, latent_avg: object, w_dim: int) -> torch.Tensor:
    """``latent_avg`` as (w_dim,); also accepts (k, w_dim) with k identical rows (pSp-style repeats)."""
    if isinstance(latent_avg, torch.Tensor):
        if list(latent_avg.shape) == [w_dim]:
            return latent_avg
        if latent_avg.ndim == 2 and latent_avg.shape[1] == w_dim and len(latent_avg) > 0:
            if torch.equal(latent_avg, latent_avg[:1].expand_as(latent_avg)):
                return latent_avg[0]
        raise CheckpointError(f"{path}: latent_avg has shape {list(latent_avg.shape)}, expected [{w_dim}]")
    raise CheckpointError(f"{path}: latent_avg is a {type(latent_avg).__name__}, not a tensor")


def _read_discriminator(
    path: Path, d_state: object, args: Mapping[str, Any], stored: object
) -> Discriminator:
    if not isinstance(d_state, Mapping):
        raise CheckpointError(f"{path}: 'd' is a {type(d_state).__name__}, not a state dict")
    state = _tensors(path, "d", d_state)
    convs = _indices(state, r"convs\.(\d+)\.")
    if not convs or convs[-1] + 2 > _MAX_LOG2_RESOLUTION:
        raise CheckpointError(f"{path}: not a rosinality discriminator (no ResBlocks d.convs.1 ...)")
    resolution = 4 << convs[-1]
    table = {
        resolution: _dim(
            path, "d", state, f"the channels at {resolution}x{resolution}", [("convs.0.0.weight", 0)]
        )
    }
    for i in range(1, convs[-1] + 1):
        res = resolution >> (i - 1)
        table[res] = _dim(
            path, "d", state, f"the channels at {res}x{res}", [(f"convs.{i}.conv1.0.weight", 0)]
        )
    table[4] = _dim(
        path,
        "d",
        state,
        "the channels at 4x4",
        [("final_conv.0.weight", 0), (f"convs.{convs[-1]}.conv2.1.weight", 0)],
    )
    shape_config = {
        "c_dim": 0,
        "img_resolution": resolution,
        "img_channels": _dim(path, "d", state, "the colour channels", [("convs.0.0.weight", 1)]),
        "architecture": "resnet",
        **_MBSTD,
    }
    _check_args(path, args, {"size": resolution}, table)
    config = _with_stored(path, D_CONFIG_KEY, shape_config, table, stored, args.get("channel_multiplier"))
    with torch.random.fork_rng(devices=[]):
        discriminator = build_network(path, Discriminator, config)
    _load(path, "d", discriminator, discriminator_rules(resolution), state)
    return discriminator.eval()


def _log2(resolution: int) -> int:
    return resolution.bit_length() - 1


# ---------------------------------------------------------------------------------------------- writing


def generator_problems(config: Mapping[str, Any], allow_nonstandard_channels: bool = False) -> list[str]:
    """Why a Generator with kwargs ``config`` cannot be a rosinality generator (empty list: it can)."""
    problems = []
    if config["c_dim"] > 0:
        problems.append(f"conditional generators (c_dim={config['c_dim']}) have no rosinality form")
    if config["z_dim"] != config["w_dim"]:
        problems.append(f"rosinality needs z_dim == w_dim (got {config['z_dim']} and {config['w_dim']})")
    if config["img_channels"] != 3:
        problems.append(
            f"rosinality generators draw 3 colour channels (got img_channels={config['img_channels']})"
        )
    problems += _channel_problems(config, allow_nonstandard_channels)
    return problems


def discriminator_problems(config: Mapping[str, Any], allow_nonstandard_channels: bool = False) -> list[str]:
    """Why a Discriminator with kwargs ``config`` cannot be a rosinality one (empty list: it can)."""
    problems = []
    if config["c_dim"] > 0:
        problems.append(f"conditional discriminators (c_dim={config['c_dim']}) have no rosinality form")
    if config["img_channels"] != 3:
        problems.append(
            f"rosinality discriminators read 3 colour channels (got img_channels={config['img_channels']})"
        )
    if config["architecture"] != "resnet":
        problems.append(
            f"rosinality discriminators are 'resnet' (got architecture={config['architecture']!r})"
        )
    for name, value in _MBSTD.items():
        if config[name] != value:
            problems.append(f"rosinality's minibatch std has {name}={value} (got {config[name]!r})")
    problems += _channel_problems(config, allow_nonstandard_channels)
    return problems


def _channel_problems(config: Mapping[str, Any], allow_nonstandard_channels: bool) -> list[str]:
    table = channel_table(config["channel_base"], config["channel_max"], config["img_resolution"])
    if allow_nonstandard_channels or rosinality_channel_multiplier(table) is not None:
        return []
    text = ", ".join(f"{res}: {channels}" for res, channels in table.items())
    return [
        f"rosinality's code builds only channels "
        f"min({ROSINALITY_BASE} * channel_multiplier // r, {ROSINALITY_MAX}), "
        f"not {{{text}}} (write a RigStyle .safetensors checkpoint instead)"
    ]


def save_rosinality(
    generator: Generator,
    path: str | Path,
    discriminator: Discriminator | None = None,
    *,
    allow_nonstandard_channels: bool = False,
) -> None:
    """Write ``generator`` (and ``discriminator``) as a converted-style rosinality ``.pt``.

    The file is ``{"g_ema", "latent_avg", ["d"], "rigstyle_config", ["rigstyle_discriminator_config"]}``:
    tensors and plain Python values only, so ``torch.load(weights_only=True)`` reads it. rosinality's code
    ignores the ``rigstyle_*`` dicts, and with them ``conv_clamp`` and ``num_fp16_res``; RigStyle restores
    them.

    Raises:
        TypeError: not our Generator / Discriminator.
        CheckpointError: a network rosinality cannot represent (conditional, z_dim != w_dim, not RGB, a
            non-resnet discriminator or other minibatch std, a channel table rosinality's code cannot build
            unless ``allow_nonstandard_channels``); the message names the file and the reasons.
    """
    path = Path(path)
    if not isinstance(generator, Generator):
        raise TypeError(f"generator: expected a stylegan2.Generator, got {type(generator).__name__}")
    if discriminator is not None and not isinstance(discriminator, Discriminator):
        raise TypeError(
            f"discriminator: expected a stylegan2.Discriminator, got {type(discriminator).__name__}"
        )
    problems = generator_problems(generator.init_kwargs, allow_nonstandard_channels)
    if discriminator is not None:
        d_problems = discriminator_problems(discriminator.init_kwargs, allow_nonstandard_channels)
        problems += [f"discriminator: {p}" for p in d_problems if p not in problems]  # same table: once
    if problems:
        raise CheckpointError(f"{path}: cannot write a rosinality checkpoint: {'; '.join(problems)}")
    config = generator.init_kwargs
    state = generator.state_dict()
    data: dict[str, Any] = {
        "g_ema": to_rosinality(state, generator_rules(config["img_resolution"], config["mapping_layers"])),
        "latent_avg": state["mapping.w_avg"].detach().to("cpu").contiguous().clone(),
        CONFIG_KEY: dict(config),
    }
    if discriminator is not None:
        rules = discriminator_rules(discriminator.init_kwargs["img_resolution"])
        data["d"] = to_rosinality(discriminator.state_dict(), rules)
        data[D_CONFIG_KEY] = dict(discriminator.init_kwargs)
    torch.save(data, path)
