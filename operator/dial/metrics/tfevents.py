"""TensorFlow event files (Katib's TensorFlowEvent collector) read without TensorFlow: scalar summaries as
JSON metric lines, so the JSON reader turns them into points like any other output.

An event file is a sequence of TFRecords (length, its CRC, the record, its CRC); each record is an `Event`
protocol buffer whose `summary` holds tagged values: `simple_value` (TF1, tf.summary.scalar in Keras)
or a one-element `tensor` (TF2). Katib's rule picks the tags: metric `accuracy` reads every tag that
starts with `accuracy`, and `test/accuracy` only those in files under a directory ending in `test`. The
CRCs are not checked: a record cut off at the end of a file being written is read once it is complete.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Iterator

_FLOAT, _DOUBLE, _INT32, _INT64 = 1, 2, 3, 9  # TensorFlow's DataType numbers


def records(data: bytes) -> tuple[list[bytes], int]:
    """The complete TFRecords at the start of `data`, and how many bytes they take."""
    out, offset = [], 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        end = offset + 12 + length + 4
        if end > len(data):
            break
        out.append(data[offset + 12:offset + 12 + length])
        offset = end
    return out, offset


def _fields(message: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protocol buffer message: ints for varints and fixed widths
    (as raw bits), bytes for length-delimited fields."""
    i = 0
    while i < len(message):
        key, i = _varint(message, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(message, i)
            yield number, wire, value
        elif wire == 1:
            yield number, wire, struct.unpack_from("<Q", message, i)[0]
            i += 8
        elif wire == 5:
            yield number, wire, struct.unpack_from("<I", message, i)[0]
            i += 4
        elif wire == 2:
            length, i = _varint(message, i)
            yield number, wire, message[i:i + length]
            i += length
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _tensor_value(tensor: bytes) -> float | None:
    """The single number of a scalar TensorProto (float, double, int32 or int64)."""
    dtype, content = 0, b""
    values: list[float] = []
    for number, wire, value in _fields(tensor):
        if number == 1 and wire == 0:
            dtype = int(value)  # type: ignore[arg-type]
        elif number == 4 and wire == 2:
            content = value  # type: ignore[assignment]
        elif number == 5:  # float_val, packed or not
            raw = value if wire == 2 else struct.pack("<I", value)  # type: ignore[arg-type]
            values += [v for (v,) in struct.iter_unpack("<f", raw)]  # type: ignore[arg-type]
        elif number == 6:
            raw = value if wire == 2 else struct.pack("<Q", value)  # type: ignore[arg-type]
            values += [v for (v,) in struct.iter_unpack("<d", raw)]  # type: ignore[arg-type]
    if values:
        return values[0]
    formats = {_FLOAT: "<f", _DOUBLE: "<d", _INT32: "<i", _INT64: "<q"}
    if content and dtype in formats and len(content) == struct.calcsize(formats[dtype]):
        return float(struct.unpack(formats[dtype], content)[0])
    return None


def scalars(event: bytes) -> tuple[int, list[tuple[str, float]]]:
    """The step of an Event record and its scalar summaries as (tag, value)."""
    step, found = 0, []
    for number, wire, value in _fields(event):
        if number == 2 and wire == 0:
            step = int(value)  # type: ignore[arg-type]
        elif number == 5 and wire == 2:
            for vnumber, vwire, entry in _fields(value):  # type: ignore[arg-type]
                if vnumber != 1 or vwire != 2:
                    continue
                tag, number_value = "", None
                for fnumber, fwire, field in _fields(entry):  # type: ignore[arg-type]
                    if fnumber == 1 and fwire == 2:
                        tag = field.decode("utf-8", errors="replace")  # type: ignore[union-attr]
                    elif fnumber == 2 and fwire == 5:
                        number_value = struct.unpack("<f", struct.pack("<I", field))[0]
                    elif fnumber == 8 and fwire == 2:
                        number_value = _tensor_value(field)  # type: ignore[arg-type]
                if tag and number_value is not None:
                    found.append((tag, float(number_value)))
    return step, found


def considered(tag: str, metric: str, file: str) -> bool:
    """Katib's rule: the tag starts with the metric's last path part, in a file under the metric's directory."""
    directory = os.path.dirname(metric) if "/" in metric else os.path.dirname(file)
    return tag.startswith(metric.split("/")[-1]) and os.path.dirname(file).endswith(directory)


class EventDirectoryFollower:
    """New scalar summaries in the event files under a directory, as JSON metric lines (`{"step": 3, "accuracy": 0.9}`)."""

    def __init__(self, directory: Path, metric_names: list[str]):
        self.directory = directory
        self.metric_names = metric_names
        self._offsets: dict[Path, int] = {}

    def read_lines(self, *, final: bool = False) -> list[str]:
        lines = []
        for path in sorted(p for p in self.directory.rglob("*") if p.is_file()) if self.directory.is_dir() else []:
            try:
                data = path.read_bytes()[self._offsets.get(path, 0):]
            except OSError:
                continue
            complete, used = records(data)
            self._offsets[path] = self._offsets.get(path, 0) + used
            for record in complete:
                try:
                    step, values = scalars(record)
                except (ValueError, struct.error):
                    continue  # not an event file, or not an event
                point = {m: v for m in self.metric_names for tag, v in values
                         if considered(tag, m, str(path))}
                if point:
                    lines.append(json.dumps({"step": step, **point}))
        return lines
