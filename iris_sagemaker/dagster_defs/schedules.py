"""Scheduled retraining: a job over the whole graph and a weekly schedule, off until a user turns it on."""

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from iris_sagemaker.dagster_defs.assets import GROUP

retrain_iris_knn = define_asset_job(
    "retrain_iris_knn",
    selection=AssetSelection.groups(GROUP),
    description="Fetch and split Iris, train k-NN, create the model and score the test set. Each run gets "
    "its own SageMaker job, model and transform names.",
)

weekly_retrain = ScheduleDefinition(
    name="weekly_retrain",
    job=retrain_iris_knn,
    cron_schedule="0 6 * * 1",  # Mondays 06:00 UTC
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Retrain weekly. Off by default: turn it on in the UI (Automation) or with "
    "`dagster schedule start weekly_retrain`.",
)
