"""runs: one transitions table for every row backed by a Ray job (was training jobs' job_transitions), and the
start time and kept logs of pipeline runs and quality reports, as the other runs have

Revision ID: 0009_run_transitions
Revises: 0008_step_metrics
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_run_transitions"
down_revision = "0008_step_metrics"
branch_labels = None
depends_on = None

TRAINING_JOB = "training_job"  # app.runs.kinds.TRAINING_JOB.name, written out: a migration never changes


def upgrade() -> None:
    op.create_table(
        "run_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("run_transitions", schema=None) as batch_op:
        batch_op.create_index("ix_run_transitions_run", ["kind", "run_id", "id"], unique=False)
    # Ids kept in order: a job's history reads in id order.
    op.execute(
        "INSERT INTO run_transitions (id, kind, run_id, from_status, to_status, message, created_at) "
        f"SELECT id, '{TRAINING_JOB}', job_id, from_status, to_status, message, created_at FROM job_transitions"
    )
    if op.get_bind().dialect.name == "postgresql":  # copied ids leave the sequence behind them
        op.execute(
            "SELECT setval(pg_get_serial_sequence('run_transitions', 'id'), "
            "COALESCE((SELECT MAX(id) FROM run_transitions), 0) + 1, false)"
        )
    op.drop_table("job_transitions")  # with its index (MariaDB refuses to drop the index alone: a foreign key uses it)
    for table in ("pipeline_runs", "quality_reports"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("logs_key", sa.String(length=512), nullable=True))
            batch_op.add_column(sa.Column("started_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    for table in ("pipeline_runs", "quality_reports"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("started_at")
            batch_op.drop_column("logs_key")
    op.create_table(
        "job_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["training_jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("job_transitions", schema=None) as batch_op:
        batch_op.create_index("ix_job_transitions_job", ["job_id", "id"], unique=False)
    op.execute(
        "INSERT INTO job_transitions (id, job_id, from_status, to_status, message, created_at) "
        "SELECT id, run_id, from_status, to_status, message, created_at FROM run_transitions "
        f"WHERE kind = '{TRAINING_JOB}'"
    )
    op.drop_table("run_transitions")
