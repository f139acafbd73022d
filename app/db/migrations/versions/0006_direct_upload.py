"""direct uploads: an upload session's mode and S3 multipart upload, each chunk's ETag

Revision ID: 0006_direct_upload
Revises: 0005_merge
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_direct_upload"
down_revision = "0005_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(length=8), server_default="api", nullable=False))
        batch_op.add_column(sa.Column("multipart_id", sa.String(length=255), nullable=True))
    with op.batch_alter_table("upload_chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("etag", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("upload_chunks", schema=None) as batch_op:
        batch_op.drop_column("etag")
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.drop_column("multipart_id")
        batch_op.drop_column("mode")
