"""The base model every API object derives from: camelCase in YAML, snake_case in Python."""

from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

API_GROUP = "dial.dev"
API_VERSION = "v1alpha1"
# Labels on every Trial and workload: users and the operator select by them.
EXPERIMENT_LABEL = f"{API_GROUP}/experiment"
TRIAL_LABEL = f"{API_GROUP}/trial"


class ApiModel(BaseModel):
    """Strict on input (unknown fields are errors), camelCase on the wire."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-able dict as it appears in YAML and in the Kubernetes API."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def first_repeat(names: list[str]) -> tuple[int, str] | None:
    """The index and value of the first name that appeared earlier in the list, or None."""
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            return i, name
        seen.add(name)
    return None


def required_one_of(dial: str, katib: str) -> Callable[[dict[str, Any]], None]:
    """A JSON-schema hook for a required field that Katib names otherwise: the CRD requires one of the two
    names (Katib's is normalised into Dial's before the model reads it, so Python still requires `dial`)."""

    def hook(schema: dict[str, Any]) -> None:
        required = [name for name in schema.get("required", []) if name != dial]
        if required:
            schema["required"] = required
        else:
            schema.pop("required", None)
        schema.setdefault("x-kubernetes-validations", []).append(
            {"rule": f"has(self.{dial}) || has(self.{katib})", "message": f"{dial} (or Katib's {katib}) is required"})

    return hook
