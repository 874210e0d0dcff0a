"""What clients probe: ``List*`` operations of SageMaker resource kinds the engine never creates.

Clients list before they act (the SageMaker SDK lists monitoring schedules before it deletes an endpoint;
consoles and Terraform list inference components, pipelines, ...). For every ``List*`` operation in
botocore's SageMaker model that the engine does not serve itself, the truthful answer is an empty list:
nothing of that kind exists here. A ``List*`` whose required member names a parent resource
(``ListPipelineExecutions(PipelineName=...)``) answers that the parent does not exist, as SageMaker would.
``Create*`` and ``Describe*`` of those kinds stay unknown operations, whose message names what is served.
"""

from __future__ import annotations

import functools
from typing import Any

from botocore.model import OperationModel, ServiceModel
from botocore.validate import ParamValidator

from .errors import RESOURCE_NOT_FOUND, client_error, validation_error
from .service_model import OPERATIONS, SERVICE

SERVED_ELSEWHERE = frozenset({*OPERATIONS, "ListTags"})


@functools.cache
def _full_model() -> ServiceModel:
    """botocore's whole SageMaker model: parsed only when a client first probes (about 65 ms)."""
    from botocore.loaders import Loader

    return ServiceModel(Loader().load_service_model(SERVICE, "service-2"), service_name=SERVICE)


@functools.cache
def _probes() -> dict[str, str]:
    """The probe operations, by boto3's method name (``list_monitoring_schedules``)."""
    from botocore import xform_name

    names = _full_model().operation_names
    return {xform_name(op): op for op in names if op.startswith("List") and op not in SERVED_ELSEWHERE}


def is_probe(operation: str) -> bool:
    return operation in _probes().values()


def probe_named(method: str) -> str | None:
    """The probe operation boto3 calls ``method``, or None."""
    return _probes().get(method) if method.startswith("list_") else None


def operation_model(operation: str) -> OperationModel:
    return _full_model().operation_model(operation)


def empty_answer(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    """The answer to a probe: the request checked as boto3 would, then an empty list (or no parent)."""
    model = operation_model(operation)
    report = ParamValidator().validate(dict(request), model.input_shape)
    if report.has_errors():
        raise validation_error(f"Parameter validation failed:\n{report.generate_report()}", operation)
    for member in model.input_shape.required_members if model.input_shape else []:
        if member.endswith(("Name", "Arn")):
            raise client_error(
                RESOURCE_NOT_FOUND,
                f"{member} {request[member]!r} does not exist: the embedded SageMaker engine creates "
                "training jobs, models, transform jobs, endpoint configs and endpoints only.",
                operation,
            )
    (listed,) = [name for name, shape in model.output_shape.members.items() if shape.type_name == "list"]
    return {listed: []}
