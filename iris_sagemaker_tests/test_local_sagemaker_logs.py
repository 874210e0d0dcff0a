"""Per-job progress logs (read_job_log), the embedded engine's CloudWatch."""

from __future__ import annotations

import pytest

from iris_sagemaker.local_sagemaker import jobs
from iris_sagemaker.local_sagemaker.testing import iris_like, to_csv


def _all_lines(lab, job_type, name):
    lines, offset = lab.client.read_job_log(job_type, name)
    return lines, offset


def test_training_log(lab, tmp_path):
    labels, features = iris_like()
    lab.train(
        "logged",
        train=to_csv(labels[:105], features[:105]),
        test=to_csv(labels[105:], features[105:]),
        hyperparameters={"predictor_type": "classifier", "feature_dim": "4", "k": "3", "sample_size": "500"},
    )
    lines, offset = _all_lines(lab, "TrainingJob", "logged")
    assert lines[0].startswith("Training job logged started (pid ")
    assert "reading s3://bucket/logged/input/train.csv (channel train, text/csv)" in lines
    assert "read 105 rows (sampled 105)" in lines  # sample_size above the row count: every row
    assert "index faiss.Flat built: 105 vectors, d=4, metric L2" in lines
    assert "reading s3://bucket/logged/input/test.csv (channel test, text/csv)" in lines
    assert any(line.startswith("test:accuracy = ") for line in lines)
    assert "wrote s3://bucket/results/logged/output/model.tar.gz" in lines
    assert lines[-1] == "job Completed"
    assert offset == (tmp_path / "sagemaker" / "logs" / "training-jobs" / "logged.log").stat().st_size
    assert lab.client.read_job_log("TrainingJob", "logged", offset) == ([], offset)


def test_sampling_is_logged(lab):
    lab.train(
        "sampled",
        hyperparameters={"predictor_type": "classifier", "feature_dim": "4", "k": "3", "sample_size": "40"},
    )
    lines, _ = _all_lines(lab, "TrainingJob", "sampled")
    assert "read 150 rows (sampled 40)" in lines


def test_failed_job_logs_its_reason(lab):
    job = lab.train(
        "bad-k",
        hyperparameters={"predictor_type": "classifier", "feature_dim": "4", "k": "x", "sample_size": "4"},
    )
    lines, _ = _all_lines(lab, "TrainingJob", "bad-k")
    assert lines[-1] == f"job Failed: {job['FailureReason']}"


def test_transform_log_and_incremental_reads(lab):
    labels, features = iris_like()
    lab.model("m", lab.train(train=to_csv(labels, features)))
    uri = lab.put("in/test.csv", to_csv(features[:30]))
    lab.transform("t-log", "m", uri, "s3://bucket/out")
    lines, offset = lab.client.read_job_log("TransformJob", "t-log")
    assert lines[0].startswith("Transform job t-log started")
    assert lines[1].startswith(
        "model loaded from s3://bucket/results/train-iris/output/model.tar.gz: faiss.Flat"
    )
    assert lines[1].endswith("exact search by flat scan")
    assert "reading s3://bucket/in/test.csv" in lines
    assert "scored batch 1: 30 rows (30 rows so far)" in lines
    assert "wrote s3://bucket/out/test.csv.out (30 rows in 1 batches)" in lines
    assert lines[-1] == "job Completed"
    # Reading from a middle offset returns the rest, line by line, once.
    _, middle = lab.client.read_job_log("TransformJob", "t-log", 0)
    log_file = lab.client.root / "sagemaker" / "logs" / "transform-jobs" / "t-log.log"
    head_bytes = len(log_file.read_bytes().split(b"\n")[0]) + 1
    rest, end = lab.client.read_job_log("TransformJob", "t-log", head_bytes)
    assert rest == lines[1:] and end == offset == middle


def test_incomplete_lines_wait_for_their_newline(lab, tmp_path):
    lab.train("partial")
    path = tmp_path / "sagemaker" / "logs" / "training-jobs" / "partial.log"
    _, offset = lab.client.read_job_log("TrainingJob", "partial")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("half a li")
    assert lab.client.read_job_log("TrainingJob", "partial", offset) == ([], offset)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("ne\nnext\n")
    lines, end = lab.client.read_job_log("TrainingJob", "partial", offset)
    assert lines == ["half a line", "next"] and end == path.stat().st_size


def test_unknown_jobs_and_bad_arguments(lab):
    assert lab.client.read_job_log("TrainingJob", "never-ran") == ([], 0)
    assert lab.client.read_job_log("TransformJob", "never-ran", 42) == ([], 42)
    assert lab.client.read_job_log("TrainingJob", "not a valid name!", 7) == ([], 7)
    with pytest.raises(ValueError, match="job_type must be 'TrainingJob' or 'TransformJob'"):
        lab.client.read_job_log("ProcessingJob", "x")


def test_stopped_job_logs_the_stop(lab, monkeypatch):
    monkeypatch.setenv(jobs.TEST_DELAY_ENV, "30")
    lab.train("stop-log", wait=False)
    lab.client.stop_training_job(TrainingJobName="stop-log")
    lab.wait_training("stop-log", timeout=5)
    lines, _ = lab.client.read_job_log("TrainingJob", "stop-log")
    assert lines[-1] == "job Stopped"
