"""Scale benchmark: the control plane's reads over a large database, and one scheduler pass over a long queue.

    .venv/bin/python -m bench.scale_bench [--backends sqlite,postgresql] [--jobs 100000] [--metric-points 1000000]

Per backend it seeds, with bulk inserts, `--jobs` training jobs (100 owners, a mix of states, 1000 of them
QUEUED) and `--metric-points` epoch metric points (4 metrics a step, spread over the first jobs), then times, as
the API's routes do them (a session per request, rows turned into the response models):
- list: the first page of 50 jobs (as an admin, as an owner whose rows are filtered by ownership and shares, and
  filtered by status), with its total; and a page deep in the list;
- get: one job with its detail (downsampled metric history and transitions);
- metric query: one job's whole metric history;
- scheduler: reading the 1000 QUEUED jobs and planning them (`scheduler.plan`) on 100 simulated nodes.
p50 / p99 over `--repeat` requests each (goal: p99 <= 50 ms; a scheduler pass <= 1 s).

PostgreSQL: `--postgresql-url` names a scratch database whose tables are DROPPED first (default: database
`bench_scale` on this machine's server; create it with `createdb -h 127.0.0.1 -U postgres bench_scale`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, insert, select
from sqlalchemy.pool import NullPool

from app.api.routes.training import DETAIL_MAX_POINTS
from app.api.schemas import JobPublic, JobTransitionPublic, Page
from app.contracts.status import JobStatus
from app.contracts.train_config import parse
from app.core.permissions import ALL
from app.db.models import Dataset, DatasetVersion, JobMetric, Role, RunTransition, Share, TrainingJob, User, user_roles
from app.db.paging import PageRequest
from app.db.session import get_engine, session_scope, upgrade_schema
from app.services.models import registry
from app.services.training import job_metrics, jobs, scheduler

OWNERS = 100
QUEUED = 1000
NODES = 100
STEPS_PER_JOB = 250
KEYS = ("loss", "val_loss", "accuracy", "val_accuracy")
BATCH = 20_000


def reset(url: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            metadata = MetaData()
            metadata.reflect(conn)
            metadata.drop_all(conn)
    finally:
        engine.dispose()
    upgrade_schema(url)


def seed(url: str, num_jobs: int, metric_points: int) -> dict[str, Any]:
    """Bulk-inserts the rows; returns ids the timings use."""
    rng = random.Random(7)
    start = dt.datetime(2025, 1, 1)
    engine = get_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(User), [{"username": f"user{i}", "password_hash": "x"} for i in range(OWNERS)])
        user_ids = list(conn.scalars(select(User.id).order_by(User.id)))
        conn.execute(insert(Role), [{"name": "bench-admin", "description": "", "builtin": False, "permissions": [ALL]}])
        role_id = conn.scalar(select(Role.id).where(Role.name == "bench-admin"))
        conn.execute(insert(user_roles), [{"user_id": user_ids[0], "role_id": role_id}])
        conn.execute(insert(Dataset), [{"name": "data", "owner_id": u, "created_at": start} for u in user_ids])
        dataset_ids = list(conn.scalars(select(Dataset.id).order_by(Dataset.id)))
        conn.execute(
            insert(DatasetVersion),
            [
                {
                    "dataset_id": d,
                    "version": 1,
                    "file_name": "d.csv",
                    "format": "csv",
                    "storage_key": f"datasets/{d}/v1/d.csv",
                    "size_bytes": 1,
                    "sha256": "0" * 64,
                    "num_rows": 1,
                    "columns": [],
                    "created_at": start,
                }
                for d in dataset_ids
            ],
        )
        version_ids = list(conn.scalars(select(DatasetVersion.id).order_by(DatasetVersion.id)))
        # One owner sees another's rows through shares, so the ownership filter has work to do.
        conn.execute(
            insert(Share),
            [
                {"resource_type": "training_jobs", "resource_id": i, "user_id": user_ids[1], "created_by": user_ids[2]}
                for i in range(1, 200)
            ],
        )
    ended = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED]
    queued_every = max(num_jobs // QUEUED, 1)
    for first in range(0, num_jobs, BATCH):
        rows = []
        for i in range(first, min(first + BATCH, num_jobs)):
            owner = i % OWNERS
            queued = i % queued_every == 0 and i // queued_every < QUEUED
            config = {"target_column": "y", "num_workers": 1 + i % 4, "cpus_per_worker": 1 + i % 2}
            rows.append(
                {
                    "name": f"job-{i}",
                    "owner_id": user_ids[owner],
                    "dataset_version_id": version_ids[owner],
                    "template": "tabular_mlp",
                    "config": config,
                    "status": JobStatus.QUEUED if queued else ended[i % 3],
                    "message": "",
                    "priority": i % 3,
                    "created_at": start + dt.timedelta(seconds=i),
                    "queued_at": start + dt.timedelta(seconds=i) if queued else None,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(TrainingJob), rows)
    job_ids = []
    with engine.begin() as conn:
        job_ids = list(conn.scalars(select(TrainingJob.id).order_by(TrainingJob.id)))
        transitions = [
            {"kind": "training_job", "run_id": j, "from_status": None, "to_status": "QUEUED", "message": ""}
            for j in job_ids[: min(len(job_ids), 50_000)]
        ]
        for first in range(0, len(transitions), BATCH):
            conn.execute(
                insert(RunTransition), [{**t, "created_at": start} for t in transitions[first : first + BATCH]]
            )
    with_metrics = job_ids[: max(metric_points // (STEPS_PER_JOB * len(KEYS)), 1)]
    batch: list[dict[str, Any]] = []
    for job_id in with_metrics:
        for step in range(1, STEPS_PER_JOB + 1):
            when = start + dt.timedelta(minutes=step)
            batch += [
                {"job_id": job_id, "step": step, "key": k, "value": rng.random(), "created_at": when} for k in KEYS
            ]
        if len(batch) >= BATCH:
            with engine.begin() as conn:
                conn.execute(insert(JobMetric), batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(JobMetric), batch)
    with engine.begin() as conn:  # statistics, as autovacuum (or an operator after a bulk load) would gather
        conn.exec_driver_sql("ANALYZE")
    return {"job_ids": job_ids, "with_metrics": with_metrics, "admin_id": user_ids[0], "owner_id": user_ids[1]}


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm: caches, prepared plans
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]


def measure(url: str, ids: dict[str, Any], repeat: int) -> dict[str, tuple[float, float]]:
    rng = random.Random(11)

    def list_page(as_admin: bool, **kwargs: Any) -> None:
        with session_scope(url) as s:
            user = s.get_one(User, ids["admin_id"] if as_admin else ids["owner_id"])
            found = jobs.list_jobs(s, user=user, **kwargs)
            versions = registry.version_ids_for_jobs(s, [j.id for j in found.items])
            items = [
                JobPublic.model_validate(j).model_copy(update={"model_version_id": versions.get(j.id)})
                for j in found.items
            ]
            Page[JobPublic](items=items, total=found.total, limit=found.limit, offset=found.offset).model_dump_json()

    def get_one() -> None:
        job_id = rng.choice(ids["with_metrics"])
        with session_scope(url) as s:
            job = s.get_one(TrainingJob, job_id)
            public = JobPublic.model_validate(job)
            public.metrics = job_metrics.metric_history(s, job.id, max_points=DETAIL_MAX_POINTS)
            public.transitions = [JobTransitionPublic.model_validate(t) for t in jobs.transitions(s, job.id)]
            public.model_dump_json()

    def metric_query() -> None:
        with session_scope(url) as s:
            job_metrics.metric_history(s, rng.choice(ids["with_metrics"]))

    results = {
        "list: first page of 50, admin": timed(lambda: list_page(True, request=PageRequest(limit=50)), repeat),
        "list: first page of 50, owner (ownership + shares)": timed(lambda: list_page(False), repeat),
        "list: status=QUEUED, admin": timed(lambda: list_page(True, status=JobStatus.QUEUED), repeat),
        "list: offset 50 000, admin": timed(lambda: list_page(True, request=PageRequest(offset=50_000)), repeat),
        "get: one job with detail": timed(get_one, repeat),
        "metric query: one job's history (1000 points)": timed(metric_query, repeat),
    }
    results["scheduler: read 1000 QUEUED + plan on 100 nodes"] = timed(
        lambda: scheduler_pass(url), max(repeat // 20, 5)
    )
    return results


def scheduler_pass(url: str) -> None:
    """What one pass of `scheduler.schedule` does before it talks to Ray: read the queue, build and plan it."""
    with session_scope(url) as s:
        queue = []
        for job in s.scalars(select(TrainingJob).where(TrainingJob.status == JobStatus.QUEUED)):
            work = scheduler.Work(scheduler.JOB, job.id)
            queue.append(
                (
                    (-job.priority, job.queued_at or job.created_at, 0, job.id),
                    scheduler.Candidate(work, job.owner_id, parse(job.config)),
                )
            )
        queue.sort(key=lambda entry: entry[0])
        nodes = [{"CPU": 16.0, "GPU": 0.0, "memory": 64 * 2**30} for _ in range(NODES)]
        free = {"CPU": 16.0 * NODES, "GPU": 0.0, "memory": 64.0 * 2**30 * NODES}
        decided = scheduler.plan([c for _, c in queue], free=free, nodes=nodes, usage={}, limits={})
        assert len(decided.start) + len(decided.waiting) + len(decided.refused) == len(queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--metric-points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--postgresql-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_scale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aip-scale-") as tmp:
        for backend in args.backends.split(","):
            url = f"sqlite:///{Path(tmp) / 'scale.db'}" if backend == "sqlite" else args.postgresql_url
            reset(url)
            began = time.perf_counter()
            ids = seed(url, args.jobs, args.metric_points)
            print(
                f"\n{backend}: seeded {len(ids['job_ids'])} jobs, {args.metric_points} metric points "
                f"in {time.perf_counter() - began:.0f} s"
            )
            print(f"| {backend}: measure | p50 ms | p99 ms |\n| --- | --- | --- |")
            for name, (p50, p99) in measure(url, ids, args.repeat).items():
                print(f"| {name} | {p50:.1f} | {p99:.1f} |")


if __name__ == "__main__":
    main()
