"""Migration 0009 on every selected backend: training jobs' transitions move to run_transitions (kind
training_job), in order, and new transitions get ids after them."""

from __future__ import annotations

import datetime as dt

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from app.contracts.status import JobStatus
from app.db.models import TrainingJob
from app.db.session import session_scope, upgrade_schema
from app.runs import lifecycle
from app.runs.kinds import TRAINING_JOB
from tests.app.db.test_schema import MIGRATIONS


def migrate(url: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, revision)


def test_job_transitions_are_copied_then_dropped(empty_db_url: str) -> None:
    migrate(empty_db_url, "0008_step_metrics")
    when = dt.datetime(2024, 5, 1, 12, 0, 0)
    engine = create_engine(empty_db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, username, password_hash, is_active, created_at, failed_logins) "
                    "VALUES (1, 'alice', 'x', true, :t, 0)"
                ),
                {"t": when},
            )
            conn.execute(
                text("INSERT INTO datasets (id, name, description, owner_id, created_at) VALUES (1, 'd', '', 1, :t)"),
                {"t": when},
            )
            conn.execute(
                text(
                    "INSERT INTO dataset_versions (id, dataset_id, version, file_name, format, storage_key, size_bytes,"
                    " sha256, num_rows, columns, created_at) VALUES (1, 1, 1, 'd.csv', 'csv', 'k', 1, :h, 1, '[]', :t)"
                ),
                {"h": "0" * 64, "t": when},
            )
            conn.execute(
                text(
                    "INSERT INTO training_jobs (id, name, owner_id, dataset_version_id, template, config, status,"
                    " message, created_at, priority, attempts) VALUES (7, 'j', 1, 1, 'tabular_mlp', '{}', 'QUEUED',"
                    " '', :t, 0, 0)"
                ),
                {"t": when},
            )
            for row_id, before, after in ((3, None, "CREATED"), (5, "CREATED", "QUEUED")):
                conn.execute(
                    text(
                        "INSERT INTO job_transitions (id, job_id, from_status, to_status, message, created_at)"
                        " VALUES (:id, 7, :before, :after, :m, :t)"
                    ),
                    {"id": row_id, "before": before, "after": after, "m": f"to {after}", "t": when},
                )
    finally:
        engine.dispose()

    upgrade_schema(empty_db_url)
    engine = create_engine(empty_db_url, poolclass=NullPool)
    try:
        assert "job_transitions" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    with session_scope(empty_db_url) as s:
        lifecycle.transition(s, TRAINING_JOB, s.get_one(TrainingJob, 7), JobStatus.STOPPED, "Stopped.")
    with session_scope(empty_db_url) as s:
        moves = [(t.id, t.from_status, t.to_status, t.message) for t in lifecycle.transitions(s, TRAINING_JOB, 7)]
    assert moves[:2] == [(3, None, "CREATED", "to CREATED"), (5, "CREATED", "QUEUED", "to QUEUED")]
    assert moves[2][0] > 5 and moves[2][1:] == ("QUEUED", "STOPPED", "Stopped.")
