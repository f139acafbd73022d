"""identity: failed logins counted per username and client address in the database (shared by API replicas)

Revision ID: 0010_login_throttles
Revises: 0009_run_transitions
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_login_throttles"
down_revision = "0009_run_transitions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("username", "client_ip"),
    )
    # Account-wide locks are gone: a lock is per account and address now.
    op.execute("UPDATE users SET failed_logins = 0, locked_until = NULL")


def downgrade() -> None:
    op.drop_table("login_throttles")
