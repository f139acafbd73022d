"""Schema (Alembic) and unit-of-work behaviour on every selected backend: sqlite, postgresql, mysql."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

import app.db
from app.core.errors import AipError, ErrorCode
from app.db.models import Base, DatasetVersion, Model, ModelVersion, TrainingJob, User
from app.db.session import session_scope, upgrade_schema
from tests.utils.rows import add_dataset_version, add_user

MIGRATIONS = Path(app.db.__file__).parent / "migrations"


def alembic_head() -> set[str]:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return set(ScriptDirectory.from_config(cfg).get_heads())  # feature branches each have a head


def schema_state(url: str) -> tuple[set[str], set[str]]:
    """The tables in the database and its Alembic revisions (heads), read over a fresh connection."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names()), set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def usernames(url: str) -> list[str]:
    with session_scope(url) as s:
        return list(s.scalars(select(User.username).order_by(User.username)))


def add_iris(s: Session, owner: User, columns: list[Any]) -> DatasetVersion:
    return add_dataset_version(s, owner, name="iris", size_bytes=3 * 2**31, num_rows=150, columns=columns)  # > 32 bits


def test_upgrade_creates_every_model_table(empty_db_url: str) -> None:
    assert schema_state(empty_db_url) == (set(), set())
    upgrade_schema(empty_db_url)
    assert schema_state(empty_db_url) == (set(Base.metadata.tables) | {"alembic_version"}, alembic_head())


def test_upgrade_twice_is_a_no_op(db_url: str) -> None:
    with session_scope(db_url) as s:
        add_user(s, "keep-me")
    before = schema_state(db_url)
    upgrade_schema(db_url)
    assert schema_state(db_url) == before
    assert usernames(db_url) == ["keep-me"]  # nothing was dropped and recreated


def test_migrations_match_the_models(db_url: str) -> None:
    # Autogenerate's own comparison between the migrated database and the models: an empty diff means the newest
    # revision creates exactly what the models declare (tables, columns, types, nullability, indexes, unique and
    # foreign keys). No backend needs an ignore list: MariaDB reflects JSON as LONGTEXT and Boolean as TINYINT(1),
    # and Alembic's MySQL impl already treats those as synonyms (alembic.ddl.mysql.MySQLImpl.type_synonyms).
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()
    assert diffs == []


def test_session_scope_commits(db_url: str) -> None:
    with session_scope(db_url) as s:
        add_user(s, "alice")
    assert usernames(db_url) == ["alice"]


def test_session_scope_rolls_back_on_error(db_url: str) -> None:
    with pytest.raises(RuntimeError, match="boom"), session_scope(db_url) as s:
        add_user(s, "bob")  # flushed: the INSERT reached the database inside the transaction
        raise RuntimeError("boom")
    assert usernames(db_url) == []


def assert_no_sql(message: str, value: str) -> None:
    """A 409's message names the conflict in words: no statement, constraint text or the values sent."""
    for leak in ("INSERT", "constraint", "Duplicate entry", "DETAIL", value):
        assert leak not in message, message


def test_duplicate_username_is_a_conflict_and_leaves_nothing(db_url: str) -> None:
    with session_scope(db_url) as s:
        add_user(s, "alice")
    with pytest.raises(AipError) as err, session_scope(db_url) as s:
        add_user(s, "carol")
        add_user(s, "alice")
    assert err.value.code is ErrorCode.CONFLICT
    assert err.value.message.startswith("A user with the same name or key already exists"), err.value.message
    assert_no_sql(err.value.message, "alice")
    assert usernames(db_url) == ["alice"]  # carol was rolled back with the duplicate


def test_missing_required_value_is_a_conflict_not_an_outage(db_url: str) -> None:
    with pytest.raises(AipError) as err, session_scope(db_url) as s:
        model = Model(name="m", owner_id=add_user(s, "dave").id)
        s.add(model)
        s.flush()
        # No `signature`: a NOT NULL JSON column without a default, which the ORM leaves out of the INSERT.
        s.add(ModelVersion(model_id=model.id, version=1, template="t", artifact_key="k", metrics={}))
    assert err.value.code is ErrorCode.CONFLICT, err.value.message
    assert err.value.message == "A required value of the model version is missing."
    assert usernames(db_url) == []


def test_json_columns_round_trip(db_url: str) -> None:
    columns = [{"name": "sepal_length", "dtype": "float64"}, {"name": "species", "dtype": "object"}]
    config = {"lr": 0.001, "layers": [64, 32], "amp": True, "seed": None, "label": "naïve ✓", "big": 2**53}
    metrics = {"accuracy": 0.97, "per_class": {"setosa": 1.0}, "history": [0.5, 0.25]}
    signature = {"inputs": ["sepal_length"], "target": "species", "classes": ["setosa", "virginica"]}
    with session_scope(db_url) as s:
        owner = add_user(s, "alice")
        version = add_iris(s, owner, columns)
        job = TrainingJob(
            name="j", owner_id=owner.id, dataset_version_id=version.id, template="tabular_mlp", config=config
        )
        model = Model(name="m", owner_id=owner.id)
        s.add_all([job, model])
        s.flush()
        s.add(
            ModelVersion(
                model_id=model.id,
                version=1,
                template="tabular_mlp",
                artifact_key="k",
                metrics=metrics,
                signature=signature,
            )
        )
    with session_scope(db_url) as s:
        assert s.scalars(select(DatasetVersion.columns)).one() == columns
        assert s.scalars(select(DatasetVersion.size_bytes)).one() == 3 * 2**31
        assert s.scalars(select(TrainingJob.config)).one() == config
        assert s.scalars(select(ModelVersion.metrics)).one() == metrics
        assert s.scalars(select(ModelVersion.signature)).one() == signature


def test_foreign_keys_are_enforced(db_url: str) -> None:
    orphan = DatasetVersion(
        dataset_id=424242,  # no such dataset
        version=1,
        file_name="x.csv",
        format="csv",
        storage_key="k",
        size_bytes=1,
        sha256="0" * 64,
        num_rows=1,
        columns=[],
    )
    with pytest.raises(AipError) as err, session_scope(db_url) as s:
        s.add(orphan)
    assert err.value.code is ErrorCode.CONFLICT
    assert "dataset version refers to something that does not exist" in err.value.message
    assert_no_sql(err.value.message, "424242")
    with session_scope(db_url) as s:
        assert s.scalar(select(func.count()).select_from(DatasetVersion)) == 0
