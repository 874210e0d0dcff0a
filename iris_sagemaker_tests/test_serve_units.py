"""The server's pure parts: the wire encoding (botocore's models), the command line, the lock."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from iris_sagemaker import cli
from iris_sagemaker.local_sagemaker import runtime, validation
from iris_sagemaker.serve import lockfile, server, wire


def test_timestamps_and_blobs_follow_the_model_both_ways() -> None:
    op = validation.operation_model("ListTrainingJobs")
    params = wire.from_wire(op.input_shape, {"CreationTimeAfter": 1_700_000_000.5, "MaxResults": 5})
    assert params == {"CreationTimeAfter": datetime.fromtimestamp(1_700_000_000.5, UTC), "MaxResults": 5}
    described = validation.operation_model("DescribeTrainingJob")
    when = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    body = json.loads(
        wire.json_response(
            described,
            {
                "TrainingJobName": "j",
                "CreationTime": when,
                "TrainingStartTime": when.isoformat(),
                "ResponseMetadata": {"RequestId": "x"},  # not in the output shape: not sent
                "NotAMember": 1,
            },
        )
    )
    assert body == {
        "TrainingJobName": "j",
        "CreationTime": when.timestamp(),
        "TrainingStartTime": when.timestamp(),
    }


def test_rest_requests_and_responses_bind_members_to_the_uri_headers_and_payload() -> None:
    op = runtime.operation_model()
    headers = {
        "content-type": "text/csv",
        "accept": "application/json",
        "x-amzn-sagemaker-target-variant": "A",
    }
    params = wire.rest_request(op, {"EndpointName": "ep"}, headers, b"1,2")
    assert params == {
        "EndpointName": "ep",
        "Body": b"1,2",
        "ContentType": "text/csv",
        "Accept": "application/json",
        "TargetVariant": "A",
    }
    body, out = wire.rest_response(
        op, {"Body": b"{}", "ContentType": "application/json", "InvokedProductionVariant": "A"}
    )
    assert body == b"{}"
    assert out == {"Content-Type": "application/json", "x-Amzn-Invoked-Production-Variant": "A"}


def test_errors_go_out_as_type_and_message_with_their_status() -> None:
    err = runtime.runtime_error("ModelError", "bad row", 424, OriginalStatusCode=400, OriginalMessage="row 1")
    status, body, headers = wire.error_response(err)
    assert status == 424 and headers == {"x-amzn-ErrorType": "ModelError"}
    assert json.loads(body) == {
        "__type": "ModelError",
        "message": "bad row",
        "OriginalStatusCode": 400,
        "OriginalMessage": "row 1",
    }
    with pytest.raises(wire.WireError, match="must be a JSON object"):
        wire.decode_json_body(b"[1]")
    assert wire.decode_json_body(b"") == {}
    assert isinstance(err, ClientError)


def test_the_command_line_refuses_bad_values_clearly(capsys) -> None:
    for argv, message in [
        (["serve", "--port", "70000"], "70000 is not a port number"),
        (["serve", "--port", "http"], "'http' is not a port number"),
        (["serve", "--region", "moon-1"], "'moon-1' is not a region with a k-NN image"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("variable", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_a_bad_region_in_the_environment_is_one_line_naming_the_variable(
    variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, "us-east-9")
    for command in (["serve", "--port", "0"], ["with-server", "--", "true"]):
        assert cli.main(command) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"iris-sagemaker {command[0]}: {variable}='us-east-9': SageMaker's k-NN image is not published "
            "in that region; set it to a region that has it (e.g. us-east-2, eu-west-1)"
        ]


def test_a_busy_port_or_root_is_a_clear_error(tmp_path, capsys) -> None:
    taken = server.bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--port", str(port), "--root", str(tmp_path)]) == 1
        assert f"port {port} on 127.0.0.1 is already in use" in capsys.readouterr().err
    finally:
        taken.close()
    with lockfile.root_lock(tmp_path) as lock:
        lockfile.announce(lock, "http://127.0.0.1:1234")
        with (
            pytest.raises(
                server.ServeError, match=r"another iris-sagemaker serve \(pid \d+, http://127.0.0.1:1234\)"
            ),
            lockfile.root_lock(tmp_path),
        ):
            pass
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert cli.main(["serve", "--port", "0", "--root", str(blocked)]) == 1
    assert "cannot use --root" in capsys.readouterr().err


def test_only_loopback_is_quiet(capsys, tmp_path) -> None:
    assert server.is_loopback("127.0.0.1") and server.is_loopback("::1") and server.is_loopback("localhost")
    assert not server.is_loopback("0.0.0.0")
    server._print_ready("http://0.0.0.0:1", tmp_path, "us-east-2", "0.0.0.0", tmp_path / "sdk.yaml")
    captured = capsys.readouterr()
    assert "NO authentication" in captured.err
    assert "export AWS_ENDPOINT_URL=http://0.0.0.0:1" in captured.out
    server._print_ready("http://127.0.0.1:1", tmp_path, "us-east-2", "127.0.0.1", tmp_path / "sdk.yaml")
    assert capsys.readouterr().err == ""
    assert server.url_for("::1", 80) == "http://[::1]:80"
