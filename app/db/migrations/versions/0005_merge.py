"""Joins the auth, data-layer and training branches into one head, so the next migration has one parent.

Revision ID: 0005_merge
Revises: 0002_auth, 0003_data, 0004_training
"""

revision = "0005_merge"
down_revision = ("0002_auth", "0003_data", "0004_training")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
