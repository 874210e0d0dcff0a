"""Print where the last run's predictions are and how accurate they were.

Run as ``python -m iris_sagemaker.report`` (``make run`` does, after materializing).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence

import pandas as pd

from iris_sagemaker.core.evaluation import parse_predictions
from iris_sagemaker.core.settings import PREDICTIONS_KEY, SCORED_KEY, Settings, SettingsError
from iris_sagemaker.core.storage import ObjectNotFound, ObjectStore
from iris_sagemaker.steps.clients_for_backend import check_endpoints, make_sagemaker_client, make_store
from iris_sagemaker.steps.endpoint_steps import describe_endpoint


def parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m iris_sagemaker.report",
        description="Print where the last run's predictions are, how accurate they were, and the endpoint "
        "serving the model. Reads the same settings as the run (IRIS_SAGEMAKER_BACKEND, "
        "IRIS_SAGEMAKER_LOCAL_ROOT, IRIS_SAGEMAKER_BUCKET, ...); takes no arguments.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        check_endpoints(settings)
    except SettingsError as err:  # one line a problem: the variable, the bad value, a valid example
        for problem in err.problems:
            print(f"iris_sagemaker.report: {problem}", file=sys.stderr)
        return 2
    store = make_store(settings)
    try:
        predictions = parse_predictions(store.get_bytes(settings.bucket, PREDICTIONS_KEY))
        scored = pd.read_csv(io.BytesIO(store.get_bytes(settings.bucket, SCORED_KEY)))
    except ObjectNotFound as err:
        print(f"no predictions yet: {err}. Run `make run` first.", file=sys.stderr)
        return 1
    where = (
        settings.local_object_path(PREDICTIONS_KEY)
        if settings.is_local and not settings.endpoint_url
        else None
    )
    print(f"predictions: {settings.uri(PREDICTIONS_KEY)} ({len(predictions)} rows)")
    if where is not None:
        print(f"  local file: {where}")
    print(f"scored table: {settings.uri(SCORED_KEY)}")
    print(f"accuracy: {scored['correct'].mean():.4f} ({int(scored['correct'].sum())}/{len(scored)} correct)")
    print(endpoint_line(settings, store))
    return 0


def endpoint_line(settings: Settings, store: ObjectStore) -> str:
    """What serves the model online: the endpoint's name and state, or why there is none."""
    if not settings.deploy_endpoint:
        return "endpoint: not deployed (IRIS_SAGEMAKER_DEPLOY_ENDPOINT is not true)"
    described = describe_endpoint(make_sagemaker_client(settings, store=store), settings.endpoint_name)
    if described is None:
        return f"endpoint: {settings.endpoint_name} does not exist yet (materialize knn_endpoint)"
    return (
        f"endpoint: {settings.endpoint_name} ({described['EndpointStatus']}, endpoint config "
        f"{described['EndpointConfigName']})"
    )


if __name__ == "__main__":
    sys.exit(main())
