"""Training jobs, models and listings through the boto3-shaped client."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from botocore.validate import ParamValidator

from iris_sagemaker.local_sagemaker import LocalSageMakerClient
from iris_sagemaker.local_sagemaker.testing import Lab, iris_like, to_csv
from iris_sagemaker.local_sagemaker.validation import operation_model

CLASSIFIER = {"predictor_type": "classifier", "feature_dim": "4", "k": "3", "sample_size": "150"}


def assert_matches_output_shape(operation: str, response: dict) -> None:
    """The response is what botocore's model says the operation returns (types, required members)."""
    body = {key: value for key, value in response.items() if key != "ResponseMetadata"}
    report = ParamValidator().validate(body, operation_model(operation).output_shape)
    assert not report.has_errors(), report.generate_report()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_client_basics(tmp_path):
    client = LocalSageMakerClient(tmp_path, region="us-west-2")
    assert client.meta.region_name == "us-west-2"
    assert client.store.describe() == f"local folder {tmp_path.resolve() / 's3'}"


def test_training_completes_and_describes_like_boto3(lab, tmp_path):
    created = lab.client.create_training_job
    assert created  # the method exists with boto3's name
    job = lab.train("train-iris")
    assert_matches_output_shape("DescribeTrainingJob", job)
    assert job["TrainingJobStatus"] == "Completed" and job["SecondaryStatus"] == "Completed"
    assert "FailureReason" not in job
    assert job["TrainingJobArn"] == "arn:aws:sagemaker:us-east-2:000000000000:training-job/train-iris"
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    for key in ("CreationTime", "TrainingStartTime", "TrainingEndTime", "LastModifiedTime"):
        assert isinstance(job[key], datetime) and job[key].tzinfo is not None
    assert job["CreationTime"] <= job["TrainingStartTime"] <= job["TrainingEndTime"]
    assert job["TrainingTimeInSeconds"] >= 0 and job["BillableTimeInSeconds"] >= 1
    assert job["HyperParameters"] == CLASSIFIER
    assert job["ResourceConfig"] == {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 6000}
    assert job["RoleArn"].startswith("arn:aws:iam::")
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("/knn:1")
    assert job["InputDataConfig"][0]["ChannelName"] == "train"
    # KmsKeyId is always in SageMaker's answer ("" when none was given); the SDK v2's attach reads it.
    assert job["OutputDataConfig"] == {"S3OutputPath": "s3://bucket/results", "KmsKeyId": ""}
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == "s3://bucket/results/train-iris/output/model.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(lab.get("results/train-iris/output/model.tar.gz"))) as tar:
        assert sorted(tar.getnames()) == ["model_algo-1", "model_algo-1.json", "model_algo-1.labels"]
    record = json.loads((tmp_path / "sagemaker" / "training-jobs" / "train-iris.json").read_text())
    assert record["state"]["TrainingJobStatus"] == "Completed"
    assert not [p for p in (tmp_path / "sagemaker").rglob("*.tmp")]


def test_test_channel_accuracy(lab):
    labels, features = iris_like()
    job = lab.train(
        train=to_csv(labels[:105], features[:105]),
        test=to_csv(labels[105:], features[105:]),
        hyperparameters=CLASSIFIER,
    )
    [metric] = job["FinalMetricDataList"]
    assert metric["MetricName"] == "test:accuracy" and metric["Value"] >= 0.95
    assert metric["Timestamp"].tzinfo is not None


def test_regressor_mse(lab):
    x = np.linspace(0, 10, 200, dtype=np.float32)[:, None]
    y = (2 * x[:, 0]).astype(np.float32)
    hyperparameters = {"predictor_type": "regressor", "feature_dim": "1", "k": "2", "sample_size": "1000"}
    job = lab.train(
        hyperparameters=hyperparameters, train=to_csv(y[::2], x[::2]), test=to_csv(y[1::2], x[1::2])
    )
    [metric] = job["FinalMetricDataList"]
    assert metric["MetricName"] == "test:mse" and metric["Value"] < 0.05


def test_gzip_training_data(lab):
    labels, features = iris_like()
    channel_overrides = {"CompressionType": "Gzip"}
    uri = lab.put("gz/train.csv.gz", gzip.compress(to_csv(labels, features)))
    request_channel = {
        "ChannelName": "train",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
        "ContentType": "text/csv",
        **channel_overrides,
    }
    job = lab.train("gz", InputDataConfig=[request_channel])
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")


