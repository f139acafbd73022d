"""The quality check's counts on a constructed messy file, where every problem was put in by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.core.errors import AipError
from app.db.models import DatasetVersion, QualityReport
from app.db.session import session_scope
from app.runs import lifecycle
from app.runs.kinds import QUALITY_REPORT
from app.services.data import quality
from app.services.data.quality_checks import QualityConfig, check, problems
from tests.utils.data_env import DataEnv


def messy_csv(path: Path) -> Path:
    """20 rows: 3 missing cells (age row 3, city rows 9 and 11), a non-number in age (row 5), an age outlier
    (row 7), a duplicated key (row 12 reuses id 4) and an exact duplicate row (19 repeats 18)."""
    lines = ["id,age,city,score"]
    for i in range(20):
        age = {3: "", 5: "abc", 7: "500"}.get(i, str(20 + i % 10))
        city = "" if i in (9, 11) else "abcd"[i % 4]
        row_id = {12: 4, 19: 18}.get(i, i)
        lines.append(f"{row_id},{age},{city},{1 + 0.1 * (i % 5):.1f}")
    lines[20] = lines[19]  # row 19 == row 18
    path.write_text("\n".join(lines) + "\n")
    return path


def test_counts_on_a_messy_file_are_exact(tmp_path: Path) -> None:
    frame = pd.read_csv(messy_csv(tmp_path / "messy.csv"), dtype=str)
    report = check(frame, QualityConfig(key_columns=["id"], max_examples=3))

    assert report["column_types"] == {"id": "int", "age": "int", "city": "str", "score": "float"}
    completeness = report["completeness"]
    assert completeness["missing_per_column"] == {"id": 0, "age": 1, "city": 2, "score": 0}
    assert (completeness["missing_cells"], completeness["rows_with_missing"]) == (3, 3)
    assert completeness["rows_by_missing_count"] == {"0": 17, "1": 3}
    assert [e["row"] for e in completeness["examples"]] == [3, 9, 11]

    types = report["type_consistency"]
    assert {c: t["invalid"] for c, t in types.items()} == {"id": 0, "age": 1, "city": 0, "score": 0}
    assert types["age"]["examples"] == [{"row": 5, "value": "abc"}]

    age = report["anomalies"]["columns"]["age"]
    assert age["iqr"]["count"] == 1 and age["zscore"]["count"] == 1
    assert [e["row"] for e in age["examples"]] == [7]
    valid_ages = pd.to_numeric(frame["age"], errors="coerce").dropna()
    assert age["iqr"]["q1"] == valid_ages.quantile(0.25) and age["zscore"]["std"] == pytest.approx(
        valid_ages.std(ddof=0)
    )
    assert report["anomalies"]["outlier_rows"] == 1
    assert report["anomalies"]["columns"]["score"]["iqr"]["count"] == 0

    duplicates = report["duplicates"]
    assert duplicates["duplicate_rows"] == 1 and [e["row"] for e in duplicates["examples"]] == [19]
    assert duplicates["key_columns"]["id"]["rows"] == 4 and duplicates["key_columns"]["id"]["values"] == 2

    parts = {"completeness": 1 - 3 / 80, "validity": 1 - 1 / 77, "uniqueness": 1 - 4 / 20, "anomalies": 1 - 1 / 20}
    assert report["scores"] == pytest.approx(parts, abs=1e-6)
    assert report["score"] == pytest.approx(np.mean(list(parts.values())), abs=1e-6)


def test_thresholds_come_from_the_request(tmp_path: Path) -> None:
    frame = pd.read_csv(messy_csv(tmp_path / "messy.csv"), dtype=str)
    strict = check(frame, QualityConfig(iqr_factor=0.1, z_threshold=0.5))
    assert strict["anomalies"]["columns"]["age"]["iqr"]["count"] > 1
    assert strict["anomalies"]["columns"]["age"]["zscore"]["count"] == 1  # one value dominates the spread
    declared = check(frame, QualityConfig(column_types={"city": "int"}))
    assert declared["type_consistency"]["city"] == {
        "type": "int",
        "invalid": 18,
        "examples": [{"row": i, "value": "abcd"[i % 4]} for i in range(5)],
    }


def test_request_problems_are_named() -> None:
    found = problems(QualityConfig(key_columns=["nope"], column_types={"age": "decimal"}), ["id", "age"])
    assert "['nope']" in found[0] and "decimal" in found[1]


def test_training_refuses_a_version_below_the_threshold(fast_env: DataEnv) -> None:
    env = fast_env
    version_id = env.upload(env.dataset("gate"), "d.csv", b"a,b\n1,2\n3,4\n")
    with session_scope(env.settings.database_url) as session:
        version = session.get_one(DatasetVersion, version_id)
        quality.check_training_allowed(session, version, None)  # no threshold: no report needed
        with pytest.raises(AipError, match="no finished quality report"):
            quality.check_training_allowed(session, version, 0.5)
        report = QualityReport(version_id=version_id, owner_id=env.owner.id, config={})
        session.add(report)
        session.flush()
        report = lifecycle.mark_running(session, QUALITY_REPORT, report.id)
        quality.record_result(report, {"score": 0.8})
        lifecycle.succeed(session, QUALITY_REPORT, report)
        quality.check_training_allowed(session, version, 0.8)
        with pytest.raises(AipError, match="scored 0.800 in quality report"):
            quality.check_training_allowed(session, version, 0.9)
