"""The one driver of the platform's Ray job entrypoints (training, tuning, quality checks, preprocessing).

Every entrypoint `python -m train_jobs.X RUN_ID` runs `Entrypoint.main`: it loads the run's row, checks that the
run may still go (not stopped before its driver ran: the resources it was given are still its own), marks it
RUNNING, reads what the work needs (config parsed, data located) in that same transaction, runs the work, and
records how it ended: SUCCEEDED together with the work's result (a model version, a report, ...) in one
transaction, or FAILED with the error's type and text. A run stopped meanwhile keeps the user's decision.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import ray
from sqlalchemy.orm import Session

from app.contracts.status import JobStatus
from app.core.config import Settings, get_settings
from app.db.session import session_scope
from app.runs import lifecycle
from app.runs.kinds import RunKind

T = TypeVar("T")
# Records the work's result on the row (in the transaction that records its success).
Record = Callable[[Session, Any], None]


@dataclass(frozen=True)
class Entrypoint(Generic[T]):
    kind: RunKind
    # Reads what the work needs from the row, in the transaction that marks it RUNNING (a bad config fails the run).
    load: Callable[[Settings, Session, Any], T]
    # The work itself, outside any transaction; returns how to record its result (None: it recorded its end).
    work: Callable[[Settings, int, T], Record | None]
    # A training job is RUNNING once its workers train (train_jobs.runtime), not when its driver starts.
    workers_mark_running: bool = False

    def main(self, argv: list[str]) -> int:
        """Runs the run whose id is argv[0]; a failure is recorded on its row, then raised (the Ray job fails)."""
        run_id = int(argv[0])
        settings = get_settings()
        try:
            ray.init(ignore_reinit_error=True)  # joins the job's cluster (the launcher may have joined it already)
            with session_scope(settings.database_url) as session:
                row = self._claim(session, run_id)
                if row is None:
                    return 0
                loaded = self.load(settings, session, row)
            record = self.work(settings, run_id, loaded)
            if record is not None:
                with session_scope(settings.database_url) as session:
                    row = session.get_one(self.kind.model, run_id)
                    if row.status == JobStatus.RUNNING:  # else stopped meanwhile: nothing is recorded
                        record(session, row)
                        lifecycle.succeed(session, self.kind, row)
        except Exception as e:
            with session_scope(settings.database_url) as session:
                lifecycle.fail(session, self.kind, run_id, f"{type(e).__name__}: {e}")
            raise
        return 0

    def _claim(self, session: Session, run_id: int) -> Any | None:
        """The row, marked RUNNING (or, for a training job, still holding its resources); None: not to run."""
        kind = self.kind
        if self.workers_mark_running:
            row = session.get_one(kind.model, run_id)
            claimed = row if row.status in kind.open else None
        else:
            claimed = lifecycle.mark_running(session, kind, run_id)
            row = claimed or session.get_one(kind.model, run_id)
        if claimed is None:
            print(f"{kind.noun.capitalize()} {run_id} is {row.status}; not running it.", flush=True)
        return claimed


def run_main(entrypoint: Entrypoint[Any]) -> None:
    """`if __name__ == "__main__"` of an entrypoint module."""
    sys.exit(entrypoint.main(sys.argv[1:]))
