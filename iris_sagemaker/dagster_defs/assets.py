# Dagster reads these functions' annotations at definition time: no `from __future__ import annotations`.
"""The assets: raw_iris -> train_csv, test_csv; train_csv -> knn_tuning_job (k, tuned or the tutorial's) ->
knn_training_job -> knn_model -> test_predictions, and the tutorial's "next step", knn_endpoint
(knn_model, test_csv, test_predictions -> knn_endpoint).

Thin adapters: each body reads inputs, calls the step it stands for and reports what it did. Data
preparation lives in ``core.dataset``, request bodies in ``core.specs``, job handling in
``steps.job_steps``, tuning in ``steps.tuning_steps``, the transform, its scoring and the publishing in
``steps.batch_scoring``, the endpoint in ``steps.endpoint_rollout``: the Airflow tasks call the same
steps. The assets never ask which backend they run on.
"""

import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetOut,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)
from pydantic import Field

from iris_sagemaker.core import dataset, evaluation, run_objects, specs
from iris_sagemaker.core.settings import (
    DEFAULT_K,
    HYPERPARAMETER_SETTINGS,
    PREDICTIONS_KEY,
    RAW_KEY,
    SCORED_KEY,
    TEST_KEY,
    TEST_LABELS_KEY,
    TRAIN_KEY,
    Settings,
    accuracy_threshold_problem,
    hyperparameter_problem,
)
from iris_sagemaker.dagster_defs import plots
from iris_sagemaker.dagster_defs.checks import (
    accuracy_at_least_threshold,
    accuracy_result,
    raw_iris_schema,
    schema_result,
    split_result,
    splits_hold_all_species,
)
from iris_sagemaker.dagster_defs.resources import (
    COLUMNS,
    HEADER,
    KEY,
    LABEL_COLUMN,
    LABEL_KEY,
    SageMakerResource,
    run_key_of,
    stored_key,
)
from iris_sagemaker.steps import batch_scoring, endpoint_rollout, job_steps, tuning_steps

GROUP = "iris"
KINDS = {"sagemaker", "s3"}


def run_key(context: AssetExecutionContext) -> str:
    """Stable across retries and re-executions of one run: the root run's id."""
    return run_key_of(context.run)


def input_key(context: AssetExecutionContext, sagemaker: SageMakerResource, asset: str, key: str) -> str:
    """Where this run reads the upstream ``asset`` (stored at tutorial ``key``): its own copy, else the
    asset's latest materialization, else the published key (``run_objects``)."""
    store, bucket = sagemaker.get_store(), sagemaker.settings.bucket
    return stored_key(context, store, bucket, run_key(context), AssetKey(asset), key)


def job_names(context: AssetExecutionContext) -> specs.JobNames:
    return specs.job_names(run_key(context))


class KnnTrainingConfig(Config):
    """knn_training_job's run config (the launchpad): k-NN hyperparameters for this run, over the settings
    (``IRIS_SAGEMAKER_K`` ..., the sagemaker resource). Checked as k-NN checks them, before the job."""

    k: int | None = Field(
        default=None,
        description="neighbours that vote; default IRIS_SAGEMAKER_K (3). With tuning on, the tuned k wins",
    )
    sample_size: int | None = Field(
        default=None, description="training rows k-NN keeps; default IRIS_SAGEMAKER_SAMPLE_SIZE (150)"
    )
    index_metric: str | None = Field(
        default=None,
        description="L2, INNER_PRODUCT or COSINE; default IRIS_SAGEMAKER_INDEX_METRIC (unset: k-NN's L2)",
    )


class AccuracyCheckConfig(Config):
    """test_predictions' run config: the bar of its blocking check accuracy_at_least_threshold."""

    accuracy_threshold: float | None = Field(
        default=None,
        description="accuracy (0 to 1) the test rows need; default IRIS_SAGEMAKER_ACCURACY_THRESHOLD (0.9)",
    )


