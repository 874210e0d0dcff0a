"""Entry point for ``dagster dev`` (workspace.yaml) and ``dagster asset materialize -m iris_sagemaker``."""

import warnings

from iris_sagemaker.core.startup_heap import frozen_heap

# Dagster, then pandas and this package: loaded for the life of the process (see startup_heap).
with frozen_heap():
    from dagster import BetaWarning

    from iris_sagemaker.dagster_defs.code_location import build_definitions

    defs = build_definitions()

# `dagster asset materialize --select` resolves its selection with a beta parameter of Dagster's own
# (AssetSelection.all(include_sources=...)) and says so on every run: upstream noise, not ours to act on.
warnings.filterwarnings(
    "ignore",
    message="Parameter `include_sources`",
    category=BetaWarning,
    module=r"dagster\._core\.definitions\.antlr_asset_selection",
)
