"""The floor with the project's start-up freeze applied (``iris_sagemaker.core.startup_heap``).

Comparing against it isolates the project's own overhead from what the freeze saves on Dagster's heap.
"""

from noop_assets import defs

from iris_sagemaker.core.startup_heap import freeze_loaded_heap

freeze_loaded_heap()

__all__ = ["defs"]