def training_hyperparameters(
    settings: Settings, knn_tuning_job: dict, config: KnnTrainingConfig
) -> tuple[dict[str, str], str]:
    """(the training job's HyperParameters, where its k came from): the settings', then the run config's,
    then, with tuning on, the tuned k over any other. A run config value k-NN refuses raises ``Failure``
    with k-NN's own message (what the training job would fail with)."""
    overrides = {
        name: getattr(config, name)
        for _, name, _ in HYPERPARAMETER_SETTINGS
        if getattr(config, name) is not None
    }
    problems = [
        hyperparameter_problem(f"knn_training_job's run config {name}", name, value, example)
        for _, name, example in HYPERPARAMETER_SETTINGS
        if (value := overrides.get(name)) is not None
    ]
    if any(problems):
        raise Failure(description="; ".join(p for p in problems if p))
    chosen = {**settings.hyperparameters(), **{name: str(value) for name, value in overrides.items()}}
    if knn_tuning_job.get("tuned"):
        chosen["k"] = str(knn_tuning_job["HyperParameters"]["k"])
        source = f"tuned by {knn_tuning_job['HyperParameterTuningJobName']}"
        if "k" in overrides:
            source += f" (tuning is on: it wins over the run config's k = {overrides['k']})"
    elif "k" in overrides:
        source = "the run config's (tuning off)"
    elif settings.k != DEFAULT_K:
        source = "the settings' (IRIS_SAGEMAKER_K or the sagemaker resource; tuning off)"
    else:
        source = "the tutorial's (tuning off)"
    return chosen, source


@asset(
    group_name=GROUP,
    kinds={"pandas", "s3"},
    metadata={KEY: RAW_KEY, HEADER: True},
    check_specs=[raw_iris_schema],
    description="The Iris table (150 rows of UCI data shipped with the package, or IRIS_SAGEMAKER_DATA_URL), "
    "validated.",
)
def raw_iris(context: AssetExecutionContext, sagemaker: SageMakerResource) -> Iterator[Any]:
    source, frame = dataset.load_iris(sagemaker.settings.data_url)  # a file is parsed as it is read
    context.log.info(f"read {len(frame)} rows from {source}")
    yield Output(
        frame,
        metadata={
            "dagster/row_count": len(frame),
            "source": source,
            "species_counts": MetadataValue.json(frame["species"].value_counts().sort_index().to_dict()),
            "preview": MetadataValue.md(frame.head(5).to_markdown(index=False)),
        },
    )
    yield schema_result(context, frame)


@multi_asset(
    group_name=GROUP,
    outs={
        "train_csv": AssetOut(
            kinds={"csv", "s3"},
            metadata={KEY: TRAIN_KEY, HEADER: False, COLUMNS: ["species", *dataset.FEATURES]},
            description="70% split, label first (virginica 0, versicolor 1, setosa 2), no header: what "
            "SageMaker k-NN trains on.",
        ),
        "test_csv": AssetOut(
            kinds={"csv", "s3"},
            metadata={
                KEY: TEST_KEY,
                HEADER: False,
                COLUMNS: dataset.FEATURES,
                LABEL_COLUMN: "true_label",
                LABEL_KEY: TEST_LABELS_KEY,
            },
            description="30% split, features only, no header: what the batch transform reads. The true "
            f"labels are kept apart at {TEST_LABELS_KEY} for scoring.",
        ),
    },
    check_specs=[splits_hold_all_species],
    deps=["raw_iris"],
)
def split_iris(context: AssetExecutionContext, sagemaker: SageMakerResource) -> Any:
    settings = sagemaker.settings
    # raw_iris is read where the IO manager would load it from, but streamed: a step holds its inputs
    # and outputs until it ends, and the table alone is as large as both sides.
    store, raw_key = sagemaker.get_store(), input_key(context, sagemaker, "raw_iris", RAW_KEY)
    parts = dataset.split_stored(lambda: store.open_read(settings.bucket, raw_key), seed=settings.split_seed)
    test = parts.test_features.assign(true_label=parts.test_labels.to_numpy())
    context.log.info(
        f"split {len(parts.train) + len(test)} rows: {len(parts.train)} train, {len(test)} test "
        f"(seed {settings.split_seed})"
    )
    yield Output(
        parts.train,
        output_name="train_csv",
        metadata={
            "dagster/row_count": len(parts.train),
            "split_seed": settings.split_seed,
            "dagster/uri": settings.uri(run_objects.scoped(TRAIN_KEY, run_key(context))),
        },
    )
    yield Output(
        test,
        output_name="test_csv",
        metadata={
            "dagster/row_count": len(test),
            "split_seed": settings.split_seed,
            "dagster/uri": settings.uri(run_objects.scoped(TEST_KEY, run_key(context))),
            "labels_uri": settings.uri(run_objects.scoped(TEST_LABELS_KEY, run_key(context))),
        },
    )
    yield split_result(context, parts)


