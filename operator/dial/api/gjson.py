"""A small, pure subset of GJSON (github.com/tidwall/gjson), the path syntax of Katib's success and failure conditions.

Supported: keys separated by `.` (`\\.` escapes a dot, a number indexes an array), `#` (an array's
length, or `#.key` to map over it), queries `#(path op value)` (the first match) and `#(path op value)#`
(every match) with `==`, `!=`, `<`, `<=`, `>`, `>=`, `%` and `!%` (`*`/`?` patterns) or `#(path)` (the
path exists), the pipe `|` (the rest applies to the result as a whole, not to each element), `@this`
and the multipath array `[path, path]`. Anything else is refused by `parse` with what is not supported,
so a condition never silently means something other than it does in Katib.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Any, Iterator

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "!%", "%")


class GjsonError(ValueError):
    """A path that this subset cannot read."""


@dataclass(frozen=True)
class Key:
    name: str


@dataclass(frozen=True)
class Count:
    """`#`: the length of an array, or with more path after a `.`, that path on each element."""


@dataclass(frozen=True)
class Query:
    path: list["Step"] | None  # None: compare the element itself (`#(=="x")`)
    operator: str | None  # None: the path exists
    value: Any
    all: bool


@dataclass(frozen=True)
class This:
    """`@this`: the current value."""


@dataclass(frozen=True)
class Multi:
    """`[p1,p2]`: an array of what each path finds (the ones that find nothing are left out)."""

    paths: list[list["Step"]]


@dataclass(frozen=True)
class Step:
    part: Key | Count | Query | This | Multi
    piped: bool  # reached through `|` (apply to the result whole) rather than `.`


def parse(path: str) -> list[Step]:
    """The steps of a GJSON path; GjsonError names what this subset does not read."""
    if not path.strip():
        raise GjsonError("empty path")
    steps: list[Step] = []
    for piped, text in _split(path):
        steps.append(Step(_part(text, path), piped))
    return steps


def get(document: Any, path: str) -> Any:
    """What `path` finds in a JSON-like document, or MISSING."""
    return _evaluate(parse(path), document)


def holds(document: Any, path: str) -> bool:
    """Katib's reading of a condition: it holds when the path finds an object or a non-empty array."""
    found = get(document, path)
    return isinstance(found, dict) or (isinstance(found, list) and len(found) > 0)


def first_match(document: Any, path: str) -> dict[str, Any] | None:
    """The object a holding condition found (the first of an array), for its reason and message."""
    found = get(document, path)
    if isinstance(found, list):
        found = found[0] if found else None
    return found if isinstance(found, dict) else None


def _scan(text: str) -> Iterator[tuple[str, bool]]:
    """Each character of `text` (an escaped one with its backslash) and whether it is at the top level:
    outside brackets, parentheses and quoted strings, where separators count."""
    depth, quoted, escaped = 0, False, False
    for ch in text:
        if escaped:
            escaped = False
            yield "\\" + ch, False
        elif ch == "\\":
            escaped = True
        elif quoted:
            quoted = ch != '"'
            yield ch, False
        else:
            if ch == '"':
                quoted = True
            elif ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
                if depth < 0:
                    raise GjsonError(f"unbalanced {ch!r} in {text!r}")
            yield ch, depth == 0
    if quoted or depth or escaped:
        raise GjsonError(f"unterminated string, bracket or escape in {text!r}")


def _split(path: str) -> list[tuple[bool, str]]:
    """Top-level components and whether each was reached through a pipe; brackets, parentheses and
    quoted strings are kept whole."""
    parts: list[tuple[bool, str]] = []
    current, piped = "", False
    for ch, top in _scan(path):
        if top and ch in ".|":
            if current == "":
                # `#(...)#|#(...)#`: a query's trailing `#` ends it, so an empty part before a separator is
                # only legal right after one.
                raise GjsonError(f"empty component in {path!r}")
            parts.append((piped, current))
            current, piped = "", ch == "|"
            continue
        current += ch
    if current == "":
        raise GjsonError(f"path {path!r} ends with a separator")
    parts.append((piped, current))
    return parts


