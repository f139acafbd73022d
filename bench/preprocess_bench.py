"""Preprocessing benchmark: the platform's pipeline path (the file read from storage by several Ray tasks and
staged as Arrow files, steps fitted by streaming passes over them, Parquet out; train_jobs.preprocess.fit_and_write)
against pandas + scikit-learn in one process, on the same generated file (CSV, Parquet or JSON lines), in the same
run.

    .venv/bin/python -m bench.preprocess_bench --rows 1000000 [--rows 10000000] [--format parquet]

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

from app.services.data import formats

STEPS = [
    {"op": "impute", "strategy": "median", "columns": ["a", "b", "c"]},
    {"op": "impute", "strategy": "most_frequent", "columns": ["colour"]},
    {"op": "outliers", "method": "iqr", "action": "clip", "columns": ["a", "b", "c"]},
    {"op": "scale", "method": "standard", "columns": ["a", "b", "c", "d"]},
    {"op": "encode", "method": "onehot", "columns": ["colour"]},
]


def make_data(path: Path, rows: int) -> None:
    """The bench's table, in the format of `path`'s suffix."""
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
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, double_precision=15)
    else:
        frame.to_csv(path, index=False)


def read_data(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, precise_float=True)
    return pd.read_csv(path)


class PeakRss:
    """Samples the memory of this process and its children (Ray's workers included): every 50 ms the sum of
    their RSS, which counts shared pages (Ray's object store, mapped by every worker that reads a block) once per
    process, and every 250 ms the sum of their PSS, which splits each shared page between the processes that map it."""

    def __init__(self) -> None:
        self.peak = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        tick = 0
        while not self._stop.is_set():
            with_pss = tick % 5 == 0  # PSS reads every mapping of every process: every 250 ms, not to skew timings
            rss = pss = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    info = proc.memory_full_info() if with_pss else proc.memory_info()
                    rss, pss = rss + info.rss, pss + (info.pss if with_pss else 0)
                except psutil.Error:
                    pass
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            tick += 1
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_pandas(data: Path, out: Path) -> dict[str, float]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    with PeakRss() as rss:
        start = time.perf_counter()
        frame = read_data(data)
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
    return {"seconds": seconds, "peak_rss_mb": rss.peak / 2**20, "peak_pss_mb": rss.peak_pss / 2**20}


def run_ray(data: Path, out: Path) -> dict[str, float]:
    import ray

    from app.core.config import Settings
    from app.db.models import DatasetVersion
    from train_jobs.preprocess import fit_and_write

    started = time.perf_counter()
    # address="local": always a new private instance (never attach to another cluster on this machine); its
    # ports are free ones the OS assigns, so it never collides with a platform or test cluster.
    ray.init(
        address="local",
        num_cpus=psutil.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=tempfile.mkdtemp(prefix="aip-bench-ray-"),
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    startup = time.perf_counter() - started
    settings = Settings(data_dir=data.parent / "settings", storage_url=f"file://{data.parent}")
    columns = json.loads(data.with_name("columns.json").read_text())  # as the upload records them
    version = DatasetVersion(id=0, format=data.suffix.lstrip("."), storage_key=data.name, columns=columns)
    with PeakRss() as idle:  # Ray's own processes (GCS, raylet, workers) before any data
        time.sleep(0.5)
    with PeakRss() as rss:
        times = []
        for _ in range(2):  # cold: the first run in a fresh instance; warm: Ray's workers already up
            start = time.perf_counter()
            fit_and_write(settings, version, STEPS, {"target": "label"}, out)  # the job's path, from storage
            times.append(time.perf_counter() - start)
    ray.shutdown()
    return {
        "seconds": times[0],
        "warm_seconds": times[1],
        "peak_rss_mb": rss.peak / 2**20,
        "peak_pss_mb": rss.peak_pss / 2**20,
        "ray_startup_s": startup,
        "idle_rss_mb": idle.peak / 2**20,
        "idle_pss_mb": idle.peak_pss / 2**20,
    }


def _same_output(pandas_file: Path, ray_file: Path) -> bool:
    """Both sides wrote the same rows and values (column order aside: the platform puts one-hot columns where the
    encoded column was)."""
    expected, produced = pd.read_parquet(pandas_file), pd.read_parquet(ray_file)
    if sorted(expected.columns) != sorted(produced.columns) or len(expected) != len(produced):
        return False
    produced = produced[list(expected.columns)]
    return bool(np.allclose(expected.to_numpy(dtype=float), produced.to_numpy(dtype=float), rtol=0, atol=1e-9))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, action="append", help="Rows per run (repeatable).")
    parser.add_argument("--format", choices=["csv", "parquet", "jsonl"], default="csv", help="The input's format.")
    parser.add_argument("--side", choices=["pandas", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # a child: one side, one file, JSON out
        runner = run_pandas if args.side == "pandas" else run_ray
        print(json.dumps(runner(args.data, args.data.with_name(f"out.{args.side}.parquet"))))
        return
    for rows in args.rows or [1_000_000]:
        with tempfile.TemporaryDirectory(prefix="aip-bench-") as tmp:
            data = Path(tmp) / f"data.{args.format}"
            make_data(data, rows)
            # The columns as the upload records them, checked here so the Ray side's memory is its pipeline's own.
            data.with_name("columns.json").write_text(json.dumps(formats.inspect(data, args.format)[1]))
            results = {}
            for side in ("pandas", "ray"):
                cmd = [sys.executable, "-m", "bench.preprocess_bench", "--side", side, "--data", str(data)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode:
                    raise SystemExit(f"The {side} side failed:\n{done.stderr[-4000:]}")
                results[side] = json.loads(done.stdout.strip().splitlines()[-1])
            p, r = results["pandas"], results["ray"]
            same = _same_output(data.with_name("out.pandas.parquet"), data.with_name("out.ray.parquet"))
            print(f"{rows:,} rows ({data.stat().st_size / 2**20:.0f} MiB {args.format})")
            rates = (
                ("pandas + scikit-learn", p["seconds"]),
                ("platform, cold", r["seconds"]),
                ("platform, warm", r["warm_seconds"]),
            )
            for name, seconds in rates:
                print(f"  {name:<22} {seconds:7.2f} s  {rows / seconds:>12,.0f} rows/s")
            for kind in ("rss", "pss"):
                print(
                    f"  peak {kind.upper()}: pandas {p[f'peak_{kind}_mb']:.0f} MiB; Ray driver + its processes "
                    f"{r[f'peak_{kind}_mb']:.0f} MiB (of which {r[f'idle_{kind}_mb']:.0f} MiB idle Ray before any data)"
                )
            print(f"  Ray start-up (not counted): {r['ray_startup_s']:.1f} s; same output as pandas: {same}")
            print(
                f"  ratio Ray/pandas throughput: cold {p['seconds'] / r['seconds']:.2f}x, "
                f"warm {p['seconds'] / r['warm_seconds']:.2f}x"
            )


if __name__ == "__main__":
    main()
