"""Request bodies for SageMaker's CreateTrainingJob, CreateHyperParameterTuningJob, CreateModel,
CreateTransformJob and CreateEndpointConfig (pure).

The one source of truth for what both orchestrators send: the Dagster assets and the Airflow DAG call
these builders, and the local engine receives the same bodies SageMaker would.
"""

from __future__ import annotations

from typing import Any

# The names of one run's jobs (portable: the exported DAG copies that module).
from iris_sagemaker.core.portable import JobNames as JobNames
from iris_sagemaker.core.portable import job_names as job_names
from iris_sagemaker.core.portable import sagemaker_name
from iris_sagemaker.core.settings import OUTPUT_PREFIX, TEST_KEY, TRAIN_KEY, Settings

# The tutorial's hyperparameters (SageMaker takes them as strings): those of the default settings;
# IRIS_SAGEMAKER_K, _SAMPLE_SIZE and _INDEX_METRIC change them (``Settings.hyperparameters``).
DEFAULT_HYPERPARAMETERS: dict[str, str] = Settings().hyperparameters()
MAX_RUNTIME_SECONDS = 6000
def endpoint_config_name(run_key: str) -> str:
    """The endpoint config of one run (the endpoint's own name is stable: ``Settings.endpoint_name``)."""
    return sagemaker_name("iris-knn-config", run_key)


def training_job_request(
    settings: Settings,
    name: str,
    hyperparameters: dict[str, str] | None = None,
    train_key: str = TRAIN_KEY,
) -> dict[str, Any]:
    """CreateTrainingJob for the built-in k-NN on the train split, as in the tutorial: the settings'
    hyperparameters, with ``hyperparameters`` (a tuned k, the run config's) over them."""
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": settings.image_uri(), "TrainingInputMode": "File"},
        "HyperParameters": {**settings.hyperparameters(), **(hyperparameters or {})},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": settings.uri(train_key),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "text/csv",
                "InputMode": "File",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": settings.uri(OUTPUT_PREFIX)},
        "ResourceConfig": {
            "InstanceCount": 1,
            "InstanceType": settings.instance_type,
            "VolumeSizeInGB": 1,
        },
        "RoleArn": settings.role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
    }


# Tuning k (README, "Tune k"): an integer range; the objective k-NN classifiers emit from their test channel.
# Up to 20: a species holds about 28 of the fit set's rows, and a vote over more neighbours than about two
# thirds of a class starts to reach into the others (on the tutorial's split, test accuracy falls from 0.98
# at k <= 20 to 0.89 at k = 40, while the 21 validation rows cannot tell those apart).
TUNED_K_MIN, TUNED_K_MAX = 1, 20
TUNING_OBJECTIVE = {"Type": "Maximize", "MetricName": "test:accuracy"}
TUNING_NAME_MAX = 32  # HyperParameterTuningJobName: {0,31} after the first character
# Where a run keeps the data it tunes on (under its own folder, outside the transform's input prefix).
TUNING_FIT_KEY = "iris/tuning-input/fit.csv"
TUNING_VALIDATION_KEY = "iris/tuning-input/validation.csv"


def tuning_job_name(run_key: str) -> str:
    return sagemaker_name("tune-iris", run_key, limit=TUNING_NAME_MAX)


