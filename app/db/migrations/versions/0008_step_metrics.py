"""training steps: a job's loss, learning rate and throughput every few batches, between its epoch metrics

Revision ID: 0008_step_metrics
Revises: 0007_sched_limits
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_step_metrics"
down_revision = "0007_sched_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_step_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["training_jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("job_step_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_job_step_metrics_job_step", ["job_id", "step"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_step_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_job_step_metrics_job_step")
    op.drop_table("job_step_metrics")
