"""Paged lists on every backend: limit/offset windows that neither repeat nor skip rows, whitelisted sorts,
filters, a total that counts only what the caller may see, and a clear error for a sort the list does not offer."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from app.contracts.status import JobStatus
from app.core.errors import AipError, ErrorCode
from app.db.models import TrainingJob, User
from app.db.paging import MAX_LIMIT, PageRequest
from app.db.session import session_scope
from app.services.identity import users
from app.services.training import jobs
from tests.utils.rows import add_dataset_version, add_user


def add_jobs(s: Session, owner: User, count: int, *, prefix: str) -> list[int]:
    version = add_dataset_version(s, owner, name=f"{prefix}-data")
    rows = [
        TrainingJob(
            name=f"{prefix}-{i:02d}",
            owner_id=owner.id,
            dataset_version_id=version.id,
            template="tabular_mlp",
            config={},
            status=JobStatus.QUEUED if i % 3 == 0 else JobStatus.SUCCEEDED,
            priority=i % 4,
        )
        for i in range(count)
    ]
    s.add_all(rows)
    s.flush()
    return [row.id for row in rows]


def test_pages_cover_every_visible_row_once_in_order(db_url: str) -> None:
    with session_scope(db_url) as s:
        alice, bob = add_user(s, "alice"), add_user(s, "bob")
        mine = add_jobs(s, alice, 23, prefix="alice")
        add_jobs(s, bob, 7, prefix="bob")
    with session_scope(db_url) as s:
        alice = s.get_one(User, alice.id)
        seen: list[int] = []
        for offset in range(0, 30, 10):
            page = jobs.list_jobs(s, user=alice, request=PageRequest(limit=10, offset=offset))
            assert page.total == 23 and page.limit == 10 and page.offset == offset  # bob's jobs are not counted
            seen += [job.id for job in page.items]
        assert seen == sorted(mine, reverse=True)  # newest first, each once
        by_priority = jobs.list_jobs(s, user=alice, request=PageRequest(limit=MAX_LIMIT, sort="-priority")).items
        keys = [(job.priority, job.id) for job in by_priority]
        assert keys == sorted(keys, reverse=True)  # ties broken by id, in the sort's direction
        queued = jobs.list_jobs(s, user=alice, status=JobStatus.QUEUED, request=PageRequest(limit=3))
        assert queued.total == 8 and len(queued.items) == 3
        assert all(job.status == JobStatus.QUEUED for job in queued.items)
        named = jobs.list_jobs(s, user=alice, name="alice-1", request=PageRequest(sort="name"))
        assert [job.name for job in named.items] == [f"alice-{i}" for i in range(10, 20)]
        past_the_end = jobs.list_jobs(s, user=alice, request=PageRequest(limit=10, offset=100))
        assert past_the_end.items == [] and past_the_end.total == 23


def test_a_name_filter_matches_the_characters_literally(db_url: str) -> None:
    with session_scope(db_url) as s:
        add_user(s, "a_b")
        add_user(s, "axb")
        add_user(s, "100%")
    with session_scope(db_url) as s:
        assert [u.username for u in users.list_users(s, username="a_b").items] == ["a_b"]  # '_' is no wildcard
        assert [u.username for u in users.list_users(s, username="0%").items] == ["100%"]


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (PageRequest(sort="password_hash"), "Cannot sort by 'password_hash': sort by one of created_at, id, username"),
        (PageRequest(limit=MAX_LIMIT + 1), f"1 to {MAX_LIMIT} items"),
        (PageRequest(offset=-1), "offset of 0 or more"),
    ],
)
def test_a_bad_page_request_says_what_to_ask_for(db_url: str, request_: PageRequest, match: str) -> None:
    with session_scope(db_url) as s, pytest.raises(AipError) as err:
        users.list_users(s, request=request_)
    assert err.value.code == ErrorCode.INVALID_INPUT and match in err.value.message
