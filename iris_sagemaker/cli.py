"""The ``iris-sagemaker`` command.

- ``iris-sagemaker serve [--host 127.0.0.1] [--port N] [--root DIR] [--region R]`` serves the embedded
  engine over SageMaker's own HTTP API (see :mod:`iris_sagemaker.serve`);
- ``iris-sagemaker with-server [--root DIR] -- COMMAND ...`` runs one command against a server started
  for it (``iris_sagemaker.with_server``), e.g. ``airflow dags test sagemaker_pipeline``;
- ``iris-sagemaker export-airflow-dag [--out FILE] [--region R]`` writes a self-contained DAG file
  (``airflow_defs.export``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from iris_sagemaker.core.algorithm_images import KNN_REGISTRY_ACCOUNTS
from iris_sagemaker.core.settings import (
    DEFAULT_LOCAL_ROOT,
    DEFAULT_REGION,
    SettingsError,
    local_root_from_env,
    region_from_env,
    region_problem,
)

DEFAULT_PORT = 8734
INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C
SETTINGS_ERROR = 2


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0-65535; 0 picks a free port)")
    return port


def _region(text: str) -> str:
    if text not in KNN_REGISTRY_ACCOUNTS:
        known = ", ".join(sorted(KNN_REGISTRY_ACCOUNTS))
        raise argparse.ArgumentTypeError(f"{text!r} is not a region with a k-NN image; use one of {known}")
    return text


def parser() -> argparse.ArgumentParser:
    root = local_root_from_env()  # the settings' own defaults (core.settings)
    region, _ = region_from_env()
    top = argparse.ArgumentParser(prog="iris-sagemaker", description="The iris-sagemaker tools.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve SageMaker, SageMaker Runtime, CloudWatch Logs and S3 on one local port",
        description="Serve the embedded k-NN engine over SageMaker's HTTP API, with CloudWatch Logs "
        "for its jobs and endpoints and S3 (moto's, on the local bucket folder), on one port. Point "
        "any boto3-based tool at it with AWS_ENDPOINT_URL. No authentication: loopback by default.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)"
    )
    serve.add_argument(
        "--root",
        type=Path,
        default=root,
        help="LOCAL_ROOT: records and objects (default IRIS_SAGEMAKER_LOCAL_ROOT, else "
        f"{DEFAULT_LOCAL_ROOT})",
    )
    serve.add_argument(
        "--region", type=_region, default=None, help=f"the region the engine answers for (default {region})"
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    wrap = commands.add_parser(
        "with-server",
        help="run one command against a local server, then stop the server",
        description="Start iris-sagemaker serve for --root on a free loopback port (or use the one "
        "already running), run COMMAND with AWS_ENDPOINT_URL, throwaway credentials and the Airflow "
        "connection aws-sagemaker pointing at it, and stop the server when COMMAND ends (Ctrl-C "
        "included). Exits with COMMAND's status.",
    )
    wrap.add_argument("--root", type=Path, default=root, help="LOCAL_ROOT (as for serve)")
    wrap.add_argument("--region", type=_region, default=None, help=f"(default {region})")
    wrap.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    export = commands.add_parser(
        "export-airflow-dag",
        help="write a self-contained Airflow DAG file (the tutorial's DAG, from the same specs)",
        description="Write the DAG sagemaker_pipeline as one self-contained file: it imports only Airflow, "
        "the Amazon provider, pandas and requests (not iris-sagemaker), and its request bodies are the "
        "assets' own, as literals with the tutorial's Jinja templates where a value varies per run. Drop "
        "it into any Airflow deployment's dags folder (MWAA, Astronomer).",
    )
    export.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the file to write (default: standard output); written whole or not at all",
    )
    export.add_argument(
        "--region",
        type=_region,
        default=DEFAULT_REGION,
        help=f"the region whose k-NN image the bodies name (default {DEFAULT_REGION}, the tutorial's; "
        "the environment is not read, so an export is reproducible)",
    )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    name = f"iris-sagemaker {args.command}"
    try:
        return run(args)
    except SettingsError as err:  # one line a problem: the variable, the bad value, a valid example
        for problem in err.problems:
            print(f"{name}: {problem}", file=sys.stderr)
        return SETTINGS_ERROR
    except KeyboardInterrupt:  # Ctrl-C before the command got going: a stop, not a crash
        print(f"{name}: interrupted", file=sys.stderr)
        return INTERRUPTED


def run(args: argparse.Namespace) -> int:
    if getattr(args, "region", "") is None:
        args.region = checked_env_region()
    if args.command == "serve":
        from iris_sagemaker.serve.server import ServeError, serve

        try:
            return serve(args.root, args.host, args.port, args.region, args.access_log)
        except ServeError as err:
            print(f"iris-sagemaker serve: {err}", file=sys.stderr)
            return 1
    elif args.command == "with-server":
        from iris_sagemaker.with_server import run_with_server

        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        return run_with_server(args.root, args.region, argv)
    elif args.command == "export-airflow-dag":
        from iris_sagemaker.airflow_defs import export

        try:
            export.write(args.out, export.render_dag_file(export.export_settings(args.region)))
        except export.ExportError as err:
            print(f"iris-sagemaker export-airflow-dag: {err}", file=sys.stderr)
            return 1
    return 0


def checked_env_region() -> str:
    """The environment's region (``AWS_REGION``, ``AWS_DEFAULT_REGION``), or SettingsError naming the
    variable when the engine has no k-NN image for it."""
    region, variable = region_from_env()
    problem = region_problem(variable, region, image_setting=False)
    if problem:
        raise SettingsError(problem)
    return region


if __name__ == "__main__":
    sys.exit(main())
