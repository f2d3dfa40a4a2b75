"""TensorFlow event files read without TensorFlow (Katib's TensorFlowEvent collector)."""

from __future__ import annotations

import struct
from pathlib import Path

from dial.api.experiment import MetricsFormat
from dial.metrics.parsing import MetricReader
from dial.metrics.tfevents import EventDirectoryFollower, considered, records, scalars


def varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def field(number: int, wire: int, payload: bytes) -> bytes:
    key = varint(number << 3 | wire)
    return key + (varint(len(payload)) + payload if wire == 2 else payload)


def simple_value(tag: str, value: float) -> bytes:
    """A TF1 Summary.Value with simple_value."""
    return field(1, 2, field(1, 2, tag.encode()) + field(2, 5, struct.pack("<f", value)))


def tensor_value(tag: str, value: float) -> bytes:
    """A TF2 Summary.Value with a scalar float tensor in tensor_content."""
    tensor = field(1, 0, varint(1)) + field(4, 2, struct.pack("<f", value))
    return field(1, 2, field(1, 2, tag.encode()) + field(8, 2, tensor))


def event(step: int, *values: bytes) -> bytes:
    return field(1, 1, struct.pack("<d", 1.7e9)) + field(2, 0, varint(step)) + field(5, 2, b"".join(values))


def record(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + b"\0\0\0\0" + data + b"\0\0\0\0"  # CRCs are not checked


def test_records_stop_before_an_incomplete_one() -> None:
    data = record(b"one") + record(b"two")
    assert records(data) == ([b"one", b"two"], len(data))
    assert records(data + record(b"three")[:-2]) == ([b"one", b"two"], len(data))


def test_scalars_of_tf1_and_tf2_events() -> None:
    assert scalars(event(3, simple_value("accuracy", 0.5), tensor_value("loss", 0.25))) == (3, [("accuracy", 0.5),
                                                                                              ("loss", 0.25)])


def test_katibs_rule_for_which_tags_count() -> None:
    assert considered("accuracy_1", "accuracy", "/logs/test/events.out")
    assert considered("accuracy", "test/accuracy", "/logs/test/events.out")
    assert not considered("accuracy", "train/accuracy", "/logs/test/events.out")
    assert not considered("loss", "accuracy", "/logs/test/events.out")


def test_event_files_become_points_as_they_grow(tmp_path: Path) -> None:
    (tmp_path / "test").mkdir()
    path = tmp_path / "test" / "events.out.tfevents.1.host"
    path.write_bytes(record(field(3, 2, b"brain.Event:2")) + record(event(1, tensor_value("accuracy", 0.5))))
    follower = EventDirectoryFollower(tmp_path, ["accuracy"])
    reader = MetricReader(["accuracy"], MetricsFormat.json)
    assert [(p.step, p.value) for p in reader.feed(follower.read_lines())] == [(1, 0.5)]
    with path.open("ab") as f:
        f.write(record(event(2, simple_value("accuracy", 0.75), simple_value("other", 1.0))))
    assert [(p.step, p.value) for p in reader.feed(follower.read_lines())] == [(2, 0.75)]
    assert follower.read_lines() == []


def test_a_missing_directory_has_no_lines_yet(tmp_path: Path) -> None:
    assert EventDirectoryFollower(tmp_path / "later", ["accuracy"]).read_lines() == []
