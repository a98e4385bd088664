"""Typed hyperparameter schema and validation.

Kept free of torch/numpy imports so the web tier can validate forms and render
schemas without loading the training stack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ParamType = Literal["int", "float", "bool", "choice"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class CoercionError(ValueError):
    """A single value could not be converted to the declared type."""


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter: its type, bounds, default and UI hints."""

    name: str
    type: ParamType
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    log: bool = False
    help: str = ""

    def __post_init__(self) -> None:
        # Fail at import time on a malformed registry rather than on a user request.
        if self.type == "choice" and not self.choices:
            raise ValueError(f"{self.name}: choice parameter needs choices")
        if self.log and (self.min is None or self.min <= 0):
            raise ValueError(f"{self.name}: log-scale parameter needs min > 0")
        if self.validate(self.default):
            raise ValueError(f"{self.name}: default {self.default!r} is invalid")

    def coerce(self, value: Any) -> Any:
        """Convert `value` to this parameter's Python type or raise CoercionError."""
        if self.type == "bool":
            return _to_bool(value)
        if self.type == "int":
            return _to_int(value)
        if self.type == "float":
            return _to_float(value)
        text = str(value).strip() if isinstance(value, str) else value
        if text not in self.choices:
            raise CoercionError(f"must be one of: {', '.join(self.choices)}")
        return text

    def validate(self, value: Any) -> list[str]:
        """Return error messages for an already coerced value (empty when valid)."""
        errors: list[str] = []
        if self.type in ("int", "float"):
            if self.min is not None and value < self.min:
                errors.append(f"must be >= {_fmt(self.min)}")
            if self.max is not None and value > self.max:
                errors.append(f"must be <= {_fmt(self.max)}")
        return errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices),
            "log": self.log,
            "help": self.help,
        }

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema fragment for form builders and API docs."""
        if self.type == "choice":
            out: dict[str, Any] = {"type": "string", "enum": list(self.choices)}
        else:
            out = {"type": {"int": "integer", "float": "number", "bool": "boolean"}[self.type]}
            if self.min is not None:
                out["minimum"] = self.min
            if self.max is not None:
                out["maximum"] = self.max
        out["default"] = self.default
        out["description"] = self.help
        if self.log:
            out["x-log-scale"] = True
        return out


def validate_against(
    specs: Sequence[ParamSpec], params: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Coerce `params` against `specs`, filling defaults.

    Returns ``(clean_params, errors_by_field)``; ``clean_params`` only holds
    valid values, so callers must check ``errors`` before using it. ``None``
    and blank strings mean "use the default", which is what HTML forms send
    for untouched fields.
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        return {}, {"__all__": ["params must be an object mapping names to values"]}
    by_name = {spec.name: spec for spec in specs}
    clean: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for key in params:
        if key not in by_name:
            errors[str(key)] = [f"unknown parameter (allowed: {', '.join(sorted(by_name))})"]
    for spec in specs:
        raw = params.get(spec.name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            clean[spec.name] = spec.default
            continue
        try:
            value = spec.coerce(raw)
        except CoercionError as exc:
            errors[spec.name] = [str(exc)]
            continue
        field_errors = spec.validate(value)
        if field_errors:
            errors[spec.name] = field_errors
        else:
            clean[spec.name] = value
    return clean, errors


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise CoercionError("must be a boolean (true/false)")


def _to_int(value: Any) -> int:
    # bool is an int subclass; accepting it would turn a form checkbox into 1.
    if isinstance(value, bool):
        raise CoercionError("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = value.strip()
        try:
            return int(value)
        except ValueError:
            pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CoercionError("must be an integer") from None
    if not math.isfinite(number) or not number.is_integer():
        raise CoercionError("must be an integer")
    return int(number)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise CoercionError("must be a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise CoercionError("must be a number") from None
    if not math.isfinite(number):
        raise CoercionError("must be a finite number")
    return number


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


def params_json_schema(specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """JSON Schema object for a whole parameter list."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {spec.name: spec.json_schema() for spec in specs},
    }
