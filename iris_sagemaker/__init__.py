"""iris-sagemaker: the Airflow + SageMaker k-NN Iris tutorial as Dagster assets, runnable offline.

``import iris_sagemaker`` stays light (no Dagster import) so the Airflow DAG and the embedded engine can
use the package without Dagster; ``iris_sagemaker.defs`` loads the Dagster ``Definitions`` on first use,
which is how ``dagster ... -m iris_sagemaker`` finds them.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "defs":
        from iris_sagemaker.definitions import defs

        return defs
    raise AttributeError(f"module 'iris_sagemaker' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