@pytest.mark.parametrize(
    ("hyperparameters", "named"),
    [
        (
            {**CLASSIFIER, "predictor_type": "ranker"},
            "predictor_type='ranker': allowed values are classifier, regressor",
        ),
        ({**CLASSIFIER, "k": "three"}, "k='three': must be a positive integer"),
        ({**CLASSIFIER, "index_metric": "MANHATTAN"}, "index_metric='MANHATTAN'"),
    ],
)
def test_bad_hyperparameter_fails_the_job(lab, hyperparameters, named):
    job = lab.train(hyperparameters=hyperparameters)
    assert job["TrainingJobStatus"] == "Failed" and job["SecondaryStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: Invalid hyperparameter ")
    assert named in job["FailureReason"]
    assert not lab.store.exists("bucket", "results/train-iris/output/model.tar.gz")
    assert_matches_output_shape("DescribeTrainingJob", job)


def test_hyperparameters_are_checked_before_data(lab):
    job = lab.train(hyperparameters={**CLASSIFIER, "k": "0"}, train=b"not,numbers\n")
    assert job["FailureReason"].startswith("ClientError: Invalid hyperparameter k='0'")


def test_feature_dim_mismatch(lab):
    job = lab.train(hyperparameters={**CLASSIFIER, "feature_dim": "3"})
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == (
        "ClientError: feature_dim=3 does not match the data: "
        "row 1 of s3://bucket/train-iris/input/train.csv has "
        "4 feature columns after the label (expected 3). Set the feature_dim hyperparameter to the number of "
        "features."
    )


def test_non_numeric_cell_names_the_row(lab):
    job = lab.train(train=b"0,1,2,3,4\n1,1,2,3,4\n2,1,x,3,4\n")
    assert job["FailureReason"] == (
        "ClientError: Unable to read the training data: row 3 of s3://bucket/train-iris/input/train.csv: "
        "column 3 value 'x' is not a number"
    )


def test_training_channel_problems(lab):
    job = lab.train(
        "json-content-type",
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/none/"}},
                "ContentType": "application/json",
            }
        ],
    )
    assert job["FailureReason"].startswith(
        "ClientError: channel 'train': content type application/json is not supported by k-NN; use "
        "application/x-recordio-protobuf (the default) or text/csv"
    )
    missing = lab.train(
        "no-objects",
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/none/"}},
                "ContentType": "text/csv",
            }
        ],
    )
    assert missing["FailureReason"].startswith(
        'ClientError: No S3 objects found under S3 URL "s3://bucket/none/"'
    )
    extra = lab.train("extra-channel", test=b"0,1,2,3,4\n")
    assert extra["TrainingJobStatus"] == "Completed"


def test_bad_test_channel_fails_the_job(lab):
    job = lab.train("bad-test", test=b"0,1,2,3,4\n1,1,2,3\n")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == (
        "ClientError: Unable to read the training data: "
        "row 2 of s3://bucket/bad-test/input/test.csv has 4 columns, expected 5 (the label, then "
        "feature_dim=4 features); every row of a text/csv channel must have the same number of columns."
    )
    assert not lab.store.exists("bucket", "results/bad-test/output/model.tar.gz")


RAGGED = "ClientError: Unable to read the training data: row {row} of s3://bucket/{name}/input/train.csv has "
RAGGED_TAIL = (
    " columns, expected 5 (the label, then feature_dim=4 features); every row of a text/csv channel must "
    "have the same number of columns."
)


@pytest.mark.parametrize(
    ("name", "rows", "row", "found"),
    [
        ("short-row", [b"0,1,2,3,4", b"1,1,2,3,4", b"", b"2,1,2,3"], 4, 4),  # blank lines count as lines
        ("long-row", [b"0,1,2,3,4", b"1,1,2,3,4,5"], 2, 6),
        ("short-first-row", [b"0,1,2,3", b"1,1,2,3,4", b"2,1,2,3,4"], 1, 4),
    ],
)
def test_a_ragged_training_csv_names_the_row_not_feature_dim(lab, name, rows, row, found):
    """Rows of differing widths: no feature_dim fits them, so the failure names the row, its column
    count and the expected one, instead of asking to set feature_dim."""
    job = lab.train(name, train=b"\n".join(rows) + b"\n")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == RAGGED.format(row=row, name=name) + str(found) + RAGGED_TAIL


def test_a_ragged_training_csv_is_named_in_any_chunk(lab, monkeypatch):
    """The same past the first chunk of a large object (parsed by pandas until a chunk fails), even when
    that chunk's rows agree with each other."""
    from iris_sagemaker.local_sagemaker import formats

    monkeypatch.setattr(formats, "STREAM_CHUNK_BYTES", 4096)
    rows = [b"%d,5.1,3.5,1.4,0.2" % (i % 3) for i in range(2000)]
    third = [chunk.first_line for chunk in formats.line_chunks(io.BytesIO(b"\n".join(rows)), 0)][2]
    rows[third - 1 :] = [b"1,5.1,3.5,1.4" for _ in rows[third - 1 :]]  # the third chunk on: 4 columns
    job = lab.train("ragged-big", train=b"\n".join(rows) + b"\n")
    assert job["FailureReason"] == RAGGED.format(row=third, name="ragged-big") + "4" + RAGGED_TAIL


