"""docs/protocol.md parsed for tests: its message table, its JSON examples and its error-code table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from synthetic import face_landmarks

from neural_backend.protocol.wire import WIRE_DTYPES, Message

SPEC = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()


def table_rows(heading: str) -> list[list[str]]:
    """The rows (cells stripped of backticks) of the first table after ``heading``."""
    section = SPEC[SPEC.index(heading) :]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
            if not set(cells[0]) <= set("-") and cells[0] not in ("type", "code"):
                rows.append(cells)
        elif rows:
            break
    return rows


MESSAGE_TABLE = {row[0]: row for row in table_rows("## 5. Messages")}
EXAMPLES = [json.loads(block) for block in re.findall(r"```json rigstyle\n(.*?)```", SPEC, re.S)]


def message_from_example(example: dict) -> Message:
    """Build the message an example header describes, with zero tensors of the described layout, except
    ``landmarks2d``: a frontal face's iBUG-68 points in the frame (frames must show a face)."""
    tensors = {
        spec["name"]: np.zeros(spec["shape"], WIRE_DTYPES[spec["dtype"]])
        for spec in example.get("tensors", [])
    }
    if tensors.get("landmarks2d", np.zeros(0)).shape == (68, 2):
        height = tensors["beauty"].shape[0] if "beauty" in tensors else 256
        tensors["landmarks2d"] = face_landmarks(height).astype(tensors["landmarks2d"].dtype)
    options = {key: example[key] for key in ("auth", "deadline_ms", "progress") if key in example}
    return Message(example["type"], example["id"], example.get("fields", {}), tensors, **options)