@asset(
    group_name=GROUP,
    kinds=KINDS,
    metadata={KEY: "iris/dagster/knn_tuning_job.json"},
    description="The k training uses: tuned by a SageMaker hyperparameter tuning job on a validation split "
    "carved from train_csv (IRIS_SAGEMAKER_TUNE=true), else the settings' (IRIS_SAGEMAKER_K, default 3).",
)
def knn_tuning_job(
    context: AssetExecutionContext, sagemaker: SageMakerResource, train_csv: pd.DataFrame
) -> Output[dict]:
    settings = sagemaker.settings
    if not settings.tune:
        k = settings.k
        context.log.info(f"tuning is off (IRIS_SAGEMAKER_TUNE=false): training uses the settings' k = {k}")
        return Output(
            {"tuned": False, "HyperParameters": {"k": str(k)}},
            metadata={
                "tuned": False,
                "k": k,
                "why": "IRIS_SAGEMAKER_TUNE is off: the settings' k (IRIS_SAGEMAKER_K, default the "
                "tutorial's 3), unless knn_training_job's run config sets one",
            },
        )
    tuned = tuning_steps.tune_k(
        sagemaker.get_client(), sagemaker.get_store(), settings, train_csv, run_key(context), context.log.info
    )
    k, metric, table = int(tuned.chosen["k"]), tuned.objective, tuned.trials
    context.log.info(
        f"tuning chose k = {k}: validation {metric['MetricName']} {metric['Value']:.4f} "
        f"({tuned.best['TrainingJobName']}, best of {len(table)} training jobs)"
    )
    picture = plots.objective_svg(table, metric["MetricName"], k)
    return Output(
        {
            "tuned": True,
            "HyperParameters": tuned.chosen,
            "HyperParameterTuningJobName": tuned.description["HyperParameterTuningJobName"],
            "BestTrainingJob": job_steps.json_safe(tuned.best),
        },
        metadata={
            "tuned": True,
            "k": k,
            "validation_accuracy": float(metric["Value"]),
            "tuning_job_name": tuned.description["HyperParameterTuningJobName"],
            "tuning_job_arn": tuned.description["HyperParameterTuningJobArn"],
            "best_training_job": tuned.best["TrainingJobName"],
            "strategy": tuned.request["HyperParameterTuningJobConfig"]["Strategy"],
            "training_jobs": len(table),
            "fit_rows": tuned.data.fit_rows,
            "validation_rows": tuned.data.validation_rows,
            "trials": MetadataValue.md(table.to_markdown(index=False)),
            "objective_vs_k": MetadataValue.md(plots.markdown_image(picture, "validation accuracy by k")),
        },
    )


@asset(
    group_name=GROUP,
    kinds=KINDS,
    deps=["train_csv"],
    metadata={KEY: "iris/dagster/knn_training_job.json"},
    description="The completed SageMaker training job of the built-in k-NN (DescribeTrainingJob). Its "
    "hyperparameters: the settings' (IRIS_SAGEMAKER_K, _SAMPLE_SIZE, _INDEX_METRIC), then this asset's run "
    "config (k, sample_size, index_metric), with the k knn_tuning_job tuned when tuning is on.",
)
def knn_training_job(
    context: AssetExecutionContext,
    config: KnnTrainingConfig,
    sagemaker: SageMakerResource,
    knn_tuning_job: dict,
) -> Output[dict]:
    settings = sagemaker.settings
    chosen, source = training_hyperparameters(settings, knn_tuning_job, config)
    train_key = input_key(context, sagemaker, "train_csv", TRAIN_KEY)
    context.log.info(f"training with k = {chosen['k']}, {source}")
    request = specs.training_job_request(
        settings, job_names(context).training_job, hyperparameters=chosen, train_key=train_key
    )
    tail = sagemaker.job_log_tail("TrainingJob", request["TrainingJobName"])
    description = job_steps.run_training_job(
        sagemaker.get_client(),
        request,
        job_steps.waiting_for(settings.is_local),
        log=context.log.info,
        on_poll=tail.poll,
    )
    return Output(
        job_steps.json_safe(description),
        metadata={
            "training_job_name": description["TrainingJobName"],
            "training_job_arn": description["TrainingJobArn"],
            "k": int(description.get("HyperParameters", {}).get("k", chosen["k"])),
            "k_source": source,
            "sample_size": int(chosen["sample_size"]),
            "index_metric": chosen.get("index_metric", "L2 (k-NN's default)"),
            "run_config": MetadataValue.json(config.model_dump(exclude_none=True)),
            "status": description["TrainingJobStatus"],
            "training_seconds": description.get("TrainingTimeInSeconds", 0),
            "billable_seconds": description.get("BillableTimeInSeconds", 0),
            "hyperparameters": MetadataValue.json(description.get("HyperParameters", {})),
            "model_artifact": description["ModelArtifacts"]["S3ModelArtifacts"],
            "train_uri": settings.uri(train_key),
            "image": request["AlgorithmSpecification"]["TrainingImage"],
            "instance_type": request["ResourceConfig"]["InstanceType"],
            "final_metrics": MetadataValue.json(
                json.loads(json.dumps(description.get("FinalMetricDataList", []), default=str))
            ),
        },
    )


