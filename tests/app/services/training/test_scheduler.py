"""The queue's decisions: fit, priority then FIFO over jobs and tuning runs, per-user limits (from roles or the
system settings), and work that can never fit."""

from __future__ import annotations

import pytest

from app.contracts.train_config import TrainConfig
from app.core.config import Settings
from app.core.errors import AipError
from app.db.models import User
from app.db.session import session_scope
from app.services.identity import roles, users
from app.services.system import sysconfig
from app.services.training.placement import never_fits
from app.services.training.scheduler import (
    JOB,
    TUNE,
    Candidate,
    Usage,
    Work,
    free_resources,
    owner_limits,
    plan,
)

NODES = [{"CPU": 4.0, "GPU": 1.0, "memory": 8e9}, {"CPU": 2.0, "memory": 4e9}]


def job(job_id: int, owner: int = 1, **resources: float) -> Candidate:
    return Candidate(Work(JOB, job_id), owner, TrainConfig(target_column="y", **resources))


def tune(run_id: int, trials_at_once: int, owner: int = 1, **resources: float) -> Candidate:
    return Candidate(Work(TUNE, run_id), owner, TrainConfig(target_column="y", **resources), trials_at_once)


def decide(queue: list[Candidate], free: dict[str, float], **kwargs: object) -> object:
    return plan(queue, free=free, nodes=NODES, **{"usage": {}, "limits": {}, **kwargs})  # type: ignore[arg-type]


def test_starts_in_queue_order_while_resources_last() -> None:
    queue = [job(1, num_workers=2), job(2, num_workers=2), job(3, num_workers=1)]
    decided = decide(queue, {"CPU": 4.0})
    assert decided.start == [Work(JOB, 1), Work(JOB, 2)]
    assert "CPU 1 (0 free)" in decided.waiting[Work(JOB, 3)]


def test_the_head_of_the_queue_blocks_smaller_jobs_behind_it() -> None:
    queue = [job(1, num_workers=3), job(2, num_workers=1)]
    decided = decide(queue, {"CPU": 2.0})
    assert decided.start == []
    assert "needs CPU 3" in decided.waiting[Work(JOB, 1)]
    assert "behind job 1" in decided.waiting[Work(JOB, 2)]


def test_a_tuning_run_waits_for_all_its_concurrent_trials_and_blocks_the_queue_like_a_job() -> None:
    # Three trials of 2 workers each at once: 6 CPUs, which a cluster with 4 free cannot give now.
    queue = [tune(1, 3, num_workers=2), job(2, num_workers=1)]
    decided = decide(queue, {"CPU": 4.0})
    assert decided.start == []
    assert "needs CPU 6 (4 free)" in decided.waiting[Work(TUNE, 1)]
    assert "behind tuning run 1" in decided.waiting[Work(JOB, 2)]
    assert decide(queue, {"CPU": 6.0}).start == [Work(TUNE, 1)]
    assert decide(queue, {"CPU": 7.0}).start == [Work(TUNE, 1), Work(JOB, 2)]


def test_limits_hold_back_only_that_users_work() -> None:
    queue = [job(1, owner=7, num_workers=1, gpus_per_worker=1), job(2, owner=8, num_workers=1)]
    decided = decide(queue, {"CPU": 6.0, "GPU": 1.0}, usage={7: Usage(gpus=1.0)}, limits={7: {"max_gpus": 1.0}})
    assert decided.start == [Work(JOB, 2)]
    assert "holds 1 GPUs of your limit of 1" in decided.waiting[Work(JOB, 1)]

    # At most 2 running jobs (a tuning run counts as one) and 4 CPUs for user 7; user 8 is not limited.
    queue = [
        job(3, owner=7, num_workers=1),
        tune(4, 2, owner=7, num_workers=1),
        job(5, owner=7, num_workers=1),
        job(6, owner=7, num_workers=1, cpus_per_worker=2),
        job(7, owner=8, num_workers=1),
    ]
    decided = decide(queue, {"CPU": 6.0}, limits={7: {"max_jobs": 2, "max_cpus": 4}})
    assert decided.start == [Work(JOB, 3), Work(TUNE, 4), Work(JOB, 7)]
    assert "2 running jobs and tuning runs of your limit of 2" in decided.waiting[Work(JOB, 5)]
    assert "3 CPUs of your limit of 4" in decided.waiting[Work(JOB, 6)]


