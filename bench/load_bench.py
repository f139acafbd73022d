"""Load benchmark: 2, 8, 16 and 50 concurrent clients against a running platform, API tokens and logins (JWTs)
mixed, doing reads (lists, gets), metric queries, small CSV uploads and predictions on one deployment of a tiny
trained model. Reports throughput, p50 / p99 / max latency and errors per level and per kind of request.

    .venv/bin/python -m bench.load_bench [--seconds 20] [--levels 2,8,16,50] [--database-url URL --reset-database]

Baseline, measured in the same run at each level just before the mix: `GET /api/v1/health` through the same
Serve ingress (no authentication, no database): the floor any API request pays on this machine.

Starts its own platform (private data dir, ports offset by AIP_BENCH_PORT_OFFSET, default 3000) and stops it by
PID afterwards. `--database-url` points it at PostgreSQL or MariaDB instead of SQLite; `--reset-database` drops
every table there first (the platform creates its schema and admin on start).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from app import launcher as platform
from app.client import Client
from app.core.config import Settings
from tests.utils.ports import cluster_ports

ADMIN_PASSWORD = "bench-admin-password-1"
USER_PASSWORD = "Load-bench-passw0rd"
SCOPES = [
    "dataset:list",
    "dataset:query",
    "dataset:upload",
    "training:job:list",
    "training:job:query",
    "model:list",
    "deployment:list",
    "deployment:predict",
]
FEATURES = ["x0", "x1", "x2", "x3"]
# The mix of requests, by weight: mostly reads, as a team's consoles, scripts and dashboards make them.
MIX = {"read": 55, "metrics": 15, "predict": 25, "upload": 5}


@dataclass
class Fixture:
    api_url: str
    dataset_id: int
    version_id: int
    job_id: int
    deployment_id: int | None
    tokens: list[str]
    logins: list[tuple[str, str]]  # (username, password): each JWT client logs in for itself


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_errors: list[str] = field(default_factory=list)  # what went wrong, for the report
    elapsed_s: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20, help="Duration of each level's mixed load.")
    parser.add_argument("--baseline-seconds", type=float, default=5, help="Duration of each level's baseline.")
    parser.add_argument("--levels", default="2,8,16,50", help="Numbers of concurrent clients.")
    parser.add_argument("--database-url", default="", help="SQLAlchemy URL (default: SQLite in the data dir).")
    parser.add_argument("--reset-database", action="store_true", help="Drop every table at --database-url first.")
    parser.add_argument("--no-predict", action="store_true", help="Skip training and deploying the tiny model.")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",") if n.strip()]
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if args.database_url and args.reset_database:
        from tests.utils.databases import drop_all_tables

        drop_all_tables(args.database_url)
    offset = int(os.environ.get("AIP_BENCH_PORT_OFFSET", "3000"))
    with tempfile.TemporaryDirectory(prefix="aip-load-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "platform",
            database_url=args.database_url,
            **cluster_ports(20000 + offset),
            admin_password=ADMIN_PASSWORD,
            ray_num_cpus=4,
        )
        try:
            running = platform.start(settings).platform
            fixture = prepare(running.api_url, Path(tmp), predict=not args.no_predict)
            backend = settings.database_url.split(":", 1)[0]
            print(f"database: {backend}; {len(fixture.tokens)} API tokens, {len(fixture.logins)} logins; mix {MIX}")
            for clients in levels:
                base = asyncio.run(run_level(fixture, clients, args.baseline_seconds, baseline=True))
                mixed = asyncio.run(run_level(fixture, clients, args.seconds, baseline=False))
                report(clients, base, mixed)
        finally:
            platform.stop(settings)


def prepare(api_url: str, tmp: Path, *, predict: bool) -> Fixture:
    """A user, API tokens, a dataset version, a finished training job with metrics and (unless told not to)
    a RUNNING deployment of its model."""
    admin = Client(api_url, timeout=300).login("admin", ADMIN_PASSWORD)
    admin.create_user("loader", USER_PASSWORD, ["developer"])
    user = Client(api_url, timeout=300).login("loader", USER_PASSWORD)
    tokens = [owner.create_api_token(f"load-{i}", SCOPES)["token"] for i, owner in enumerate([user, admin] * 2)]
    dataset = user.create_dataset("load-bench")
    path = tmp / "train.csv"
    frame(400, seed=0).to_csv(path, index=False)
    version = user.upload_csv(dataset["id"], path)
    job = user.create_job(dataset_version_id=version["id"], target_column="y", epochs=3, batch_size=32, num_workers=1)
    done = user.wait_job(job["id"], timeout_s=600)
    if done["status"] != "SUCCEEDED":
        raise RuntimeError(f"The bench's training job ended {done['status']}: {done['message']}")
    deployment_id = None
    if predict:
        deployment = user.wait_deployment(user.deploy(done["model_version_id"])["id"], timeout_s=600)
        if deployment["status"] != "RUNNING":
            raise RuntimeError(f"The bench's deployment is {deployment['status']}: {deployment['message']}")
        deployment_id = deployment["id"]
    return Fixture(
        api_url=api_url,
        dataset_id=dataset["id"],
        version_id=version["id"],
        job_id=job["id"],
        deployment_id=deployment_id,
        tokens=tokens,
        logins=[("loader", USER_PASSWORD), ("admin", ADMIN_PASSWORD)],
    )


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    data["y"] = (data["x0"] + data["x1"] > 0).astype(int)
    return data


async def run_level(fixture: Fixture, clients: int, seconds: float, *, baseline: bool) -> Results:
    results = Results()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"{fixture.api_url}/api/v1", timeout=60, limits=limits) as http:
        headers = [await _credential(http, fixture, n) for n in range(clients)]
        deadline = time.monotonic() + seconds
        start = time.perf_counter()
        await asyncio.gather(
            *(_client(http, fixture, headers[n], deadline, results, n, baseline) for n in range(clients))
        )
        results.elapsed_s = time.perf_counter() - start
    return results


async def _credential(http: httpx.AsyncClient, fixture: Fixture, n: int) -> dict[str, str]:
    """Even clients use an API token, odd ones a login of their own."""
    if n % 2 == 0:
        return {"Authorization": f"Bearer {fixture.tokens[(n // 2) % len(fixture.tokens)]}"}
    username, password = fixture.logins[(n // 2) % len(fixture.logins)]
    r = await http.post("/auth/login", data={"username": username, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _client(
    http: httpx.AsyncClient,
    fixture: Fixture,
    headers: dict[str, str],
    deadline: float,
    results: Results,
    n: int,
    baseline: bool,
) -> None:
    rng = random.Random(n)
    kinds = [k for k in MIX if k != "predict" or fixture.deployment_id is not None]
    weights = [MIX[k] for k in kinds]
    sequence = 0
    while time.monotonic() < deadline:
        kind = "health" if baseline else rng.choices(kinds, weights)[0]
        sequence += 1
        start = time.perf_counter()
        problem = None
        try:
            response = await _request(http, fixture, headers, kind, rng, f"{n}-{sequence}")
            if response.status_code >= 400:
                problem = f"{kind}: HTTP {response.status_code} {response.text[:300]}"
        except httpx.HTTPError as e:
            problem = f"{kind}: {type(e).__name__} {e}"
        results.latencies[kind].append(time.perf_counter() - start)
        if problem:
            results.errors[kind] += 1
            if len(results.first_errors) < 5:
                results.first_errors.append(problem)


async def _request(
    http: httpx.AsyncClient, fixture: Fixture, headers: dict[str, str], kind: str, rng: random.Random, tag: str
) -> httpx.Response:
    if kind == "health":
        return await http.get("/health")
    if kind == "read":
        path = rng.choice(
            ["/dataset", f"/dataset/{fixture.dataset_id}", f"/dataset/version/{fixture.version_id}", "/training/job"]
            + ["/model", "/deployment", f"/training/job/{fixture.job_id}"]
        )
        return await http.get(path, headers=headers)
    if kind == "metrics":
        return await http.get(f"/training/job/{fixture.job_id}/metrics", headers=headers)
    if kind == "predict":
        rows = [{f: rng.gauss(0, 1) for f in FEATURES} for _ in range(4)]
        return await http.post(f"/deployment/{fixture.deployment_id}/predict", json={"rows": rows}, headers=headers)
    # A small CSV, different each time so that it is stored as a new version rather than deduplicated.
    body = frame(50, seed=rng.randrange(1 << 30)).to_csv(index=False).encode()
    files = {"file": (f"load-{tag}.csv", body, "text/csv")}
    return await http.post(f"/dataset/{fixture.dataset_id}/version", files=files, headers=headers)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def _line(name: str, values: list[float], errors: int, elapsed_s: float) -> str:
    if not values:
        return f"  {name:<9} no requests"
    return (
        f"  {name:<9} {len(values):>6} req {len(values) / elapsed_s:>7.1f} req/s  p50 {_pct(values, 0.5):>7.1f} ms"
        f"  p99 {_pct(values, 0.99):>7.1f} ms  max {max(values) * 1000:>7.1f} ms  errors {errors}"
    )


def report(clients: int, base: Results, mixed: Results) -> None:
    every = [v for values in mixed.latencies.values() for v in values]
    print(f"{clients} clients ({mixed.elapsed_s:.0f} s mixed, {base.elapsed_s:.0f} s baseline):")
    print(_line("baseline", base.latencies["health"], base.errors["health"], base.elapsed_s))
    print(_line("all", every, sum(mixed.errors.values()), mixed.elapsed_s))
    for kind in MIX:
        print(_line(kind, mixed.latencies.get(kind, []), mixed.errors.get(kind, 0), mixed.elapsed_s))
    if every:
        print(f"  mean {statistics.fmean(every) * 1000:.1f} ms")
    for problem in base.first_errors + mixed.first_errors:
        print(f"  error: {problem}")


if __name__ == "__main__":
    main()
