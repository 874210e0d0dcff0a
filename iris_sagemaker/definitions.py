"""Entry point for ``dagster dev`` (workspace.yaml) and ``dagster asset materialize -m iris_sagemaker``."""

from iris_sagemaker.dagster_defs.definitions import build_definitions

defs = build_definitions()