def _part(text: str, path: str) -> Key | Count | Query | This | Multi:
    if text == "#":
        return Count()
    if text == "@this":
        return This()
    if text.startswith("@"):
        raise GjsonError(f"modifier {text!r} is not supported (only @this)")
    if text.startswith("#(") and (text.endswith(")") or text.endswith(")#")):
        every = text.endswith(")#")
        return _query(text[2:-2] if every else text[2:-1], every)
    if text.startswith("[") and text.endswith("]"):
        return Multi([parse(p.strip()) for p in _commas(text[1:-1])])
    if text.startswith("{") or text.startswith("!") or text.startswith("~"):
        raise GjsonError(f"{text!r}: object multipaths, literals and ~ are not supported")
    name = text.replace("\\.", ".").replace("\\|", "|")
    if any(ch in name.replace("\\*", "").replace("\\?", "") for ch in "*?"):
        raise GjsonError(f"wildcards in {text!r} are not supported")
    if "#" in name or "(" in name or "\\" in name.replace("\\*", "").replace("\\?", ""):
        raise GjsonError(f"cannot read component {text!r} of {path!r}")
    return Key(name.replace("\\*", "*").replace("\\?", "?"))


def _commas(text: str) -> list[str]:
    out, current = [], ""
    for ch, top in _scan(text):
        if top and ch == ",":
            out.append(current)
            current = ""
            continue
        current += ch
    if current.strip():
        out.append(current)
    if not out:
        raise GjsonError("empty multipath []")
    return out


def _query(body: str, every: bool) -> Query:
    quoted, i = False, 0
    while i < len(body):
        ch = body[i]
        if ch == '"':
            quoted = not quoted
        elif not quoted:
            for op in _OPERATORS:
                if body.startswith(op, i):
                    key, raw = body[:i].strip(), body[i + len(op):].strip()
                    return Query(parse(key) if key else None, op, _literal(raw), every)
        i += 1
    if not body.strip():
        raise GjsonError("empty query #()")
    return Query(parse(body.strip()), None, None, every)


def _literal(raw: str) -> Any:
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except ValueError:
            raise GjsonError(f"bad string {raw!r} in a query") from None
        return value
    if raw in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[raw]
    try:
        return float(raw)
    except ValueError:
        raise GjsonError(f"a query compares with a string in quotes, a number, true, false or null (got {raw!r})") from None


def _evaluate(steps: list[Step], value: Any) -> Any:
    for i, step in enumerate(steps):
        if value is MISSING:
            return MISSING
        part = step.part
        rest = steps[i + 1:]
        maps = bool(rest) and not rest[0].piped
        if isinstance(part, Count):
            if not isinstance(value, list):
                return MISSING
            if not rest:
                return len(value)
            if maps:
                return [found for e in value if (found := _evaluate(rest, e)) is not MISSING]
            value = len(value)
        elif isinstance(part, Query):
            if not isinstance(value, list):
                return MISSING
            matches = [e for e in value if _matches(part, e)]
            if not part.all:
                value = matches[0] if matches else MISSING
            elif maps:
                return [found for e in matches if (found := _evaluate(rest, e)) is not MISSING]
            else:
                value = matches
        elif isinstance(part, This):
            continue
        elif isinstance(part, Multi):
            value = [found for p in part.paths if (found := _evaluate(p, value)) is not MISSING]
        else:
            value = _key(value, part.name)
    return value


def _key(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return value.get(name, MISSING)
    if isinstance(value, list) and name.isdigit():
        index = int(name)
        return value[index] if index < len(value) else MISSING
    return MISSING


def _matches(query: Query, element: Any) -> bool:
    found = element if query.path is None else _evaluate(query.path, element)
    if query.operator is None:
        return found is not MISSING
    if found is MISSING:
        return False
    return _compare(found, query.operator, query.value)


def _compare(found: Any, operator: str, value: Any) -> bool:
    if operator in ("%", "!%"):
        like = isinstance(found, str) and isinstance(value, str) and fnmatch.fnmatchcase(found, value)
        return like if operator == "%" else not like
    if isinstance(value, str):
        if not isinstance(found, str):
            return operator == "!="
        left, right = found, value
    elif isinstance(value, bool) or value is None:
        equal = found is value
        return equal if operator == "==" else (not equal if operator == "!=" else False)
    else:
        if isinstance(found, bool) or not isinstance(found, (int, float)):
            return operator == "!="
        left, right = float(found), value  # type: ignore[assignment]
    return {"==": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
            ">": left > right, ">=": left >= right}[operator]
