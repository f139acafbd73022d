"""The database side of a tuning run's Tune callbacks: one row per trial (config, state, metric history, best value
and checkpoint), kept up to date by `TrialRecorder` as results arrive, and PBT's exploits noted on the exploiting
trial's row (`RecordedPBT`)."""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from sqlalchemy import select

from app.contracts.search_space import SearchConfig
from app.contracts.status import JobStatus, TrialStatus
from app.contracts.train_config import better
from app.db.models import TuningTrial, utcnow
from app.db.session import session_scope


def _trial_row(session: Any, run_id: int, trial: Any) -> TuningTrial:
    row = session.scalar(
        select(TuningTrial).where(TuningTrial.run_id == run_id, TuningTrial.trial_key == trial.trial_id)
    )
    if row is None:
        row = TuningTrial(run_id=run_id, trial_key=trial.trial_id, config=dict(trial.config), history=[])
        session.add(row)
        session.flush()
    return row


class RecordedPBT(PopulationBasedTraining):
    """Population Based Training that notes each exploit on the exploiting trial's row: the trial it copied, at which
    epoch, and how its hyperparameters changed; the row's config becomes the new one."""

    def __init__(self, run_id: int, database_url: str, epochs: int, **options: Any) -> None:
        super().__init__(**options)
        self.run_id = run_id
        self.database_url = database_url
        self.epochs = epochs

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get(self._time_attr, 0) >= self.epochs:
            return TrialScheduler.CONTINUE  # its last epoch: a perturbation would restart it only to end it
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.PAUSE or trial.status == Trial.PAUSED:  # Tune marks it RUNNING when it resumes
            with session_scope(self.database_url) as session:
                _trial_row(session, self.run_id, trial).status = TrialStatus.PAUSED
        return decision

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        # Ray's hook for the exploit step (a private method: Ray pinned at 2.60); the recording wraps it unchanged.
        before = dict(trial.config)
        epoch = int(self._trial_state[trial_to_clone].last_train_time)
        super()._exploit(tune_controller, trial, trial_to_clone)
        changes = ", ".join(
            f"{k} {_short(before.get(k))} -> {_short(v)}" for k, v in sorted(trial.config.items()) if before.get(k) != v
        )
        with session_scope(self.database_url) as session:
            row, donor = _trial_row(session, self.run_id, trial), _trial_row(session, self.run_id, trial_to_clone)
            note = f"Exploited trial {donor.id} at epoch {epoch}" + (f": {changes}." if changes else ".")
            row.message = f"{row.message} {note}".strip()[-2000:]
            row.config = dict(trial.config)
            row.iterations = epoch  # it goes on from the donor's epoch
            row.updated_at = utcnow()


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


class TrialRecorder(tune.Callback):
    """Keeps one row per trial up to date: config, state, metric history, best value and checkpoint."""

    def __init__(self, run_id: int, database_url: str, search: SearchConfig) -> None:
        self.run_id = run_id
        self.database_url = database_url
        self.search = search

    def _row(self, session: Any, trial: Any) -> TuningTrial:
        return _trial_row(session, self.run_id, trial)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        with session_scope(self.database_url) as session:
            self._row(session, trial).status = JobStatus.RUNNING

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        point = {k: v for k, v in result.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        with session_scope(self.database_url) as session:
            row = self._row(session, trial)
            row.history = [*row.history, point]  # a new list: the JSON column sees the change
            row.iterations = int(result.get("training_iteration", len(row.history)))
            value = result.get(self.search.metric or "")
            if (
                result.get(CHECKPOINT_PATH_KEY)
                and value is not None
                and better(value, row.best_value, self.search.mode or "min")
            ):
                row.best_value = float(value)
                row.best_checkpoint = result[CHECKPOINT_PATH_KEY]
            row.updated_at = utcnow()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        with session_scope(self.database_url) as session:
            row = self._row(session, trial)
            last = row.history[-1] if row.history else {}
            stopped_early = self.search.scheduler == "asha" and row.iterations < (self.search.max_t or 0)
            if stopped_early and not last.get("early_stopped"):
                row.status, row.message = TrialStatus.EARLY_STOPPED, "Stopped early by the ASHA scheduler."
            else:
                row.status = JobStatus.SUCCEEDED

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        with session_scope(self.database_url) as session:
            row = self._row(session, trial)
            row.status, row.message = (
                JobStatus.FAILED,
                str(getattr(trial, "error_msg", "") or "The trial failed.")[-2000:],
            )
