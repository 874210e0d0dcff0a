"""Running the server: bind, take the root's lock, serve with uvicorn, shut down cleanly.

One server per root: ``ROOT/sagemaker/serve.lock`` is held (``flock``) for the server's lifetime and
names its pid and URL, so a second server on the same root refuses to start and says which one runs.
The lock goes with the process, however it ends (kill -9 included).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import sdk_config
from .lockfile import ServeError, announce, root_lock
from .process import OWNER_ENV


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), or ServeError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ServeError(f"cannot serve on --host {host!r}: {err.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ServeError(
                f"port {port} on {host} is already in use: stop what listens there, or pick another "
                "--port (--port 0 picks a free one)"
            ) from None
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.set_inheritable(False)
    return sock


def stop_with_owner() -> None:
    """A server started for one process (``IRIS_SAGEMAKER_SERVE_OWNER``, its parent) gets SIGTERM when
    that process exits, however it exits (Linux: PR_SET_PDEATHSIG); where that cannot be arranged, or the
    owner is already gone, it does not start."""
    owner = os.environ.get(OWNER_ENV, "").strip()
    if not owner.isdigit():
        return
    if sys.platform == "linux":
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(owner):
        raise ServeError(f"the process {owner} this server was started for has already exited")


STOPPED = "iris-sagemaker serve: stopped"
INTERRUPTED_STATUS = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def serve(root: Path, host: str, port: int, region: str, access_log: bool = False) -> int:
    """Serve until SIGINT or SIGTERM; raises ServeError when it cannot start. Returns the exit status:
    130 after Ctrl-C (SIGINT), 0 otherwise (after SIGTERM the process ends by that signal, as uvicorn
    re-raises it)."""
    import uvicorn

    from .app import ServerApp

    stop_with_owner()
    root = root.expanduser().resolve()
    with root_lock(root) as lock:
        sock = bind(host, port)
        actual = sock.getsockname()[1]
        url = url_for(host, actual)
        app = ServerApp(root, region)
        threading.Thread(target=_hand_back_free_memory, name="iris-sagemaker-trim", daemon=True).start()
        said: list[str] = []
        caught: list[int] = []  # the signals that stopped it

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets=sockets)
                if self.started:
                    announce(lock, url)
                    _print_ready(url, root, region, host, sdk_config.write_sdk_config(root, region))

            async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
                await super().shutdown(sockets=sockets)
                print(STOPPED, flush=True)  # before uvicorn re-raises SIGTERM, which ends the process
                said.append(STOPPED)

            def handle_exit(self, sig: int, frame: Any) -> None:
                caught.append(sig)
                super().handle_exit(sig, frame)

        config = uvicorn.Config(
            app,
            lifespan="on",
            access_log=access_log,
            log_level="info" if access_log else "warning",
            timeout_graceful_shutdown=5,
        )
        try:
            Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn shut down cleanly on SIGINT, then re-raised it: a clean stop
            if not said:
                print(STOPPED, flush=True)
            return INTERRUPTED_STATUS
        finally:
            sock.close()
    # A process that started with SIGINT ignored (a background job of a shell without job control)
    # gets no KeyboardInterrupt from uvicorn's re-raise; a Ctrl-C is still a Ctrl-C.
    return INTERRUPTED_STATUS if signal.SIGINT in caught else 0


TRIM_EVERY_S = 10.0


def _hand_back_free_memory() -> None:
    """Every few seconds, hand the C allocator's free memory back to the system (``release_free_memory``).

    A server thread that handled a 6 MB body, or ran a job, frees it into glibc's per-thread arena, which
    keeps it: left so, the server's RSS would climb with every burst of large requests and jobs though
    nothing stays allocated. A trim costs about a millisecond."""
    from iris_sagemaker.core.storage import release_free_memory

    while True:
        time.sleep(TRIM_EVERY_S)
        release_free_memory()


def _print_ready(url: str, root: Path, region: str, host: str, sdk_defaults: Path) -> None:
    if not is_loopback(host):
        print(
            f"WARNING: serving on {host}, beyond this machine, with NO authentication: anyone who can "
            "reach the port can read and write the local bucket and run jobs. Prefer --host 127.0.0.1.",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"iris-sagemaker serve: SageMaker, SageMaker Runtime, CloudWatch Logs and S3 on {url}\n"
        f"  root {root} (objects in {root / 's3'}), region {region}; any credentials are accepted\n"
        f"export AWS_ENDPOINT_URL={url}\n"
        "# and for the SageMaker Python SDK (its default bucket without AWS STS, no telemetry):\n"
        f"export {sdk_config.ENV_VARIABLE}={sdk_defaults}",
        flush=True,
    )
