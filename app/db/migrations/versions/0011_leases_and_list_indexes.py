"""several control-plane replicas: a leases table (one replica runs the reconcile loop at a time), and indexes
for the paged lists (a user's rows newest first, a status filter newest first)

Revision ID: 0011_leases_and_list_indexes
Revises: 0010_login_throttles
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_leases_and_list_indexes"
down_revision = "0010_login_throttles"
branch_labels = None
depends_on = None

# (index, table, columns) for the paged lists' filters and orders.
LIST_INDEXES: list[tuple[str, str, list[str]]] = [
    ("ix_training_jobs_owner", "training_jobs", ["owner_id", "id"]),
    ("ix_tuning_runs_owner", "tuning_runs", ["owner_id", "id"]),
    ("ix_model_versions_job", "model_versions", ["training_job_id"]),
    ("ix_deployments_owner", "deployments", ["owner_id", "id"]),
]


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("renewed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    for name, table, columns in LIST_INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(LIST_INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
    op.drop_table("leases")
