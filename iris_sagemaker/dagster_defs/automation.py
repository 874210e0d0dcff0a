"""Retraining, as Dagster recommends for an asset graph: the job over the whole graph (for manual runs),
a weekly retrain as declarative automation that never runs on data failing a blocking check, and a
sensor that retrains when the Iris source changes. Both sensors are off until a user turns them on.

The assets stay as ``assets`` defines them; :func:`with_weekly_retrain` attaches the condition.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import (
    AssetsDefinition,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from iris_sagemaker.core.dataset import PACKAGED_SOURCE, IrisDataError
from iris_sagemaker.core.source_version import source_version
from iris_sagemaker.dagster_defs.assets import GROUP
from iris_sagemaker.dagster_defs.resources import SageMakerResource

WEEKLY_CRON = "0 6 * * 1"  # Mondays 06:00
CRON_TIMEZONE = "UTC"
# How often retrain_on_new_data reads the source (all of it, to hash it): the Iris file is 4.5 kB.
SOURCE_CHECK_SECONDS = 600
SOURCE_VERSION_TAG = "iris_sagemaker/source_sha256"

retrain_iris_knn = define_asset_job(
    "retrain_iris_knn",
    selection=AssetSelection.groups(GROUP),
    description="Fetch and split Iris, train k-NN, create the model and score the test set. Each run gets "
    "its own SageMaker job, model and transform names.",
)

# Each asset: once per tick of the cron, after all its parents have updated since the tick (or are requested
# with it), and only when every blocking check of its parents passed (or is requested with it, where a
# failure in the run stops what is downstream). At a tick the whole graph is requested in one run.
WEEKLY_RETRAIN = (
    AutomationCondition.on_cron(WEEKLY_CRON, CRON_TIMEZONE)
    & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("weekly retrain on checked data")


def with_weekly_retrain(assets: Sequence[AssetsDefinition]) -> list[AssetsDefinition]:
    """The assets, each with :data:`WEEKLY_RETRAIN` as its automation condition."""
    return [asset.with_attributes(automation_condition=WEEKLY_RETRAIN) for asset in assets]


retrain_weekly = AutomationConditionSensorDefinition(
    "retrain_weekly",
    target=AssetSelection.groups(GROUP),
    default_status=DefaultSensorStatus.STOPPED,
    description=f"Evaluates the assets' automation conditions: a retrain after each '{WEEKLY_CRON}' "
    f"({CRON_TIMEZONE}) tick, never on data failing a blocking check. Off by default: turn it on in the UI "
    "(Automation) or with `dagster sensor start retrain_weekly -m iris_sagemaker`.",
)


@sensor(
    name="retrain_on_new_data",
    job=retrain_iris_knn,
    minimum_interval_seconds=SOURCE_CHECK_SECONDS,
    default_status=DefaultSensorStatus.STOPPED,
    description="Retrains when the Iris source (IRIS_SAGEMAKER_DATA_URL, else the packaged copy) changes: "
    "a sha256 of its bytes against the one seen last. Its first tick only notes the version. Off by "
    "default: turn it on in the UI (Automation) or with `dagster sensor start retrain_on_new_data -m "
    "iris_sagemaker`.",
)
def retrain_on_new_data(
    context: SensorEvaluationContext, sagemaker: SageMakerResource
) -> SensorResult | SkipReason:
    url = sagemaker.settings.data_url
    where = url or PACKAGED_SOURCE
    try:
        version = source_version(url)
    except IrisDataError as err:
        return SkipReason(f"could not check the Iris source for changes: {err}")
    seen = context.cursor
    if seen is None:
        return SensorResult(
            skip_reason=f"first look at {where} (sha256 {version[:12]}): a change from here retrains",
            cursor=version,
        )
    if seen == version:
        return SkipReason(f"{where} unchanged (sha256 {version[:12]})")
    context.log.info(f"{where} changed (sha256 {seen[:12]} -> {version[:12]}): retraining")
    return SensorResult(
        run_requests=[RunRequest(tags={SOURCE_VERSION_TAG: version})],
        cursor=version,
    )
