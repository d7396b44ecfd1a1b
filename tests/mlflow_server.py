"""A real MLflow tracking server for the tests: ``mlflow server`` on 127.0.0.1, a SQLite store, local artifacts.

It is started as its own process group on a free port, and stopped by its process id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

#: No usage telemetry (it would go to the network), no background job runner.
QUIET_MLFLOW = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _stop(process: subprocess.Popen) -> None:
    """End the server's process group (the server and its uvicorn worker), by the server's process id."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):  # a worker that outlived its parent
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def mlflow_server(directory: Path, timeout: float = 120.0) -> Iterator[str]:
    """Run ``mlflow server`` with its store and artifacts under ``directory``; yields its ``http://`` URI."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
        "--artifacts-destination", str(directory / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = directory / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **QUIET_MLFLOW}, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(uri):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start on {uri}:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield uri
    finally:
        _stop(process)
