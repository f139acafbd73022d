"""Preprocessing benchmark: the platform's pipeline path (Ray Data read from storage, fitted steps, Parquet out)
against pandas + scikit-learn in one process, on the same generated CSV, in the same run.

    .venv/bin/python -m bench.preprocess_bench --rows 1000000 [--rows 10000000]

Each side runs in its own subprocess so peak memory (the process tree's RSS, sampled) is its own. The Ray side
starts a private local Ray instance first; its start-up is reported separately and not counted as pipeline time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

STEPS = [
    {"op": "impute", "strategy": "median", "columns": ["a", "b", "c"]},
    {"op": "impute", "strategy": "most_frequent", "columns": ["colour"]},
    {"op": "outliers", "method": "iqr", "action": "clip", "columns": ["a", "b", "c"]},
    {"op": "scale", "method": "standard", "columns": ["a", "b", "c", "d"]},
    {"op": "encode", "method": "onehot", "columns": ["colour"]},
]


def make_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(0, 1, rows),
            "b": rng.exponential(2, rows),
            "c": rng.integers(0, 1000, rows).astype(float),
            "d": rng.uniform(-5, 5, rows),
            "colour": rng.choice(["red", "green", "blue", "cyan"], rows),
            "label": rng.integers(0, 2, rows),
        }
    )
    for column in ("a", "b", "c", "colour"):
        frame.loc[rng.random(rows) < 0.05, column] = None
    frame.to_csv(path, index=False)


class PeakRss:
    """Samples the RSS of this process and its children (Ray's workers included) every 50 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_pandas(csv: Path, out: Path) -> dict[str, float]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    with PeakRss() as rss:
        start = time.perf_counter()
        frame = pd.read_csv(csv)
        frame[["a", "b", "c"]] = SimpleImputer(strategy="median").fit_transform(frame[["a", "b", "c"]])
        frame[["colour"]] = SimpleImputer(strategy="most_frequent").fit_transform(frame[["colour"]])
        for column in ("a", "b", "c"):
            q1, q3 = np.percentile(frame[column], [25, 75])
            frame[column] = frame[column].clip(q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1))
        frame[["a", "b", "c", "d"]] = StandardScaler().fit_transform(frame[["a", "b", "c", "d"]])
        encoder = OneHotEncoder(sparse_output=False).fit(frame[["colour"]])
        encoded = pd.DataFrame(encoder.transform(frame[["colour"]]), columns=encoder.get_feature_names_out())
        frame = pd.concat([frame.drop(columns=["colour"]), encoded], axis=1)
        frame.to_parquet(out, index=False)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": rss.peak / 2**20, "rows": len(frame)}


def run_ray(csv: Path, out: Path) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from app.core.config import Settings
    from app.db.models import DatasetVersion
    from app.services import data_io
    from app.services.pipeline_transform import fit_transform

    started = time.perf_counter()
    # address="local": always a new private instance (never attach to another cluster on this machine).
    ray.init(
        address="local",
        num_cpus=psutil.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=tempfile.mkdtemp(prefix="aip-bench-ray-"),
    )
    startup = time.perf_counter() - started
    settings = Settings(data_dir=csv.parent / "settings", storage_url=f"file://{csv.parent}")
    header = pd.read_csv(csv, nrows=5)
    version = DatasetVersion(
        id=0, format="csv", storage_key=csv.name, columns=[{"name": c, "dtype": "?"} for c in header.columns]
    )
    with PeakRss() as idle:  # Ray's own processes (GCS, raylet, workers) before any data
        time.sleep(0.5)
    with PeakRss() as rss:
        times = []
        for _ in range(2):  # cold: the first Ray Data run in a fresh instance; warm: Ray's workers already up
            start = time.perf_counter()
            frame = data_io.to_frame(data_io.read_version(settings, version))  # the job's read, from storage
            _state, result = fit_transform(STEPS, frame, {"target": "label"})
            pq.write_table(pa.Table.from_pandas(result, preserve_index=False), out)
            times.append(time.perf_counter() - start)
            del frame, result
    ray.shutdown()
    return {
        "seconds": times[0],
        "warm_seconds": times[1],
        "peak_rss_mb": rss.peak / 2**20,
        "ray_startup_s": startup,
        "idle_rss_mb": idle.peak / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, action="append", help="Rows per run (repeatable).")
    parser.add_argument("--side", choices=["pandas", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # a child: one side, one file, JSON out
        runner = run_pandas if args.side == "pandas" else run_ray
        print(json.dumps(runner(args.csv, args.csv.with_suffix(f".{args.side}.parquet"))))
        return
    for rows in args.rows or [1_000_000]:
        with tempfile.TemporaryDirectory(prefix="aip-bench-") as tmp:
            csv = Path(tmp) / "data.csv"
            make_csv(csv, rows)
            results = {}
            for side in ("pandas", "ray"):
                cmd = [sys.executable, "-m", "bench.preprocess_bench", "--side", side, "--csv", str(csv)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                results[side] = json.loads(done.stdout.strip().splitlines()[-1])
            p, r = results["pandas"], results["ray"]
            print(f"{rows:,} rows ({csv.stat().st_size / 2**20:.0f} MiB CSV)")
            rates = (
                ("pandas + scikit-learn", p["seconds"]),
                ("Ray Data, cold", r["seconds"]),
                ("Ray Data, warm", r["warm_seconds"]),
            )
            for name, seconds in rates:
                print(f"  {name:<22} {seconds:7.2f} s  {rows / seconds:>12,.0f} rows/s")
            print(
                f"  peak RSS: pandas {p['peak_rss_mb']:.0f} MiB; Ray driver + its processes {r['peak_rss_mb']:.0f} MiB "
                f"(of which {r.get('idle_rss_mb', 0):.0f} MiB idle Ray before any data)"
            )
            print(f"  Ray start-up (not counted): {r['ray_startup_s']:.1f} s")
            print(
                f"  ratio Ray/pandas throughput: cold {p['seconds'] / r['seconds']:.2f}x, "
                f"warm {p['seconds'] / r['warm_seconds']:.2f}x"
            )


if __name__ == "__main__":
    main()
