# The DB-layer fixtures (one clean database per selected backend) for service tests that need no Ray.
from tests.app.db.conftest import db_url, empty_db_url  # noqa: F401