@asset(
    group_name=GROUP,
    kinds=KINDS,
    metadata={KEY: "iris/dagster/knn_model.json"},
    description="The SageMaker model created from the training job's artifact (DescribeModel).",
)
def knn_model(
    context: AssetExecutionContext, sagemaker: SageMakerResource, knn_training_job: dict
) -> Output[dict]:
    artifact = knn_training_job["ModelArtifacts"]["S3ModelArtifacts"]
    request = specs.model_request(sagemaker.settings, job_names(context).model, artifact)
    description = job_steps.ensure_model(sagemaker.get_client(), request, log=context.log.info)
    return Output(
        job_steps.json_safe(description),
        metadata={
            "model_name": description["ModelName"],
            "model_arn": description["ModelArn"],
            "model_data_url": artifact,
            "training_job_name": knn_training_job["TrainingJobName"],
            "image": request["PrimaryContainer"]["Image"],
        },
    )


@asset(
    group_name=GROUP,
    kinds=KINDS,
    metadata={KEY: SCORED_KEY, HEADER: True},
    check_specs=[accuracy_at_least_threshold],
    description="A batch transform of the test split by the model, joined with the held-out labels.",
)
def test_predictions(
    context: AssetExecutionContext,
    config: AccuracyCheckConfig,
    sagemaker: SageMakerResource,
    knn_model: dict,
    test_csv: pd.DataFrame,
) -> Iterator[Any]:
    settings, run = sagemaker.settings, run_key(context)
    threshold = accuracy_threshold(settings, config)
    own = run_objects.run_keys(run)
    test_key = input_key(context, sagemaker, "test_csv", TEST_KEY)  # where test_csv was loaded from
    request = specs.transform_job_request(
        settings,
        job_names(context).transform_job,
        knn_model["ModelName"],
        input_key=test_key,
        output_prefix=own.output_prefix,
    )
    scored = batch_scoring.transform_and_score(
        sagemaker.get_client(),
        sagemaker.get_store(),
        settings,
        request,
        test_csv,
        log=context.log.info,
        on_poll=sagemaker.job_log_tail("TransformJob", request["TransformJobName"]).poll,
    )
    table, scores, transform = scored.table, scored.scores, scored.transform
    context.log.info(f"accuracy {scores.accuracy:.4f} on {len(table)} test rows")
    problem = scored.verdict(threshold, run, settings)
    yield Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "accuracy": scores.accuracy,
            "confusion_matrix": MetadataValue.md(evaluation.confusion_markdown(scores.confusion)),
            "confusion_matrix_plot": MetadataValue.md(
                plots.markdown_image(plots.confusion_matrix_svg(scores.confusion), "confusion matrix")
            ),
            "predictions_plot": MetadataValue.md(
                plots.markdown_image(plots.predictions_scatter_svg(table), "test set, predicted vs true")
            ),
            "predictions_uri": settings.uri(scored.output_key),
            # Published to the tutorial's keys once the accuracy check passed (below, after the yield).
            "published_predictions_uri": settings.uri(PREDICTIONS_KEY)
            if problem is None
            else "not published: accuracy below the threshold",
            "accuracy_threshold": threshold,
            "transform_job_name": transform["TransformJobName"],
            "transform_job_arn": transform["TransformJobArn"],
            "status": transform["TransformJobStatus"],
            "model_name": knn_model["ModelName"],
        },
    )
    yield accuracy_result(context, scores.accuracy, len(table), threshold)
    # The scored table is stored by now (the IO manager handles an Output when it is yielded).
    if problem is None:
        descriptions = {key: input_key(context, sagemaker, name, key) for name, key in DESCRIPTIONS.items()}
        store, client = sagemaker.get_store(), sagemaker.get_client()
        batch_scoring.publish_scored_run(store, client, settings, run, scored, context.log.info, descriptions)
    else:
        context.log.warning(problem)


