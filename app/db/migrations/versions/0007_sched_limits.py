"""scheduling: per-role limits, tuning runs in the training queue, timed resource samples of a job's workers,
the nodes a job's workers were placed on

Revision ID: 0007_sched_limits
Revises: 0006_direct_upload
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_sched_limits"
down_revision = "0006_direct_upload"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("roles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("limits", sa.JSON(), nullable=True))
    with op.batch_alter_table("tuning_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("preferred_nodes", sa.JSON(), nullable=True))
    op.create_table(
        "job_usage_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["training_jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("job_usage_samples", schema=None) as batch_op:
        batch_op.create_index("ix_job_usage_samples_job", ["job_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_usage_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_job_usage_samples_job")
    op.drop_table("job_usage_samples")
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_column("preferred_nodes")
    with op.batch_alter_table("tuning_runs", schema=None) as batch_op:
        batch_op.drop_column("priority")
    with op.batch_alter_table("roles", schema=None) as batch_op:
        batch_op.drop_column("limits")
