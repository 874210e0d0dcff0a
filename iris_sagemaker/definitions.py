"""Entry point for ``dagster dev`` (workspace.yaml) and ``dagster asset materialize -m iris_sagemaker``."""

from iris_sagemaker.startup_heap import frozen_heap

# Dagster, then pandas and this package: loaded for the life of the process (see startup_heap).
with frozen_heap():
    from iris_sagemaker.dagster_defs.definitions import build_definitions

    defs = build_definitions()
