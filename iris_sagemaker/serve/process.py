"""Start ``iris-sagemaker serve`` as a child process and stop it again (tests, benches, make targets)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from iris_sagemaker.core.settings import SERVE_OWNER_VARIABLE as OWNER_ENV  # internal (README)

_EXPORT = re.compile(r"^export ([A-Z_]+)=(\S+)$")
_LAST_EXPORT = "SAGEMAKER_USER_CONFIG_OVERRIDE"  # the ready banner's last line


@dataclass
class ServerProcess:
    """A running server: its URL, its process and everything it printed so far."""

    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    exports: dict[str, str] = field(default_factory=dict)

    def client_env(self, region: str = "us-east-2") -> dict[str, str]:
        """Environment variables that point boto3 (and the SageMaker Python SDK) at this server, with
        throwaway credentials."""
        return client_env(self.url, region, self.exports)

    def text(self) -> str:
        return "\n".join(self.output)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and wait for the exit (SIGKILL after ``timeout``); returns the exit status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def client_env(url: str, region: str, exports: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment pointing boto3 (and the SageMaker SDK, through ``exports``) at the server ``url``,
    with throwaway credentials (pure)."""
    return {
        **(exports or {}),
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": region,
    }


def start_server(
    root: Path,
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 60.0,
    port: int = 0,
    owned: bool = False,
) -> ServerProcess:
    """Start a server for ``root`` on a loopback ``port`` (0: a free one); return once it is ready.

    ``owned``: the server is this process's own: it stops when this process exits, even when killed
    (``serve.server.stop_with_owner``), and others do not adopt it (its lock names this process).
    """
    command = [sys.executable, "-m", "iris_sagemaker.cli", "serve", "--port", str(port), "--root", str(root)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {}), **({OWNER_ENV: str(os.getpid())} if owned else {})},
    )
    assert process.stdout is not None
    lines: list[str] = []
    exports: dict[str, str] = {}
    ready = threading.Event()

    def pump() -> None:  # keep reading, so the server never blocks on a full pipe
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            match = _EXPORT.match(lines[-1])
            if match and not ready.is_set():
                exports[match.group(1)] = match.group(2)
                if match.group(1) == _LAST_EXPORT:
                    ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if time.monotonic() > deadline:
            break
    if _LAST_EXPORT not in exports:
        server = ServerProcess("", process, lines)
        server.stop(signal.SIGKILL)
        raise RuntimeError("iris-sagemaker serve did not start:\n" + "\n".join(lines))
    url = exports.pop("AWS_ENDPOINT_URL")
    return ServerProcess(url, process, lines, exports)
