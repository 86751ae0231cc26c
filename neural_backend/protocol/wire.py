"""Sans-I/O wire protocol: msgpack header frame + raw little-endian tensor frames (or shared memory).

No sockets and no torch here: :func:`encode` turns a :class:`Message` into ZeroMQ frames (a list of
bytes) and :func:`decode` turns frames back into a :class:`Message`, validating every size and shape
before allocating anything (tensors are views of the received frames, never copies). The server and the
clients are thin shells around these two functions. ``docs/protocol.md`` is the specification this
module implements.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)  # older clients keep working; docs/protocol.md section 3 says what changed
MAGIC = "rigstyle"
SHM_ALIGN = 64  # tensor offsets inside a shared-memory area are multiples of this

# dtype names on the wire -> little-endian numpy dtypes.
WIRE_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name).newbyteorder("<")
    for name in ("uint8", "uint16", "int32", "int64", "float16", "float32", "float64")
}

# Message types (docs/protocol.md, "Messages").
HELLO = "hello"
HEALTH = "health"
READY = "ready"
REFINE_FRAME = "refine_frame"
ADD_FRAME = "add_frame"
REFINE_SHOT = "refine_shot"
RESULT = "result"
FRAME_RESULT = "frame_result"
PROGRESS = "progress"
CANCEL = "cancel"
END_SHOT = "end_shot"
RELEASE_SHM = "release_shm"
OK = "ok"
ERROR = "error"

# Error codes are stable: clients may switch on them.
ERR_BAD_MESSAGE = "bad_message"  # framing, header or tensor layout is wrong
ERR_BAD_FIELD = "bad_field"  # a well-formed message carries a wrong field or tensor
ERR_TOO_LARGE = "too_large"  # a size or count limit was exceeded
ERR_UNKNOWN_TYPE = "unknown_type"
ERR_REFINE_FAILED = "refine_failed"  # the frame cannot be refined (no face or skin in it)
ERR_INTERNAL = "internal"  # the server failed; the request may be retried
ERR_BUSY = "busy"  # the queue is full or the server is draining; retry later
ERR_DEADLINE = "deadline"  # the request's deadline passed before it finished
ERR_CANCELLED = "cancelled"  # cancelled by the client or by a server shutdown
ERR_UNAUTHORIZED = "unauthorized"  # missing or wrong token
ERR_UNSUPPORTED_VERSION = "unsupported_version"  # no protocol version in common
ERR_SHM_UNAVAILABLE = "shm_unavailable"  # unknown or expired shared-memory segment; say hello again
ERR_NOT_OWNER = "not_owner"  # the shot belongs to another connection (version 3)
ERROR_CODES = (
    ERR_BAD_MESSAGE,
    ERR_BAD_FIELD,
    ERR_TOO_LARGE,
    ERR_UNKNOWN_TYPE,
    ERR_REFINE_FAILED,
    ERR_INTERNAL,
    ERR_BUSY,
    ERR_DEADLINE,
    ERR_CANCELLED,
    ERR_UNAUTHORIZED,
    ERR_UNSUPPORTED_VERSION,
    ERR_SHM_UNAVAILABLE,
    ERR_NOT_OWNER,
)


class ProtocolError(Exception):
    """A message that breaks the protocol. ``code`` is one of the ``ERR_*`` constants."""

    def __init__(self, code: str, message: str, request_id: int = 0):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id  # the offending request's id once its header was readable, else 0


@dataclass(frozen=True)
class Limits:
    """Limits checked before any tensor memory is allocated."""

    max_frames: int = 64  # header frame + tensor frames
    max_header_bytes: int = 1 << 16
    max_tensor_bytes: int = 1 << 28  # 256 MiB per tensor
    max_total_bytes: int = 1 << 30  # 1 GiB per message
    max_ndim: int = 4

    def to_fields(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Message:
    """One protocol message: a type, a request id, plain fields, named tensors and request options."""

    type: str
    id: int = 0
    fields: Mapping[str, Any] = field(default_factory=dict)
    tensors: Mapping[str, np.ndarray] = field(default_factory=dict)
    auth: str | None = field(default=None, repr=False)  # the server's token, when it requires one
    deadline_ms: int | None = None  # the client's deadline, milliseconds after the server receives it
    progress: bool = False  # ask for `progress` events before the reply
    shm: str | None = None  # shared-memory segment holding tensors with an offset / receiving the reply

    def replace(self, **changes: Any) -> Message:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return Message(**{**values, **changes})


# Header keys beyond the five every message has, with their decoded types.
_OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "auth": str,
    "deadline_ms": int,
    "progress": bool,
    "shm": str,
}

ShmResolver = Callable[[str], memoryview]  # segment id -> its request area; raises ProtocolError


def encode(message: Message, shm_offsets: Mapping[str, int] | None = None) -> list[bytes | memoryview]:
    """Encode a message into ZeroMQ frames: ``[header, tensor0, tensor1, ...]``.

    Tensor frames are zero-copy views of the arrays whenever they are already little-endian and
    C-contiguous, so the arrays must not change until the frames are sent. Tensors named in
    ``shm_offsets`` were already written into ``message.shm``'s area at that offset and get no frame.

    Raises:
        ProtocolError: a tensor has a dtype the protocol does not carry.
    """
    shm_offsets = shm_offsets or {}
    specs = []
    payloads = []
    for name, array in message.tensors.items():
        array = wire_array(name, array)
        spec: dict[str, Any] = {"name": name, "dtype": array.dtype.name, "shape": list(array.shape)}
        if name in shm_offsets:
            spec["offset"] = shm_offsets[name]
        else:
            payloads.append(array.reshape(-1).view(np.uint8).data)  # the array's memoryview, no copy
        specs.append(spec)
    header: dict[str, Any] = {
        MAGIC: PROTOCOL_VERSION,
        "type": message.type,
        "id": message.id,
        "fields": dict(message.fields),
        "tensors": specs,
    }
    for key in _OPTION_TYPES:
        value = getattr(message, key)
        if value is not None and value is not False:
            header[key] = value
    return [msgpack.packb(header, use_bin_type=True), *payloads]


def wire_array(name: str, array: Any) -> np.ndarray:
    """``array`` as a little-endian, C-contiguous array of a carried dtype (no copy when it already is)."""
    array = np.asarray(array)
    wire_name = array.dtype.name
    if wire_name not in WIRE_DTYPES:
        raise ProtocolError(ERR_BAD_FIELD, f"tensor {name!r}: dtype {wire_name} is not carried")
    if array.dtype != WIRE_DTYPES[wire_name] or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array, dtype=WIRE_DTYPES[wire_name])
    return array


def decode(
    frames: Sequence[Any],
    limits: Limits = DEFAULT_LIMITS,
    shm: ShmResolver | None = None,
    token: str | None = None,
) -> Message:
    """Decode ZeroMQ frames into a :class:`Message`, checking every limit first.

    Args:
        frames: the header frame and the tensor frames (bytes, memoryviews or ``zmq.Frame``).
        limits: size and count limits, checked before anything is allocated.
        shm: resolves a shared-memory segment id to its request area; None = no segments negotiated.
        token: the token the header's ``auth`` must equal; None = no authentication required.

    Raises:
        ProtocolError: naming what is wrong, with its request id once the header was readable.
    """
    if not frames:
        raise ProtocolError(ERR_BAD_MESSAGE, "empty message: expected a header frame")
    views = [_buffer(frame) for frame in frames]
    if len(views[0]) > limits.max_header_bytes:
        raise ProtocolError(
            ERR_TOO_LARGE,
            f"header of {len(views[0])} bytes exceeds {limits.max_header_bytes}",
            _peek_id(views[0], limits),
        )
    header = _unpack_header(bytes(views[0]), limits)
    try:
        if len(frames) > limits.max_frames:
            raise ProtocolError(
                ERR_TOO_LARGE, f"{len(frames)} frames exceed the limit of {limits.max_frames}"
            )
        if token is not None and not hmac.compare_digest(
            str(header.get("auth", "")).encode(), token.encode()
        ):
            raise ProtocolError(ERR_UNAUTHORIZED, "missing or wrong 'auth' token")
        area = None
        if header.get("shm") is not None:
            if shm is None:
                raise ProtocolError(ERR_SHM_UNAVAILABLE, "shared memory was not negotiated (send hello)")
            area = shm(header["shm"])
        tensors = _decode_tensors(header["tensors"], views[1:], limits, area)
    except ProtocolError as exc:
        exc.request_id = header["id"]  # so the error reaches the request that caused it
        raise
    return Message(
        type=header["type"],
        id=header["id"],
        fields=header["fields"],
        tensors=tensors,
        **{key: header[key] for key in _OPTION_TYPES if header.get(key) is not None},
    )


def _peek_id(raw: memoryview, limits: Limits) -> int:
    """The ``id`` of an oversized header, when it is small enough to read safely (else 0)."""
    if len(raw) > 16 * limits.max_header_bytes:
        return 0
    try:
        header = msgpack.unpackb(bytes(raw), raw=False, strict_map_key=True)
    except Exception:  # msgpack raises several unrelated types on garbage
        return 0
    request_id = header.get("id") if isinstance(header, dict) else None
    if isinstance(request_id, int) and not isinstance(request_id, bool) and 0 <= request_id < 1 << 63:
        return request_id
    return 0


def _buffer(frame: Any) -> memoryview:
    """A flat byte view of a frame without copying it (zmq.Frame exposes ``.buffer``)."""
    view = memoryview(frame.buffer if hasattr(frame, "buffer") else frame)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _decode_tensors(
    specs: list[Any], payloads: Sequence[memoryview], limits: Limits, area: memoryview | None
) -> dict[str, np.ndarray]:
    checked = [_check_spec(spec, limits) for spec in specs]
    framed = sum(1 for *_, offset in checked if offset is None)
    if framed != len(payloads):
        raise ProtocolError(
            ERR_BAD_MESSAGE, f"header describes {framed} tensor frames but {len(payloads)} frames follow"
        )
    total = 0
    tensors: dict[str, np.ndarray] = {}
    frames = iter(payloads)
    for name, dtype, shape, offset in checked:
        nbytes = math.prod(shape) * dtype.itemsize
        total += nbytes
        if nbytes > limits.max_tensor_bytes or total > limits.max_total_bytes:
            raise ProtocolError(ERR_TOO_LARGE, f"tensor {name!r} of {nbytes} bytes exceeds the size limits")
        if name in tensors:
            raise ProtocolError(ERR_BAD_MESSAGE, f"tensor {name!r} appears twice")
        if offset is None:
            payload = next(frames)
        else:
            if area is None:
                raise ProtocolError(ERR_BAD_MESSAGE, f"tensor {name!r} has an 'offset' but no 'shm' segment")
            if offset % SHM_ALIGN or offset + nbytes > len(area):
                raise ProtocolError(
                    ERR_BAD_MESSAGE,
                    f"tensor {name!r}: offset {offset} + {nbytes} bytes is unaligned or outside the "
                    f"{len(area)}-byte shared-memory area",
                )
            payload = area[offset : offset + nbytes]
        if len(payload) != nbytes:
            raise ProtocolError(
                ERR_BAD_MESSAGE,
                f"tensor {name!r}: {dtype.name}{list(shape)} needs {nbytes} bytes, frame has {len(payload)}",
            )
        tensors[name] = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return tensors


def _unpack_header(raw: bytes, limits: Limits) -> dict[str, Any]:
    try:
        header = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_bin_len=limits.max_header_bytes,
            max_str_len=limits.max_header_bytes,
        )
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(ERR_BAD_MESSAGE, f"header is not valid msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError(ERR_BAD_MESSAGE, "header must be a msgpack map")
    request_id = header.get("id", 0)
    if not _is_int(request_id) or not 0 <= request_id < 1 << 63:
        raise ProtocolError(ERR_BAD_MESSAGE, "header field 'id' must be an integer in [0, 2**63)")
    header["id"] = request_id
    version = header.get(MAGIC)
    if version not in SUPPORTED_VERSIONS or not _is_int(version):
        raise ProtocolError(
            ERR_UNSUPPORTED_VERSION,
            f"header field {MAGIC!r} must be a protocol version in {list(SUPPORTED_VERSIONS)}, "
            f"got {version!r}",
            request_id,
        )
    if not isinstance(header.get("type"), str):
        raise ProtocolError(ERR_BAD_MESSAGE, "header field 'type' must be a string", request_id)
    if not isinstance(header.setdefault("fields", {}), dict):
        raise ProtocolError(ERR_BAD_MESSAGE, "header field 'fields' must be a map", request_id)
    if not isinstance(header.setdefault("tensors", []), list):
        raise ProtocolError(ERR_BAD_MESSAGE, "header field 'tensors' must be a list", request_id)
    for key, kind in _OPTION_TYPES.items():
        value = header.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is int and not _is_int(value))):
            raise ProtocolError(ERR_BAD_MESSAGE, f"header field {key!r} has the wrong type", request_id)
    if (header.get("deadline_ms") or 0) < 0:
        raise ProtocolError(ERR_BAD_MESSAGE, "header field 'deadline_ms' must be ≥ 0", request_id)
    return header


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_spec(spec: Any, limits: Limits) -> tuple[str, np.dtype, tuple[int, ...], int | None]:
    if not isinstance(spec, dict):
        raise ProtocolError(ERR_BAD_MESSAGE, "each tensor description must be a map")
    name, dtype_name, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if not isinstance(name, str) or not name:
        raise ProtocolError(ERR_BAD_MESSAGE, "tensor description needs a non-empty string 'name'")
    if not isinstance(dtype_name, str) or dtype_name not in WIRE_DTYPES:
        raise ProtocolError(
            ERR_BAD_MESSAGE, f"tensor {name!r}: dtype {dtype_name!r} is not one of {sorted(WIRE_DTYPES)}"
        )
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise ProtocolError(ERR_BAD_MESSAGE, f"tensor {name!r}: shape must be a list of sizes ≥ 0")
    if len(shape) > limits.max_ndim or any(d >= 1 << 31 for d in shape):
        raise ProtocolError(
            ERR_TOO_LARGE, f"tensor {name!r}: shape {shape} exceeds {limits.max_ndim} dimensions < 2**31"
        )
    offset = spec.get("offset")
    if offset is not None and (not _is_int(offset) or offset < 0):
        raise ProtocolError(ERR_BAD_MESSAGE, f"tensor {name!r}: 'offset' must be an integer ≥ 0")
    return name, WIRE_DTYPES[dtype_name], tuple(shape), offset


def error_message(request_id: int, code: str, message: str) -> Message:
    """The one reply shape for every failure."""
    return Message(type=ERROR, id=request_id, fields={"code": code, "message": message})
