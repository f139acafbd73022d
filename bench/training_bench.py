"""Training benchmarks, each a ratio against a baseline measured in the same run, on a private platform:

1. throughput: steady-state epoch time of a platform job (2 DDP workers) against a hand-written torch DDP script
   (bench/ddp_baseline.py: same model, data, batch size, process count, thread count and niceness);
2. start-up: submit -> first metric visible through the API, and total job overhead against training-loop time,
   on a warm cluster, with where the start-up goes (from the job's recorded transitions);
3. tuning: epochs that ASHA and plain (FIFO) random search each spend over the same seeded trials, and whether
   each reaches the target accuracy.

    .venv/bin/python -m bench.training_bench [--rows 100000] [--epochs 12] [--parts startup,throughput,tuning]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray

from app import launcher as platform
from app.client import Client
from app.contracts.train_config import TrainConfig
from app.contracts.warm_pool import NAMESPACE
from app.core.config import Settings
from app.services.training import warm_workers
from tests.utils.factories import TARGET, breast_cancer_split
from train_jobs.train_tabular import prepare_data

PASSWORD = "bench-admin-password-1"
POLL_S = 0.5


def synthetic(rows: int, features: int = 20, classes: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features))
    logits = x @ rng.normal(size=(features, classes))
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(features)])
    frame["label"] = np.array(["a", "b", "c"])[logits.argmax(axis=1)]
    return frame


def upload(client: Client, frame: pd.DataFrame, directory: Path, name: str) -> dict[str, Any]:
    path = directory / f"{name}.csv"
    frame.to_csv(path, index=False)
    return client.upload_csv(client.create_dataset(name)["id"], path)


def when(value: str) -> float:
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).timestamp()


def steady_epoch_s(metric_times: list[float]) -> float:
    """Mean time per epoch after the first (warm-up) one, from the times its metrics reached the database.

    A mean over the whole span, not a median of gaps: the controller may record reports in bursts.
    """
    return (metric_times[-1] - metric_times[0]) / (len(metric_times) - 1)


def wait_pool_warm(settings: Settings, *, if_started: bool = False, timeout_s: float = 120) -> float:
    """Waits until the platform's pool holds its warm workers on every node, all done importing; the wait. With
    `if_started`, only if the platform has started its pool (it does once a job has ended and the cluster is quiet)."""
    name = warm_workers.pool_name(settings)
    if name is None:
        return 0.0
    started = time.time()
    while time.time() - started < timeout_s:
        try:
            idle = ray.get(ray.get_actor(name, namespace=NAMESPACE).stats.remote())["idle"]
            if idle and all(len(p) == settings.warm_workers_per_node and None not in p for p in idle.values()):
                return round(time.time() - started, 2)
        except ValueError:  # the platform has not started it yet
            if if_started:
                return 0.0
        time.sleep(POLL_S)
    raise TimeoutError(f"The warm pool did not fill within {timeout_s} s.")


def bench_throughput(
    client: Client, settings: Settings, frame: pd.DataFrame, workdir: Path, epochs: int, batch: int
) -> dict[str, Any]:
    version = upload(client, frame, workdir, "bench-throughput")
    wait_pool_warm(settings, if_started=True)  # a refill still importing would slow the first epochs
    job = client.create_job(
        dataset_version_id=version["id"],
        target_column="label",
        epochs=epochs,
        batch_size=batch,
        num_workers=2,
        checkpoint_interval=epochs,  # steady state: reports every epoch, one checkpoint at the end
    )
    done = client.wait_job(job["id"], timeout_s=1800)
    assert done["status"] == "SUCCEEDED", done["message"]
    page = client.job_metrics(job["id"])["points"]
    platform_epoch = steady_epoch_s([when(p["time"]) for p in page])

    spec, arrays = prepare_data(frame, TrainConfig(target_column="label", batch_size=batch))
    np.savez(workdir / "arrays.npz", **dict(zip(("x_train", "y_train", "x_val", "y_val"), arrays, strict=True)))
    (workdir / "spec.json").write_text(json.dumps(spec.to_dict()))
    out = workdir / "baseline.json"
    subprocess.run(
        [sys.executable, "-m", "bench.ddp_baseline", str(workdir / "arrays.npz"), str(workdir / "spec.json")]
        + ["--workers", "2", "--epochs", str(epochs), "--batch-size", str(batch), "--out", str(out)],
        check=True,
    )
    baseline_times = json.loads(out.read_text())["epoch_times_s"]
    baseline_epoch = statistics.mean(baseline_times[1:])
    return {
        "rows": len(frame),
        "platform_epoch_s": round(platform_epoch, 3),
        "platform_loop_epoch_s": round(statistics.mean(p["epoch_time_s"] for p in page[1:]), 3),
        "baseline_epoch_s": round(baseline_epoch, 3),
        "throughput_ratio": round(baseline_epoch / platform_epoch, 3),
    }


def timed_startup(client: Client, spec: dict[str, Any]) -> dict[str, float]:
    submitted = time.time()
    job = client.create_job(**spec)
    # A light poll: every request costs the API and Serve's proxy CPU, which on a small node the job's start-up
    # needs (polling the full job every 0.1 s added about 4 s here). The metric's recorded time is when any read
    # through the API could first return it; the poll only confirms that one did, at most POLL_S later.
    while not client.job_metrics(job["id"], limit=1)["points"]:
        time.sleep(POLL_S)
    seen = time.time() - submitted
    done = client.wait_job(job["id"], timeout_s=600)
    assert done["status"] == "SUCCEEDED", done["message"]
    at = {t["to_status"]: when(t["created_at"]) for t in done["transitions"]}
    first = when(done["metrics"][0]["time"])
    loop_s = sum(m["epoch_time_s"] for m in done["metrics"])
    total_s = when(done["finished_at"]) - when(done["created_at"])
    return {
        "submit_to_first_metric_s": round(first - submitted, 2),
        "submit_to_first_metric_seen_s": round(seen, 2),
        "queued_to_starting_s": round(at["STARTING"] - at["QUEUED"], 2),
        "starting_to_running_s": round(at["RUNNING"] - at["STARTING"], 2),
        "running_to_first_metric_s": round(first - at["RUNNING"], 2),
        "total_s": round(total_s, 2),
        "training_loop_s": round(loop_s, 2),
        "overhead_s": round(total_s - loop_s, 2),
    }


def bench_startup(client: Client, settings: Settings, version_id: int, epochs: int, runs: int) -> dict[str, Any]:
    """`runs` jobs one after another on a warm cluster (after a first job, each once the platform's pool of warm
    workers is full again); the medians, and each run."""
    spec = {"dataset_version_id": version_id, "target_column": TARGET, "epochs": epochs, "num_workers": 2}
    warm = client.wait_job(client.create_job(**spec)["id"], timeout_s=600)  # the cluster is warm afterwards
    assert warm["status"] == "SUCCEEDED", warm["message"]
    measured = []
    for _ in range(runs):
        waited = wait_pool_warm(settings)
        measured.append({**timed_startup(client, spec), "waited_for_warm_pool_s": waited})
    return {**{k: round(statistics.median(r[k] for r in measured), 2) for k in measured[0]}, "runs": measured}


def bench_tuning(client: Client, version_id: int, target: float) -> dict[str, Any]:
    search = {
        "space": {
            "learning_rate": {"type": "loguniform", "low": 1e-5, "high": 0.1},
            "hidden_units": {"type": "randint", "low": 4, "high": 64},
        },
        "metric": "val_accuracy",
        "num_samples": 9,
        "max_concurrent_trials": 3,
        "max_t": 9,
        "grace_period": 1,
        "reduction_factor": 3,
        "search_alg": "random",
        "seed": 7,
    }
    result = {}
    for scheduler in ("asha", "fifo"):
        search["scheduler"] = scheduler
        run = client.create_tune(dataset_version_id=version_id, target_column=TARGET, num_workers=1, search=search)
        done = client.wait_tune(run["id"], timeout_s=3600)
        assert done["status"] == "SUCCEEDED", done["message"]
        best = max(p.get("val_accuracy", 0.0) for t in done["trials"] for p in t["history"])
        result[scheduler] = {
            "epochs": sum(t["iterations"] for t in done["trials"]),
            "best_val_accuracy": round(best, 4),
            "reached_target": best >= target,
            "early_stopped_trials": sum(t["status"] == "EARLY_STOPPED" for t in done["trials"]),
        }
    result["target_val_accuracy"] = target
    result["epochs_ratio_random_over_asha"] = round(result["fifo"]["epochs"] / result["asha"]["epochs"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--parts", default="startup,throughput,tuning", help="Comma list of the parts to run.")
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=32000)
    parser.add_argument(
        "--warm-workers", type=int, default=Settings.model_fields["warm_workers_per_node"].default, help="Per node."
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="aip-train-bench-"))
    settings = Settings(
        data_dir=workdir / "platform",
        ray_port=args.port_base,
        ray_dashboard_port=args.port_base + 400,
        http_port=args.port_base + 500,
        ray_num_cpus=4,
        admin_password=PASSWORD,  # the reconcile loop at its default interval, as users run it
        warm_workers_per_node=args.warm_workers,
    )
    running = platform.start(settings).platform
    try:
        ray.init(address=settings.gcs_address, log_to_driver=False)  # to watch the pool of warm workers
        client = Client(running.api_url).login("admin", PASSWORD)
        train, _ = breast_cancer_split()
        small = upload(client, train, workdir, "bench-breast-cancer")
        parts = args.parts.split(",")
        results: dict[str, Any] = {}
        if "startup" in parts:
            results["startup"] = bench_startup(client, settings, small["id"], epochs=5, runs=args.startup_runs)
            print(json.dumps(results), flush=True)
        if "throughput" in parts:
            frame = synthetic(args.rows)
            results["throughput"] = bench_throughput(client, settings, frame, workdir, args.epochs, args.batch_size)
            print(json.dumps(results), flush=True)
        if "tuning" in parts:
            results["tuning"] = bench_tuning(client, small["id"], target=0.97)
        print(json.dumps(results, indent=2))
    finally:
        platform.stop(settings)


if __name__ == "__main__":
    main()
