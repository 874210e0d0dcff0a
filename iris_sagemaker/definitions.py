"""Entry point for ``dagster dev`` (workspace.yaml) and ``dagster asset materialize -m iris_sagemaker``."""

from iris_sagemaker.dagster_defs.definitions import build_definitions
from iris_sagemaker.startup_heap import freeze_loaded_heap

defs = build_definitions()
# Last: everything loaded so far lives as long as the process (see startup_heap).
freeze_loaded_heap()