def test_empty_test_channel_gives_no_metric(lab):
    job = lab.train("empty-test", test=b"\n")
    assert job["TrainingJobStatus"] == "Completed" and job["FinalMetricDataList"] == []


def test_sample_size_above_the_row_count_keeps_every_row(lab):
    lab.train(hyperparameters={**CLASSIFIER, "sample_size": "100000"})
    with tarfile.open(fileobj=io.BytesIO(lab.get("results/train-iris/output/model.tar.gz"))) as tar:
        config = json.loads(tar.extractfile("model_algo-1.json").read())
    assert config["training_points"] == 150


def test_sample_size_limits_the_index(lab):
    labels, features = iris_like(rows_per_class=100)
    job = lab.train(hyperparameters={**CLASSIFIER, "sample_size": "20", "mini_batch_size": "7"})
    with tarfile.open(fileobj=io.BytesIO(lab.get("results/train-iris/output/model.tar.gz"))) as tar:
        config = json.loads(tar.extractfile("model_algo-1.json").read())
    assert job["TrainingJobStatus"] == "Completed" and config["training_points"] == 20
    del labels, features


def test_describe_model_and_listings(lab):
    first = lab.train("job-a")
    lab.train("job-b", hyperparameters={**CLASSIFIER, "k": "bad"})
    model = lab.model("Iris-KNN", first)
    assert_matches_output_shape("DescribeModel", model)
    assert model["ModelArn"] == "arn:aws:sagemaker:us-east-2:000000000000:model/iris-knn"
    assert model["PrimaryContainer"]["ModelDataUrl"] == first["ModelArtifacts"]["S3ModelArtifacts"]

    jobs = lab.client.list_training_jobs()
    assert_matches_output_shape("ListTrainingJobs", jobs)
    assert [s["TrainingJobName"] for s in jobs["TrainingJobSummaries"]] == ["job-a", "job-b"]
    failed = lab.client.list_training_jobs(StatusEquals="Failed")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in failed] == ["job-b"]
    page = lab.client.list_training_jobs(MaxResults=1, SortOrder="Descending", SortBy="Name")
    assert [s["TrainingJobName"] for s in page["TrainingJobSummaries"]] == ["job-b"]
    rest = lab.client.list_training_jobs(
        MaxResults=1, SortOrder="Descending", SortBy="Name", NextToken=page["NextToken"]
    )
    assert [s["TrainingJobName"] for s in rest["TrainingJobSummaries"]] == [
        "job-a"
    ] and "NextToken" not in rest
    later = lab.client.list_training_jobs(CreationTimeAfter=datetime.now(UTC) + timedelta(hours=1))
    assert later["TrainingJobSummaries"] == []
    assert [m["ModelName"] for m in lab.client.list_models(NameContains="iris")["Models"]] == ["Iris-KNN"]
    assert_matches_output_shape("ListModels", lab.client.list_models())


def test_engine_imports_no_orchestrator():
    import subprocess
    import sys

    code = (
        "import sys, iris_sagemaker.local_sagemaker\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'airflow'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_uris_that_climb_out_of_a_bucket_are_refused_at_create(tmp_path) -> None:
    from botocore.exceptions import ClientError

    from iris_sagemaker.local_sagemaker.testing import model_request, training_request

    lab = Lab(tmp_path)
    climbing = [
        lambda: lab.client.create_model(**model_request("m-escape", "s3://bucket/../../../../etc/passwd")),
        lambda: lab.client.create_training_job(
            **training_request("t-escape", "s3://bucket/in/train.csv", "s3://bucket/../../../tmp/x")
        ),
        lambda: lab.client.create_training_job(
            **training_request("t-escape-in", "s3://bucket/../../etc/", "s3://bucket/out")
        ),
    ]
    for create in climbing:
        with pytest.raises(ClientError) as err:
            create()
        assert err.value.response["Error"]["Code"] == "ValidationException"
        assert "is not a usable S3 URI" in str(err.value) and "'..'" in str(err.value)


def test_a_transform_input_that_names_a_host_folder_is_refused(tmp_path) -> None:
    from botocore.exceptions import ClientError

    from iris_sagemaker.local_sagemaker.testing import transform_request

    lab = Lab(tmp_path)
    lab.model("m", lab.train())
    with pytest.raises(ClientError, match="must be relative") as err:
        lab.client.create_transform_job(
            **transform_request("t", "m", "s3://bucket//etc/ssh/", "s3://bucket/out")
        )
    assert "ssh_config" not in str(err.value)
