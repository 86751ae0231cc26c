"""docs/protocol.md is the contract: every message type it lists has an example that round-trips, every
request type is served, and its error-code table is the implementation's."""

from __future__ import annotations

import pytest
from protocol_spec import EXAMPLES, MESSAGE_TABLE, message_from_example, table_rows

from neural_backend.protocol.wire import ERROR_CODES, decode, encode


def test_the_message_table_lists_the_types_the_examples_use() -> None:
    assert len(MESSAGE_TABLE) >= 11
    assert {example["type"] for example in EXAMPLES} == set(MESSAGE_TABLE)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e['type']}-{e['id']}")
def test_every_example_round_trips(example: dict) -> None:
    if "shm" in example:
        area = memoryview(bytearray(1 << 16))
        offsets = {s["name"]: s["offset"] for s in example["tensors"] if "offset" in s}
        message = message_from_example(example).replace(shm=example["shm"])
        decoded = decode(encode(message, offsets), shm=lambda segment: area)
        assert decoded.shm == example["shm"]
    else:
        message = message_from_example(example)
        decoded = decode(encode(message))
    assert decoded.type == example["type"] and decoded.id == example["id"]
    assert dict(decoded.fields) == example.get("fields", {})
    for spec in example.get("tensors", []):
        assert decoded.tensors[spec["name"]].shape == tuple(spec["shape"])
        assert decoded.tensors[spec["name"]].dtype.name == spec["dtype"]
    assert decoded.deadline_ms == example.get("deadline_ms") and decoded.progress == example.get(
        "progress", False
    )


def test_the_error_code_table_is_the_implementation_s() -> None:
    assert [row[0] for row in table_rows("| code                  |")] == list(ERROR_CODES)