def test_work_that_can_never_fit_is_refused_with_the_reason() -> None:
    too_many_gpus = TrainConfig(target_column="y", num_workers=1, gpus_per_worker=2)
    assert "GPU 2 (largest node has 1)" in (never_fits(too_many_gpus, NODES) or "")
    too_many_workers = TrainConfig(target_column="y", num_workers=4, cpus_per_worker=2)
    assert "at most 3" in (never_fits(too_many_workers, NODES) or "")
    spread = TrainConfig(target_column="y", num_workers=3, cpus_per_worker=2)  # 2 on node 1, 1 on node 2
    assert never_fits(spread, NODES) is None
    one_trial = TrainConfig(target_column="y", num_workers=2, cpus_per_worker=1)
    assert never_fits(one_trial, NODES, copies=3) is None
    assert "Lower max_concurrent_trials" in (never_fits(one_trial, NODES, copies=4) or "")
    decided = decide([Candidate(Work(JOB, 1), 1, too_many_gpus), tune(2, 4, num_workers=2), job(3)], {"CPU": 6.0})
    assert list(decided.refused) == [Work(JOB, 1), Work(TUNE, 2)]
    assert decided.start == [Work(JOB, 3)]  # refused work does not block the queue


def test_free_resources_count_submitted_jobs_whose_workers_have_not_started() -> None:
    # Ray still shows 6 CPUs free, but a job holding 4 was just submitted.
    free = free_resources({"CPU": 6.0}, {"CPU": 6.0}, {"CPU": 4.0})
    assert free == {"CPU": 2.0}
    # Once its workers run, Ray's own number is the smaller one (it also sees other users of the cluster).
    assert free_resources({"CPU": 1.0}, {"CPU": 6.0}, {"CPU": 4.0}) == {"CPU": 1.0}


def test_a_users_limit_is_the_most_generous_of_their_roles_else_the_system_setting(db_url: str) -> None:
    settings = Settings(database_url=db_url)
    with session_scope(db_url) as session:
        users.ensure_builtin_roles(session)
        small = roles.create_role(
            session, name="small", description="", permissions=[], limits=roles.RoleLimits(max_gpus=1, max_jobs=1)
        )
        big = roles.create_role(
            session, name="big", description="", permissions=[], limits=roles.RoleLimits(max_gpus=4)
        )
        developer = next(r for r in roles.list_roles(session).items if r.name == "developer")
        # A built-in role's limits may change, its permissions may not.
        roles.update_role(
            session, role_id=developer.id, description=None, permissions=None, limits=roles.RoleLimits(max_cpus=8)
        )
        with pytest.raises(AipError, match="built in"):
            roles.update_role(session, role_id=developer.id, description="x", permissions=None, limits=None)
        both = User(username="both", password_hash="-", roles=[small, big])
        plain = User(username="plain", password_hash="-", roles=[developer])
        session.add_all([both, plain])
        session.flush()
        ids = {"both": both.id, "plain": plain.id}
        sysconfig.put(session, settings, key="quota.user_max_gpus", value=2, user=both)
        sysconfig.put(session, settings, key="quota.user_max_jobs", value=5, user=both)

    with session_scope(db_url) as session:
        limits = owner_limits(session, settings, set(ids.values()))
    assert limits[ids["both"]] == {"max_gpus": 4, "max_jobs": 1}  # most generous GPUs; jobs from "small"
    assert limits[ids["plain"]] == {"max_gpus": 2, "max_cpus": 8, "max_jobs": 5}  # settings fill what no role sets

    with session_scope(db_url) as session:
        sysconfig.put(session, settings, key="quota.user_max_jobs", value=None, user=session.get_one(User, ids["both"]))
        assert owner_limits(session, settings, {ids["plain"]})[ids["plain"]] == {"max_gpus": 2, "max_cpus": 8}


def test_role_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        roles.RoleLimits(max_gpus=-1)
    with pytest.raises(ValueError, match="Extra inputs"):
        roles.RoleLimits.model_validate({"max_gpu": 1})
