"""AipError keeps its code, message and details across pickling: Ray ships a task's exception to the caller so."""

from __future__ import annotations

import pickle

import pytest
import ray

from app.core.errors import AipError, ErrorCode, invalid


class _Keyed(AipError):
    """A subclass with its own constructor and an extra attribute, like the storage errors."""

    def __init__(self, key: str) -> None:
        super().__init__(ErrorCode.NOT_FOUND, f"No object {key!r}.", key=key)
        self.key = key


def test_pickle_round_trip_keeps_code_message_and_details() -> None:
    error = invalid("Use a chunk_size of at least 1024.", chunk_size=12)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is AipError
    assert (back.code, back.message, back.details, str(back)) == (
        ErrorCode.INVALID_INPUT,
        "Use a chunk_size of at least 1024.",
        {"chunk_size": 12},
        "Use a chunk_size of at least 1024.",
    )
    assert back.to_dict() == error.to_dict()


def test_pickle_round_trip_of_a_subclass() -> None:
    back = pickle.loads(pickle.dumps(_Keyed("datasets/1")))
    assert type(back) is _Keyed
    assert (back.code, back.key, back.details) == (ErrorCode.NOT_FOUND, "datasets/1", {"key": "datasets/1"})


@ray.remote(num_cpus=0)
def _fail() -> None:
    raise invalid("The CSV file has no header row; add one.", row=1)


def test_raised_in_a_ray_task_reaches_the_caller(ray_driver: None) -> None:
    with pytest.raises(AipError) as raised:
        ray.get(_fail.remote(), timeout=120)
    assert raised.value.code is ErrorCode.INVALID_INPUT
    assert raised.value.message == "The CSV file has no header row; add one."
    assert raised.value.details == {"row": 1}
