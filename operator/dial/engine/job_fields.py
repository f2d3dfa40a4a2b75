"""Unknown fields in a Job template (`comand:`), found with the Kubernetes OpenAPI types that ship
with the `kubernetes` package: no cluster needed, and the same answer on a laptop and in the operator."""

from __future__ import annotations

import difflib
import re
from functools import cache
from typing import Any

_LIST = re.compile(r"^(?:list|List)\[(.+)\]$")
_DICT = re.compile(r"^(?:dict\(str, ?(.+)\)|Dict\[str, ?(.+)\])$")
# Where the Job and pod APIs take free-form values (extension data, embedded raw objects).
_OPAQUE = {"object", "str", "int", "float", "bool", "datetime", "date", "bytes", "RuntimeRawExtension"}


@cache
def _model(type_name: str) -> Any:
    from kubernetes.client import models

    return getattr(models, type_name, None)


def unknown_fields(trial_spec: dict[str, Any], path: str = "spec.trialTemplate.trialSpec") -> list[tuple[str, str]]:
    """(path, message) for every field the Job API does not have, in a whole Job or only its spec.

    Templates of another kind (`kind` other than Job) are not checked.
    """
    if "template" in trial_spec:
        return list(_walk(trial_spec, "V1JobSpec", path))
    if trial_spec.get("kind", "Job") != "Job" or trial_spec.get("apiVersion", "batch/v1") != "batch/v1":
        return []
    return list(_walk(trial_spec, "V1Job", path))


def _walk(value: Any, type_name: str, path: str):  # type: ignore[no-untyped-def]
    if (match := _LIST.match(type_name)) is not None:
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield from _walk(item, match.group(1), f"{path}[{i}]")
        return
    if (match := _DICT.match(type_name)) is not None:
        if isinstance(value, dict):
            for key, item in value.items():
                yield from _walk(item, match.group(1) or match.group(2), f"{path}.{key}")
        return
    model = None if type_name in _OPAQUE else _model(type_name)
    if model is None or not isinstance(value, dict):
        return  # a scalar, a placeholder string where a number goes, or a type this client does not know
    fields = {wire: model.openapi_types[attr] for attr, wire in model.attribute_map.items()}
    for key, item in value.items():
        if key in fields:
            yield from _walk(item, fields[key], f"{path}.{key}")
            continue
        close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        yield f"{path}.{key}", f"unknown field of a Kubernetes {type_name.removeprefix('V1')}{hint}"
