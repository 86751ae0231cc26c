"""Shared-memory fast path for clients on the server's host: server-owned files in /dev/shm.

The server creates each segment (``/dev/shm/rigstyle-<server pid>-<32 hex>``, mode 0600) when a client's
``hello`` asks for one, and alone unlinks it: on ``release_shm``, when it evicts its least recently used
segment, when it exits, or (after a crash) when the next server starts and finds a file whose pid is
dead. Segments are plain files mapped with :mod:`mmap`, never :mod:`multiprocessing.shared_memory`, so
Python's resource tracker never sees them and cannot unlink one when a client exits. No torch here.

A segment is two areas of equal size: ``[request area | reply area]``. A client writes its request
tensors into the request area, the server writes its reply tensors into the reply area.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .wire import ERR_SHM_UNAVAILABLE, SHM_ALIGN, ProtocolError, wire_array

SHM_DIR = Path("/dev/shm")
_NAME = re.compile(r"rigstyle-(\d+)-([0-9a-f]{32})")


def host_id() -> str | None:
    """This host's boot id (same for every process on the machine), or None where shm is unsupported."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return boot if SHM_DIR.is_dir() else None


@dataclass(frozen=True)
class SegmentInfo:
    """What ``hello`` grants: where the segment is and where its two areas lie (bytes)."""

    segment: str  # 32 lowercase hex digits; the id requests and replies name in their header's ``shm``
    path: str
    request_offset: int
    request_bytes: int
    reply_offset: int
    reply_bytes: int

    def to_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> SegmentInfo:
        """Parse a grant, refusing any path that is not one of our segment files (a server cannot make a
        client map an arbitrary file)."""
        info = cls(**{name: fields[name] for name in cls.__dataclass_fields__})
        path = Path(info.path)
        match = _NAME.fullmatch(path.name)
        if path.parent != SHM_DIR or match is None or match.group(2) != info.segment:
            raise ValueError(f"shared-memory grant names an unexpected file {info.path!r}")
        return info


class Segment:
    """One mapped segment file, ``[request area | reply area]``."""

    def __init__(self, info: SegmentInfo, create: bool):
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(info.path, flags, 0o600)
        try:
            size = info.reply_offset + info.reply_bytes
            if create:
                os.ftruncate(fd, size)  # sparse: pages cost memory only once written
            elif os.fstat(fd).st_size < size:
                raise ValueError(f"shared-memory file {info.path} is smaller than granted")
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.info = info
        view = memoryview(self._map)
        self.request = view[info.request_offset : info.request_offset + info.request_bytes]
        self.reply = view[info.reply_offset : info.reply_offset + info.reply_bytes]


def layout(area: memoryview, specs: Mapping[str, tuple[tuple[int, ...], Any]]) -> dict[str, np.ndarray]:
    """Writable arrays inside ``area`` at the offsets :func:`pack` gives tensors of these shapes and dtypes
    in this order, so that packing them (in the same order) copies nothing. Those that do not fit are
    left out."""
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for name, (shape, dtype) in specs.items():
        array = wire_array(name, np.empty(0, dtype))  # checks the dtype is carried; gives its wire form
        nbytes = math.prod(shape) * array.itemsize
        if offset + nbytes > len(area):
            continue
        arrays[name] = np.frombuffer(area, array.dtype, count=math.prod(shape), offset=offset).reshape(shape)
        offset += -(-nbytes // SHM_ALIGN) * SHM_ALIGN
    return arrays


def pack(area: memoryview, tensors: Mapping[str, Any]) -> dict[str, int]:
    """Copy ``tensors`` into ``area`` at aligned offsets; returns name -> offset of those that fit.

    Tensors that do not fit are left out: they travel as frames. A tensor already at its place (from
    :func:`layout`) is not copied; one elsewhere inside ``area`` is copied out first, so that packing the
    others cannot overwrite it before it is read.
    """
    base = np.frombuffer(area, np.uint8)
    start, end = base.ctypes.data, base.ctypes.data + len(area)
    arrays = {name: wire_array(name, value) for name, value in tensors.items()}
    offsets: dict[str, int] = {}
    offset = 0
    for name, array in arrays.items():
        if offset + array.nbytes <= len(area):
            offsets[name] = offset
            offset += -(-array.nbytes // SHM_ALIGN) * SHM_ALIGN
    for name, array in arrays.items():
        address = array.ctypes.data
        if start - array.nbytes < address < end and address != start + offsets.get(name, -1):
            arrays[name] = array.copy()  # lies in the area, but not at its place
    for name, offset in offsets.items():
        array = arrays[name]
        if array.ctypes.data != start + offset:
            base[offset : offset + array.nbytes] = array.reshape(-1).view(np.uint8)
    return offsets


class SegmentTable:
    """The server's segments, least recently used first. Thread-safe.

    Evicting a segment unlinks its file and drops the table's mapping; arrays still viewing it (a
    request in flight) keep the memory alive until they are gone.
    """

    def __init__(self, max_segments: int, max_bytes: int, directory: Path = SHM_DIR):
        self.max_segments = max_segments
        self.max_bytes = max_bytes
        self.directory = directory
        self._segments: OrderedDict[str, Segment] = OrderedDict()
        self._lock = threading.Lock()
        remove_stale(directory)

    def create(self, area_bytes: int) -> SegmentInfo:
        area_bytes = max(SHM_ALIGN, min(int(area_bytes), self.max_bytes))
        area_bytes = -(-area_bytes // mmap.PAGESIZE) * mmap.PAGESIZE
        segment_id = secrets.token_hex(16)
        path = self.directory / f"rigstyle-{os.getpid()}-{segment_id}"
        info = SegmentInfo(segment_id, str(path), 0, area_bytes, area_bytes, area_bytes)
        segment = Segment(info, create=True)
        with self._lock:
            self._segments[segment_id] = segment
            while len(self._segments) > self.max_segments:
                _, oldest = self._segments.popitem(last=False)
                _unlink(oldest.info.path)
        return info

    def get(self, segment_id: str) -> Segment:
        """The segment (marked as just used).

        Raises:
            ProtocolError: ``shm_unavailable`` for an unknown, released or evicted segment.
        """
        with self._lock:
            segment = self._segments.get(segment_id)
            if segment is None:
                raise ProtocolError(
                    ERR_SHM_UNAVAILABLE, f"shared-memory segment {segment_id[:32]!r} is unknown or expired"
                )
            self._segments.move_to_end(segment_id)
            return segment

    def request_area(self, segment_id: str) -> memoryview:
        return self.get(segment_id).request

    def release(self, segment_id: str) -> bool:
        with self._lock:
            segment = self._segments.pop(segment_id, None)
        if segment is not None:
            _unlink(segment.info.path)
        return segment is not None

    def close(self) -> None:
        with self._lock:
            segments, self._segments = list(self._segments.values()), OrderedDict()
        for segment in segments:
            _unlink(segment.info.path)

    def __len__(self) -> int:
        return len(self._segments)


def remove_stale(directory: Path = SHM_DIR) -> int:
    """Unlink segment files left by servers that no longer run (a SIGKILLed server cannot clean up)."""
    removed = 0
    for path in directory.glob("rigstyle-*-*"):
        match = _NAME.fullmatch(path.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        _unlink(str(path))
        removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
