"""Sans-I/O wire protocol: msgpack header frame + raw little-endian tensor frames.

No sockets and no torch here: :func:`encode` turns a :class:`Message` into ZeroMQ frames (a list of
bytes) and :func:`decode` turns frames back into a :class:`Message`, validating every size and shape
before allocating anything. The server and the client are thin shells around these two functions.
``docs/protocol.md`` is the specification this module implements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 1
MAGIC = "rigstyle"

# dtype names on the wire -> little-endian numpy dtypes.
WIRE_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name).newbyteorder("<")
    for name in ("uint8", "uint16", "int32", "int64", "float16", "float32", "float64")
}

# Error codes are stable: clients may switch on them.
ERR_BAD_MESSAGE = "bad_message"  # framing, header or tensor layout is wrong
ERR_BAD_FIELD = "bad_field"  # a well-formed message carries a wrong field or tensor
ERR_TOO_LARGE = "too_large"  # a size or count limit was exceeded
ERR_UNKNOWN_TYPE = "unknown_type"
ERR_INTERNAL = "internal"  # the server failed; the request may be retried


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


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Message:
    """One protocol message: a type, a request id, plain fields and named tensors."""

    type: str
    id: int = 0
    fields: Mapping[str, Any] = field(default_factory=dict)
    tensors: Mapping[str, np.ndarray] = field(default_factory=dict)


def encode(message: Message) -> list[bytes | memoryview]:
    """Encode a message into ZeroMQ frames: ``[header, tensor0, tensor1, ...]``.

    Tensor frames are zero-copy views of the arrays whenever they are already little-endian and
    C-contiguous, so the arrays must not change until the frames are sent.

    Raises:
        ProtocolError: a tensor has a dtype the protocol does not carry.
    """
    specs = []
    payloads = []
    for name, array in message.tensors.items():
        array = np.asarray(array)
        wire_name = array.dtype.name
        if wire_name not in WIRE_DTYPES:
            raise ProtocolError(ERR_BAD_FIELD, f"tensor {name!r}: dtype {wire_name} is not carried")
        if array.dtype != WIRE_DTYPES[wire_name] or not array.flags.c_contiguous:
            array = array.astype(WIRE_DTYPES[wire_name], order="C")
        specs.append({"name": name, "dtype": wire_name, "shape": list(array.shape)})
        payloads.append(array.reshape(-1).view(np.uint8).data)  # .data: the array's memoryview, no copy
    header = {
        MAGIC: PROTOCOL_VERSION,
        "type": message.type,
        "id": message.id,
        "fields": dict(message.fields),
        "tensors": specs,
    }
    return [msgpack.packb(header, use_bin_type=True), *payloads]


def decode(frames: Sequence[bytes | memoryview], limits: Limits = DEFAULT_LIMITS) -> Message:
    """Decode ZeroMQ frames into a :class:`Message`, checking every limit first.

    Raises:
        ProtocolError: with ``ERR_TOO_LARGE`` or ``ERR_BAD_MESSAGE`` naming what is wrong.
    """
    if not frames:
        raise ProtocolError(ERR_BAD_MESSAGE, "empty message: expected a header frame")
    if len(frames) > limits.max_frames:
        raise ProtocolError(ERR_TOO_LARGE, f"{len(frames)} frames exceed the limit of {limits.max_frames}")
    raw_header = bytes(frames[0])
    if len(raw_header) > limits.max_header_bytes:
        raise ProtocolError(
            ERR_TOO_LARGE, f"header of {len(raw_header)} bytes exceeds {limits.max_header_bytes}"
        )
    header = _unpack_header(raw_header, limits)
    try:
        tensors = _decode_tensors(header["tensors"], frames[1:], limits)
    except ProtocolError as exc:
        exc.request_id = header["id"]  # so the error reaches the request that caused it
        raise
    return Message(type=header["type"], id=header["id"], fields=header["fields"], tensors=tensors)


def _decode_tensors(
    specs: list[Any], payloads: Sequence[bytes | memoryview], limits: Limits
) -> dict[str, np.ndarray]:
    if len(specs) != len(payloads):
        raise ProtocolError(
            ERR_BAD_MESSAGE, f"header describes {len(specs)} tensors but {len(payloads)} frames follow"
        )
    total = 0
    tensors: dict[str, np.ndarray] = {}
    for spec, payload in zip(specs, payloads, strict=True):
        name, dtype, shape = _check_spec(spec, limits)
        nbytes = math.prod(shape) * dtype.itemsize
        total += nbytes
        if nbytes > limits.max_tensor_bytes or total > limits.max_total_bytes:
            raise ProtocolError(ERR_TOO_LARGE, f"tensor {name!r} of {nbytes} bytes exceeds the size limits")
        if len(payload) != nbytes:
            raise ProtocolError(
                ERR_BAD_MESSAGE,
                f"tensor {name!r}: {dtype.name}{list(shape)} needs {nbytes} bytes, frame has {len(payload)}",
            )
        if name in tensors:
            raise ProtocolError(ERR_BAD_MESSAGE, f"tensor {name!r} appears twice")
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
    version = header.get(MAGIC)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ERR_BAD_MESSAGE,
            f"header field {MAGIC!r} must be protocol version {PROTOCOL_VERSION}, got {version!r}",
        )
    if not isinstance(header.get("type"), str):
        raise ProtocolError(ERR_BAD_MESSAGE, "header field 'type' must be a string")
    if not isinstance(header.get("id", 0), int):
        raise ProtocolError(ERR_BAD_MESSAGE, "header field 'id' must be an integer")
    header.setdefault("id", 0)
    if not isinstance(header.setdefault("fields", {}), dict):
        raise ProtocolError(ERR_BAD_MESSAGE, "header field 'fields' must be a map")
    if not isinstance(header.setdefault("tensors", []), list):
        raise ProtocolError(ERR_BAD_MESSAGE, "header field 'tensors' must be a list")
    return header


def _check_spec(spec: Any, limits: Limits) -> tuple[str, np.dtype, tuple[int, ...]]:
    if not isinstance(spec, dict):
        raise ProtocolError(ERR_BAD_MESSAGE, "each tensor description must be a map")
    name, dtype_name, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if not isinstance(name, str) or not name:
        raise ProtocolError(ERR_BAD_MESSAGE, "tensor description needs a non-empty string 'name'")
    if dtype_name not in WIRE_DTYPES:
        raise ProtocolError(
            ERR_BAD_MESSAGE, f"tensor {name!r}: dtype {dtype_name!r} is not one of {sorted(WIRE_DTYPES)}"
        )
    if (
        not isinstance(shape, list)
        or len(shape) > limits.max_ndim
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 31 for d in shape)
    ):
        raise ProtocolError(
            ERR_BAD_MESSAGE, f"tensor {name!r}: shape must be a list of at most {limits.max_ndim} sizes ≥ 0"
        )
    return name, WIRE_DTYPES[dtype_name], tuple(shape)


def error_message(request_id: int, code: str, message: str) -> Message:
    """The one reply shape for every failure."""
    return Message(type="error", id=request_id, fields={"code": code, "message": message})
