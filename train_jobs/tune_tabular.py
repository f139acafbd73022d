"""Ray job entrypoint of a tuning run: Ray Tune over the tabular template, each trial a TorchTrainer.

Run as `python -m train_jobs.tune_tabular RUN_ID`. In Ray 2.60 (Train V2) a TorchTrainer cannot be handed to the
Tuner: each trial function builds one, and `TuneReportCallback` forwards its reports (and checkpoint paths) to
Tune, where ASHA decides which trials stop early. A Tune callback on this driver writes each trial's config, state
and metric history to the database as results arrive; the best trial's best checkpoint becomes a model version.

PBT needs more: Tune must hold each trial's checkpoints to hand them to other trials, and `TuneReportCallback` only
passes a path. So a PBT trial reports to Tune itself, every epoch with its checkpoint (`CheckpointForwarder`). When
PBT pauses a trial or has it exploit another, Tune ends the trial and later starts it again with its new config;
the trial function then starts a new Train run from the checkpoint Tune hands back (`tune.get_checkpoint()`: its
own, or the donor's), which the epoch loop resumes with the trial's own hyperparameters.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

import ray
from ray import tune
from ray._raylet import PlacementGroupID
from ray.train import Checkpoint, CheckpointConfig, RunConfig, ScalingConfig, UserCallback
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY, TuneReportCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import BasicVariantGenerator
from ray.util.placement_group import PlacementGroup
from ray.util.queue import Empty, Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.contracts.search_space import SearchConfig
from app.contracts.train_config import TrainConfig, parse
from app.core.config import Settings, get_settings
from app.db.models import DatasetVersion, TuningRun, TuningTrial
from app.db.session import session_scope
from app.runs.kinds import TUNING_RUN
from app.services.data import datasets
from app.services.models import registry
from app.storage import checkpoint_storage, open_store
from train_jobs import runtime
from train_jobs.artifacts import load_artifact, save_artifact
from train_jobs.driver import Entrypoint, Record, run_main
from train_jobs.tabular_loop import train_loop_per_worker
from train_jobs.templates.tabular_mlp import TabularSpec, build_model
from train_jobs.train_tabular import prepare_data
from train_jobs.trainer import PlatformTorchTrainer
from train_jobs.tune_recording import RecordedPBT, TrialRecorder
from train_jobs.tune_space import pbt_mutations, ray_space


def trial_fn(
    params: dict[str, Any], *, run_id: int, base: dict[str, Any], spec: dict[str, Any], arrays: Any, pbt: bool
) -> None:
    """One trial: the base config with the sampled parameters, trained by its own TorchTrainer."""
    config = parse({**base, **params})
    storage_path, filesystem = checkpoint_storage(get_settings())
    name = f"tune-{run_id}-{tune.get_context().get_trial_id()}"
    loop_config = {
        "config": config.model_dump(),
        "spec": {**spec, "hidden_units": config.hidden_units},
        "arrays": ray.put(arrays),
        "job_id": None,
    }
    reports: Queue | None = None
    if pbt:
        start_from = tune.get_checkpoint()
        if start_from is not None and runtime.load_checkpoint(start_from)["progress"]["epoch"] >= config.epochs:
            return  # the checkpoint handed over already holds every epoch: nothing left to train
        reports = Queue(maxsize=1, actor_options={"num_cpus": 0})
        loop_config["start_from"] = start_from
        name += f"-{uuid.uuid4().hex[:8]}"  # a new Train run each start: it must not resume an earlier one's state
    trainer = PlatformTorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=config.num_workers,
            use_gpu=config.gpus_per_worker > 0,
            resources_per_worker=config.worker_resources(),
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            storage_filesystem=filesystem,
            # All kept: the trial's best checkpoint is chosen from the recorded history, and with ties (e.g. equal
            # accuracies) Ray's own top-k could have deleted exactly that one.
            checkpoint_config=CheckpointConfig(num_to_keep=None),
            callbacks=[CheckpointForwarder(reports) if reports is not None else TuneReportCallback()],
        ),
        run_owns_driver=False,
    )
    running = threading.Event()
    running.set()
    _end_with_the_trial(running)
    if reports is not None:
        _fit_forwarding(trainer, reports)
    else:
        trainer.fit()
    running.clear()


class CheckpointForwarder(UserCallback):
    """Hands each report of a Train run, with its checkpoint, to the trial function (PBT; runs in the Train
    controller). Unlike `TuneReportCallback` it keeps the checkpoint a checkpoint, so Tune can pass it on."""

    def __init__(self, reports: Queue) -> None:
        self.reports = reports

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Checkpoint | None) -> None:
        self.reports.put({"metrics": metrics[0], "checkpoint": checkpoint})


def _fit_forwarding(trainer: PlatformTorchTrainer, reports: Queue) -> None:
    """Runs the Train run while a thread reports each of its results to Tune, with its checkpoint."""
    fitted = threading.Event()

    def forward() -> None:
        while True:
            try:
                item = reports.get(timeout=1.0)
            except Empty:
                if fitted.is_set():  # the run's last report was put before `fit` returned: all are forwarded
                    return
                continue
            checkpoint = item["checkpoint"]
            metrics = {**item["metrics"], **({CHECKPOINT_PATH_KEY: checkpoint.path} if checkpoint else {})}
            tune.report(metrics, checkpoint=checkpoint)

    forwarder = threading.Thread(target=forward, name="report-to-tune", daemon=True)
    forwarder.start()
    try:
        trainer.fit()
    finally:
        fitted.set()
        forwarder.join()


def _end_with_the_trial(running: threading.Event) -> None:
    """Ends this trial's process when Tune stops the trial while its Train run still goes (ASHA cut it).

    Tune stops a function trial by setting its session's stop event, but `trainer.fit()` does not return for that,
    so the trial actor, its Train controller and their placement groups would linger and starve later trials.
    Exiting the process takes the controller and workers with it (they fate-share with their owner) and Ray
    Train's placement-group cleaner frees their resources.
    """
    from ray.train._internal.session import get_session

    session = get_session()
    if session is None:
        return

    def watch() -> None:
        session.stop_event.wait()
        if running.is_set():
            os._exit(0)

    threading.Thread(target=watch, name="end-with-trial", daemon=True).start()


class PlacementGroupCollector(tune.Callback):
    """Removes the placement groups of trials that Tune killed.

    When ASHA stops a trial, Tune kills its actor, and with it the trial's Train controller and workers; the
    controller's placement group outlives them (it belongs to this job) and would hold its CPUs until the whole run
    ends, starving later trials. Each live Train controller holds at most one worker group, so when this job has
    more groups shaped like a trial's worker group (never one of Tune's own) than live controllers, the surplus is
    taken from the groups that have had no live actor for the longest, and for at least `min_idle_s`.
    """

    def __init__(self, worker_resources: dict[str, float], interval_s: float = 5.0, min_idle_s: float = 20.0) -> None:
        self.worker_resources = worker_resources
        self.interval_s = interval_s
        self.min_idle_s = min_idle_s
        self._next = 0.0
        self._idle_since: dict[str, float] = {}

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval_s
        from ray.util import state

        job_id = ray.get_runtime_context().get_job_id()
        groups = {
            g.placement_group_id
            for g in state.list_placement_groups(filters=[("state", "=", "CREATED")], limit=10_000, detail=True)
            if g.creator_job_id == job_id and not g.is_detached and self._is_worker_group(g.bundles)
        }
        actors = state.list_actors(filters=[("state", "!=", "DEAD")], limit=10_000, detail=True)
        controllers = sum(1 for a in actors if a.class_name == "TrainController" and a.job_id == job_id)
        idle = groups - {a.placement_group_id for a in actors}
        self._idle_since = {g: self._idle_since.get(g, now) for g in idle}
        stale = sorted((since, g) for g, since in self._idle_since.items() if now - since >= self.min_idle_s)
        for _, group_id in stale[: max(0, len(groups) - controllers)]:
            ray.util.remove_placement_group(PlacementGroup(PlacementGroupID.from_hex(group_id)))
            del self._idle_since[group_id]

    def _is_worker_group(self, bundles: list[dict] | None) -> bool:
        def same(resources: dict[str, float]) -> bool:
            wanted = self.worker_resources
            return resources.keys() == wanted.keys() and all(abs(resources[k] - wanted[k]) < 1e-6 for k in wanted)

        return bool(bundles) and all(
            same({k: float(v) for k, v in (b.get("unit_resources") or b.get("unitResources") or {}).items()})
            for b in bundles or []
        )


def build_tuner(run_id: int, config: TrainConfig, search: SearchConfig, spec: TabularSpec, arrays: Any) -> tune.Tuner:
    settings = get_settings()
    base = {**config.model_dump(), "epochs": search.max_t, "metric": search.metric, "mode": search.mode}
    pbt = search.scheduler == "pbt"
    if pbt:  # a checkpoint every epoch: PBT pauses and exploits at any epoch, and a trial restarts from Tune's latest
        base["checkpoint_interval"] = 1
    trainable = tune.with_parameters(trial_fn, run_id=run_id, base=base, spec=spec.to_dict(), arrays=arrays, pbt=pbt)
    # The trial function only drives its TorchTrainer; the trainer's workers hold the trial's resources (Tune
    # refuses a bundle of zero, so the driver takes a sliver of a CPU).
    trainable = tune.with_resources(trainable, {"CPU": 0.01})
    if search.scheduler == "asha":
        scheduler: Any = ASHAScheduler(
            time_attr="training_iteration",
            max_t=search.max_t,
            grace_period=search.grace_period,
            reduction_factor=search.reduction_factor,
        )
    elif pbt:
        scheduler = RecordedPBT(
            run_id,
            settings.database_url,
            search.max_t or config.epochs,
            time_attr="training_iteration",
            perturbation_interval=search.perturbation_interval,
            hyperparam_mutations=pbt_mutations(search),
            quantile_fraction=search.quantile_fraction,
            synch=search.synchronous,
            custom_explore_fn=search.clamp,  # scaled values stay within the space, as its bounds were checked
        )
    else:
        scheduler = FIFOScheduler()
    if search.search_alg == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg: Any = OptunaSearch(seed=search.seed if search.seed is not None else run_id)
    else:
        search_alg = BasicVariantGenerator(random_state=search.seed)
    storage_path, filesystem = checkpoint_storage(settings)
    return tune.Tuner(
        trainable,
        param_space=ray_space(search),
        tune_config=tune.TuneConfig(
            metric=search.metric,
            mode=search.mode,
            scheduler=scheduler,
            search_alg=search_alg,
            num_samples=search.num_samples,
            max_concurrent_trials=search.max_concurrent_trials,
        ),
        run_config=tune.RunConfig(
            name=f"tune-{run_id}",
            storage_path=storage_path,
            storage_filesystem=filesystem,
            callbacks=[
                TrialRecorder(run_id, settings.database_url, search),
                PlacementGroupCollector(config.worker_resources()),
            ],
            verbose=1,
        ),
    )


Loaded = tuple[TrainConfig, SearchConfig, Any]


def load(settings: Settings, session: Session, row: TuningRun) -> Loaded:
    """The run's base config, its search, and its data (a frame)."""
    frame = datasets.load_frame(open_store(settings), session.get_one(DatasetVersion, row.dataset_version_id))
    return parse(row.config), SearchConfig.model_validate(row.search), frame


