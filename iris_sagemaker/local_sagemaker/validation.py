"""Request validation driven by botocore's installed SageMaker service model.

Two layers, as with the real service:

* what boto3 checks on the client (botocore's own ``ParamValidator``: unknown parameters, types,
  required members, minimums), reported with boto3's "Parameter validation failed" text;
* what the service checks (every member's maximum length, pattern, enum and numeric range, recursively
  through structures, lists and maps), reported like SageMaker: ``1 validation error detected: Value
  'x' at 'trainingJobName' failed to satisfy constraint: Member must satisfy regular expression
  pattern: ...``.

Both raise ``botocore.exceptions.ClientError`` with code ``ValidationException``. The model is loaded
lazily, once per process. Patterns written in Java-only regex syntax (``\\p{L}`` and surrogate-pair
ranges) are translated to Python's ``re``; a pattern that still cannot compile is not checked.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.model import MapShape, OperationModel, ServiceModel, Shape, StructureShape
from botocore.validate import ParamValidator

from .errors import validation_error

_SHOWN = 200  # longer values are cut in messages
_NUMERIC = ("integer", "long", "float", "double")
_UNICODE_CLASSES = {
    "M": r"\w",
    "N": r"\d",
    "Alnum": r"a-zA-Z0-9",
    "Z": r"\s",
    "S": r"!-/:-@\[-`{-~\u00a1-\u00bf",
    "P": r"!-/:-@\[-`{-~\u00a1-\u00bf",
    "ASCII": r"\x00-\x7f",
}

_lock = threading.Lock()
_model: ServiceModel | None = None
_patterns: dict[str, re.Pattern[str] | None] = {}


def service_model() -> ServiceModel:
    """botocore's SageMaker model of the engine's operations, loaded on first use, kept for the process.

    Read with botocore's loader (the same search path as a session: botocore's data, then
    ``~/.aws/models``), without importing ``botocore.session`` (about 0.1 s), and through the on-disk
    cut-down copy of ``service_model`` (about 65 ms less than parsing the full model).
    """
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                from .service_model import SERVICE, load_model_data

                _model = ServiceModel(load_model_data(), service_name=SERVICE)
    return _model


def operation_model(operation: str) -> OperationModel:
    return service_model().operation_model(operation)


@functools.cache
def other_service_model(service: str) -> ServiceModel:
    """botocore's model of a service beside SageMaker (``sagemaker-runtime``, ``logs``), loaded once."""
    from botocore.loaders import Loader

    return ServiceModel(Loader().load_service_model(service, "service-2"), service_name=service)


def validate_request(operation: str, params: Mapping[str, Any]) -> None:
    """Raise ``ClientError(ValidationException)`` unless ``params`` is a valid ``operation`` request."""
    shape = operation_model(operation).input_shape
    report = ParamValidator().validate(dict(params), shape)
    if report.has_errors():
        raise validation_error(f"Parameter validation failed:\n{report.generate_report()}", operation)
    errors = list(check_value(shape, params, ""))
    if errors:
        raise validation_error(format_errors(errors), operation)


def format_errors(errors: list[str]) -> str:
    plural = "s" if len(errors) > 1 else ""
    return f"{len(errors)} validation error{plural} detected: " + "; ".join(errors)


def check_value(shape: Shape, value: Any, path: str) -> Iterator[str]:
    """Yield one SageMaker-style message per violated constraint of ``value`` (and its children)."""
    if value is None:
        return
    kind = shape.type_name
    if kind == "structure":
        yield from _check_structure(shape, value, path)  # type: ignore[arg-type]
    elif kind == "list":
        yield from _describe(value, path, _length_problems(shape, value))
        for index, item in enumerate(value, start=1):
            yield from check_value(shape.member, item, f"{path}.{index}.member")  # type: ignore[attr-defined]
    elif kind == "map":
        yield from _check_map(shape, value, path)  # type: ignore[arg-type]
    else:
        yield from _describe(value, path, scalar_problems(shape, value))


