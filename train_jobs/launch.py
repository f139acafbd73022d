"""Entrypoint of a training job's Ray job: `python -m train_jobs.launch DRIVER_MODULE JOB_ID WORKER_PLAN_JSON`.

Connects to Ray, starts the job's Train workers from the scheduler's plan (`train_jobs.prestart`), and only then
imports the template's driver module and runs it. The driver modules still run alone
(`python -m train_jobs.train_tabular JOB_ID`, as a KubeRay RayJob does); they then start their workers when Train
asks for them.
"""

from __future__ import annotations

import importlib
import sys

import ray

from train_jobs import prestart


def main(argv: list[str]) -> int:
    module, job_id, plan = argv
    ray.init()  # inside a Ray job this joins the job's cluster
    prestart.start(prestart.WorkerPlan.from_json(plan))
    return importlib.import_module(module).main([job_id])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