def work(settings: Settings, run_id: int, loaded: Loaded) -> Record:
    config, search, frame = loaded
    store = open_store(settings)
    spec, arrays = prepare_data(frame, config)
    build_tuner(run_id, config, search, spec, arrays).fit()

    with session_scope(settings.database_url) as session:
        scored = session.scalars(
            select(TuningTrial)
            .where(
                TuningTrial.run_id == run_id,
                TuningTrial.best_checkpoint.is_not(None),
                TuningTrial.best_value.is_not(None),
            )
            .order_by(TuningTrial.id)  # equal best values go to the earliest trial, as the run's trial list shows
        ).all()
        if not scored:
            raise RuntimeError("No trial reported a checkpoint.")
        sign = 1 if search.mode == "max" else -1
        best = max(scored, key=lambda t: sign * (t.best_value or 0.0))
        best_id, best_config, best_checkpoint = best.id, dict(best.config), best.best_checkpoint or ""

    _, filesystem = checkpoint_storage(settings)
    state = runtime.load_checkpoint(Checkpoint(best_checkpoint, filesystem=filesystem))
    trial_config = parse({**config.model_dump(), **best_config})
    trial_spec = TabularSpec.from_dict({**spec.to_dict(), "hidden_units": trial_config.hidden_units})
    model = build_model(trial_spec)
    model.load_state_dict(state["model"])
    artifact_prefix = f"models/tune-{run_id}"
    save_artifact(store, artifact_prefix, model, trial_spec)
    load_artifact(store, artifact_prefix)

    def record(session: Session, row: TuningRun) -> None:
        """The best trial's model version, on the run."""
        trial = session.get_one(TuningTrial, best_id)
        version = registry.register_version(
            session,
            job=row,
            artifact_key=artifact_prefix,
            signature={
                "inputs": trial_spec.feature_columns,
                "target": trial_spec.target_column,
                "classes": trial_spec.classes,
                "task": trial_spec.task,
            },
            metrics={search.metric or "": float(trial.best_value or 0.0)},
            lineage={
                "config": trial_config.model_dump(),
                "trial": {"id": trial.id, "key": trial.trial_key, "params": best_config},
                "search": row.search,
                "checkpoint": best_checkpoint,
                "final_metrics": trial.history[-1] if trial.history else {},
            },
        )
        row.best_trial_id = best_id
        row.model_version_id = version.id

    return record


ENTRYPOINT = Entrypoint(TUNING_RUN, load, work)

if __name__ == "__main__":
    run_main(ENTRYPOINT)