def _check_structure(shape: StructureShape, value: Mapping[str, Any], path: str) -> Iterator[str]:
    for name in shape.required_members:
        if value.get(name) is None:
            yield from _describe(None, _join(path, name), ["Member must not be null"])
    for name, item in value.items():
        member = shape.members.get(name)
        if member is not None:
            yield from check_value(member, item, _join(path, name))


def _check_map(shape: MapShape, value: Mapping[Any, Any], path: str) -> Iterator[str]:
    problems = _length_problems(shape, value)
    key_problems = sorted({p for key in value for p in scalar_problems(shape.key, key)})
    if key_problems:
        problems.append(f"Map keys must satisfy constraint: [{', '.join(key_problems)}]")
    scalar_values = shape.value.type_name not in ("structure", "list", "map")
    if scalar_values:
        value_problems = sorted({p for item in value.values() for p in scalar_problems(shape.value, item)})
        if value_problems:
            problems.append(f"Map value must satisfy constraint: [{', '.join(value_problems)}]")
    yield from _describe(value, path, problems)
    if not scalar_values:
        for key, item in value.items():
            yield from check_value(shape.value, item, f"{path}.{key}")


def scalar_problems(shape: Shape, value: Any) -> list[str]:
    """The constraints a scalar value violates (strings: length, enum, pattern; numbers: range)."""
    meta = shape.metadata
    if shape.type_name == "string" and isinstance(value, str):
        problems = _length_problems(shape, value)
        enum = meta.get("enum")
        if enum and value not in enum:
            problems.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = _compiled(meta.get("pattern"))
        if pattern is not None and not pattern.fullmatch(value):
            problems.append(f"Member must satisfy regular expression pattern: {_shown_pattern(meta)}")
        return problems
    if shape.type_name in _NUMERIC and isinstance(value, int | float) and not isinstance(value, bool):
        problems = []
        if "min" in meta and value < meta["min"]:
            problems.append(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"Member must have value less than or equal to {meta['max']}")
        return problems
    return []


def _length_problems(shape: Shape, value: Any) -> list[str]:
    meta = shape.metadata
    problems = []
    if "min" in meta and len(value) < meta["min"]:
        problems.append(f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and len(value) > meta["max"]:
        problems.append(f"Member must have length less than or equal to {meta['max']}")
    return problems


def _describe(value: Any, path: str, problems: list[str]) -> Iterator[str]:
    for problem in problems:
        yield f"Value {_show(value)} at '{path}' failed to satisfy constraint: {problem}"


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    text = str(value)
    return f"'{text if len(text) <= _SHOWN else text[:_SHOWN] + '...'}'"


def _join(path: str, member: str) -> str:
    name = member[:1].lower() + member[1:]
    return f"{path}.{name}" if path else name


def _shown_pattern(meta: Mapping[str, Any]) -> str:
    pattern = str(meta["pattern"])
    return ("" if pattern.startswith("^") else "^") + pattern + ("" if pattern.endswith("$") else "$")


def _compiled(pattern: str | None) -> re.Pattern[str] | None:
    if not pattern:
        return None
    if pattern not in _patterns:
        _patterns[pattern] = _compile_java_pattern(pattern)
    return _patterns[pattern]


def _compile_java_pattern(pattern: str) -> re.Pattern[str] | None:
    translated = pattern.replace(r"\uD800\uDC00-\uDBFF\uDFFF", r"\U00010000-\U0010FFFF")
    translated = re.sub(r"\\p\{(\w+)\}", lambda m: _unicode_class(m, translated), translated)
    try:
        return re.compile(translated, re.DOTALL)
    except re.error:
        return None


def _unicode_class(match: re.Match[str], pattern: str) -> str:
    # Approximations that err on the permissive side (letters, for instance, become word characters),
    # so a valid request is never rejected. Outside a character class the ranges get brackets of their own.
    ranges = _UNICODE_CLASSES.get(match.group(1), r"\w")
    return ranges if _inside_class(pattern, match.start()) else f"[{ranges}]"


def _inside_class(pattern: str, position: int) -> bool:
    depth, escaped = 0, False
    for char in pattern[:position]:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
    return depth > 0