def tuning_job_request(
    settings: Settings,
    name: str,
    fit_key: str = TUNING_FIT_KEY,
    validation_key: str = TUNING_VALIDATION_KEY,
) -> dict[str, Any]:
    """CreateHyperParameterTuningJob: the tutorial's training job with ``k`` tuned, trained on ``fit_key``
    and scored on ``validation_key`` (its ``test`` channel), both carved from the training split."""
    trial = training_job_request(settings, "trial", train_key=fit_key)
    test_channel = {**trial["InputDataConfig"][0], "ChannelName": "test"}
    test_channel["DataSource"] = {
        "S3DataSource": {**test_channel["DataSource"]["S3DataSource"], "S3Uri": settings.uri(validation_key)}
    }
    static = {key: value for key, value in trial["HyperParameters"].items() if key != "k"}
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": settings.tuning_strategy,
            "HyperParameterTuningJobObjective": dict(TUNING_OBJECTIVE),
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": settings.tuning_jobs,
                "MaxParallelTrainingJobs": settings.tuning_parallel,
            },
            "ParameterRanges": {
                "IntegerParameterRanges": [
                    {
                        "Name": "k",
                        "MinValue": str(TUNED_K_MIN),
                        "MaxValue": str(TUNED_K_MAX),
                        "ScalingType": "Auto",
                    }
                ]
            },
            "TrainingJobEarlyStoppingType": "Off",
            "RandomSeed": settings.split_seed,  # a rerun proposes the same k values, as the split is seeded
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": static,
            "AlgorithmSpecification": trial["AlgorithmSpecification"],
            "RoleArn": trial["RoleArn"],
            "InputDataConfig": [trial["InputDataConfig"][0], test_channel],
            "OutputDataConfig": {"S3OutputPath": settings.uri(f"{OUTPUT_PREFIX}/tuning")},
            "ResourceConfig": trial["ResourceConfig"],
            "StoppingCondition": trial["StoppingCondition"],
        },
    }


def model_request(settings: Settings, name: str, model_data_url: str) -> dict[str, Any]:
    """CreateModel from a training job's ``model.tar.gz``."""
    return {
        "ModelName": name,
        "ExecutionRoleArn": settings.role_arn,
        "PrimaryContainer": {
            "Mode": "SingleModel",
            "Image": settings.image_uri(),
            "ModelDataUrl": model_data_url,
        },
    }


def transform_job_request(
    settings: Settings,
    name: str,
    model_name: str,
    input_key: str = TEST_KEY,
    output_prefix: str = OUTPUT_PREFIX,
) -> dict[str, Any]:
    """CreateTransformJob scoring the test split line by line; output lands under ``output_prefix``
    (the tutorial's ``iris/results``; a run's own ``iris/runs/<run>/results``, see ``run_objects``)."""
    return {
        "TransformJobName": name,
        "ModelName": model_name,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": settings.uri(input_key)}},
            "SplitType": "Line",
            "ContentType": "text/csv",
        },
        "TransformOutput": {"S3OutputPath": settings.uri(output_prefix)},
        "TransformResources": {"InstanceCount": 1, "InstanceType": settings.instance_type},
    }


def transform_output_key(input_key: str, output_prefix: str = OUTPUT_PREFIX) -> str:
    """Where a transform writes the result for ``input_key``: ``<prefix>/<basename>.out``."""
    return f"{output_prefix.rstrip('/')}/{input_key.rpartition('/')[2]}.out"


def _key_of(uri: str) -> str:
    """The object key of ``s3://bucket/key`` (the bucket is the run's, as in every request here)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return uri[5:].partition("/")[2]


def transform_keys(description: dict[str, Any]) -> tuple[str, str]:
    """(the key a transform job read, the key of the ``.out`` it wrote for it), from its
    DescribeTransformJob (or CreateTransformJob) body."""
    input_key = _key_of(description["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
    output_prefix = _key_of(description["TransformOutput"]["S3OutputPath"])
    return input_key, transform_output_key(input_key, output_prefix)


def training_job_of_artifact(model_data_url: str) -> str | None:
    """The training job that wrote ``model_data_url``: SageMaker writes a job's artifact to
    ``<S3OutputPath>/<TrainingJobName>/output/model.tar.gz``. None for any other layout."""
    parts = model_data_url.split("/")
    if len(parts) < 4 or parts[-2:] != ["output", "model.tar.gz"] or not parts[-3]:
        return None
    return parts[-3]


def endpoint_config_request(settings: Settings, name: str, model_name: str) -> dict[str, Any]:
    """CreateEndpointConfig serving ``model_name`` on one instance: the tutorial's "next step"."""
    return {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InitialInstanceCount": 1,
                "InstanceType": settings.instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
    }


def endpoint_request(endpoint_name: str, config_name: str) -> dict[str, Any]:
    """CreateEndpoint (and UpdateEndpoint): the stable endpoint on one deployment's config."""
    return {"EndpointName": endpoint_name, "EndpointConfigName": config_name}