def accuracy_threshold(settings: Settings, config: AccuracyCheckConfig) -> float:
    """The accuracy check's bar: the run config's, else the settings' (IRIS_SAGEMAKER_ACCURACY_THRESHOLD)."""
    if config.accuracy_threshold is None:
        return settings.accuracy_threshold
    problem = accuracy_threshold_problem(
        "test_predictions' run config accuracy_threshold", config.accuracy_threshold
    )
    if problem:
        raise Failure(description=problem)
    return config.accuracy_threshold


ENDPOINT_DESCRIPTION = f"{run_objects.DESCRIPTIONS_PREFIX}knn_endpoint.json"
# The JSON descriptions of the jobs and model a run used, published with its objects (Dagster only).
DESCRIPTIONS = {
    name: f"{run_objects.DESCRIPTIONS_PREFIX}{name}.json"
    for name in ("knn_tuning_job", "knn_training_job", "knn_model")
}


NOT_DEPLOYED = (
    "not deployed: IRIS_SAGEMAKER_DEPLOY_ENDPOINT is not true. On aws an endpoint bills by the hour, so "
    "knn_endpoint deploys only when asked (IRIS_SAGEMAKER_DEPLOY_ENDPOINT=true, or the sagemaker "
    "resource's deploy_endpoint); nothing was created"
)


@asset(
    group_name=GROUP,
    kinds=KINDS,
    metadata={KEY: ENDPOINT_DESCRIPTION},
    output_required=False,
    description="The model on a real-time endpoint with a stable name (created once, then updated to each "
    "new model), checked online against the batch predictions. On aws only with "
    "IRIS_SAGEMAKER_DEPLOY_ENDPOINT=true.",
)
def knn_endpoint(
    context: AssetExecutionContext,
    sagemaker: SageMakerResource,
    knn_model: dict,
    test_csv: pd.DataFrame,
    test_predictions: pd.DataFrame,
) -> Iterator[Any]:
    settings = sagemaker.settings
    name = settings.endpoint_name
    if not settings.deploy_endpoint:
        rollout = endpoint_rollout.Rollout(reason=NOT_DEPLOYED)
    else:
        rollout = endpoint_rollout.deploy_run_model(
            sagemaker.get_client(),
            sagemaker.get_runtime_client(),
            sagemaker.get_store(),
            settings,
            run_key(context),
            knn_model["ModelName"],
            test_csv,
            test_predictions["predicted_label"],
            ENDPOINT_DESCRIPTION,
            log=context.log.info,
            on_poll=sagemaker.endpoint_log_tail(name).poll,
        )
    if rollout.value is None or rollout.online is None:
        context.log.info(f"knn_endpoint {rollout.reason}")
        metadata = {"deployed": False, "reason": rollout.reason}
        yield AssetObservation(asset_key="knn_endpoint", metadata=metadata)
        return
    value, online = rollout.value, rollout.online
    rows = len(value["OnlineCheck"]["batch"])
    context.log.info(
        f"endpoint {name}: {rows} online predictions, {rollout.agreement:.2%} equal to the batch "
        f"transform's; latency p50 {online.p50_ms:.1f} ms, p99 {online.p99_ms:.1f} ms over "
        f"{len(online.latencies_ms)} one-row requests"
    )
    yield Output(
        value,
        metadata={
            "deployed": True,
            "endpoint_name": name,
            "endpoint_arn": value["EndpointArn"],
            "endpoint_config_name": value["EndpointConfigName"],
            "model_name": knn_model["ModelName"],
            "status": value["EndpointStatus"],
            "latency_p50_ms": round(online.p50_ms, 3),
            "latency_p99_ms": round(online.p99_ms, 3),
            "agreement_with_batch": rollout.agreement,
            "rows": rows,
            "latency_rows": len(online.latencies_ms),
        },
    )
