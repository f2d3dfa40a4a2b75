"""Search-space declarations: parameters and their feasible spaces (Katib's names)."""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema, model_validator

from dial.api.base import ApiModel, required_one_of
from dial.api.katib import katib_alias

PARAMETER_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
ParameterValue = float | int | str
ValueList = list[float | str]
# Katib writes bounds as strings ("0.01"): the API server takes a number or a string (any value, checked
# by CEL below and by the model), and the model reads a numeric string as its number.
Bound = Annotated[float, WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}],
                                         "description": "A number (Katib's strings such as \"0.01\" are read as numbers)."})]


class ParameterType(str, Enum):
    double = "double"
    int = "int"
    categorical = "categorical"
    discrete = "discrete"


class Scale(str, Enum):
    linear = "linear"
    log = "log"


class FeasibleSpace(ApiModel):
    """Bounds (`min`/`max`, optional `step`) or an explicit `list` of values."""

    # No CEL rule checks the bounds at `kubectl apply` time: a field that takes a number or Katib's string
    # ("0.01") is untyped in a structural schema, and CEL cannot see an untyped field. The model checks
    # them (min <= max, min > 0 on a log scale, step > 0), so `dial validate`, `dial run` and the
    # operator (the Experiment's Failed condition and event) name the field instead.

    min: Bound | None = None
    max: Bound | None = None
    step: Annotated[Bound, Field(gt=0)] | None = None
    list: Annotated[ValueList, Field(min_length=1)] | None = None
    scale: Scale = Scale.linear
    distribution: Literal["uniform", "logUniform", "normal", "logNormal"] | None = katib_alias("distribution")


class ActiveWhen(ApiModel):
    """A conditional parameter: it exists only while the categorical `parameter` takes one of `values`."""

    parameter: Annotated[str, Field(min_length=1)]
    values: Annotated[list[str], Field(min_length=1)]


class ParameterSpec(ApiModel):
    """One tunable parameter."""

    model_config = ApiModel.model_config | {"json_schema_extra": required_one_of("type", "parameterType")}

    name: Annotated[str, Field(pattern=PARAMETER_NAME_PATTERN, max_length=63)]
    type: ParameterType
    feasible_space: FeasibleSpace
    # Checked against the other parameters (unknown parent, cycles, values) by the engine's validation.
    active_when: ActiveWhen | None = None
    parameter_type: ParameterType | None = katib_alias("parameterType")

    @model_validator(mode="after")
    def _check_space(self) -> "ParameterSpec":
        space = self.feasible_space
        if self.type in (ParameterType.categorical, ParameterType.discrete):
            if space.list is None:
                raise ValueError(f"feasibleSpace.list: a {self.type.value} parameter needs a non-empty list of values")
            if len(set(map(str, space.list))) != len(space.list):
                raise ValueError("feasibleSpace.list: values must be distinct")
            if self.type is ParameterType.discrete:
                if any(isinstance(v, str) for v in space.list):
                    raise ValueError("feasibleSpace.list: a discrete parameter takes numbers only (use categorical for strings)")
                if space.scale is Scale.log and min(space.list) <= 0:  # type: ignore[type-var]
                    raise ValueError("feasibleSpace.list: log scale needs every value > 0")
            else:
                space.list = [str(v) for v in space.list]
            return self
        if space.list is not None:
            raise ValueError(f"feasibleSpace.list: a {self.type.value} parameter takes min/max, not a list")
        if space.min is None or space.max is None:
            missing = "min" if space.min is None else "max"
            raise ValueError(f"feasibleSpace.{missing}: required for a {self.type.value} parameter")
        if not (math.isfinite(space.min) and math.isfinite(space.max)):
            raise ValueError("feasibleSpace: min and max must be finite numbers")
        if space.min > space.max:
            raise ValueError(f"feasibleSpace.min: {space.min:g} is greater than max {space.max:g}")
        if space.scale is Scale.log and space.min <= 0:
            raise ValueError(f"feasibleSpace.min: log scale needs min > 0 (got {space.min:g})")
        if self.type is ParameterType.int:
            if space.min != int(space.min) or space.max != int(space.max):
                raise ValueError("feasibleSpace: an int parameter needs whole-number min and max")
            if space.step is not None and space.step != int(space.step):
                raise ValueError("feasibleSpace.step: an int parameter needs a whole-number step")
        if space.step is not None and space.scale is Scale.log:
            raise ValueError("feasibleSpace.step: a step cannot be combined with log scale (use a discrete list)")
        if space.min == space.max:
            raise ValueError(f"feasibleSpace.max: equals min ({space.min:g}), so the parameter has one value; "
                             "widen the range, or write the value into the template instead")
        if space.step is not None and space.step > space.max - space.min:
            raise ValueError(f"feasibleSpace.step: {space.step:g} is wider than the range {space.min:g}..{space.max:g}, "
                             f"so the parameter has one value ({space.min:g}); use a smaller step")
        return self
