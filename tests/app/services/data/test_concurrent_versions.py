"""Uploads to one dataset at once: each gets its own version number, none is refused (409) for losing the race
for the next number."""

from __future__ import annotations

import io
import threading

from app.db.session import session_scope
from app.services.data import datasets
from tests.utils.data_env import DataEnv

UPLOADS = 8


def test_simultaneous_uploads_to_one_dataset_all_get_a_number(data_env: DataEnv) -> None:
    dataset_id = data_env.dataset("busy")
    version_ids: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(UPLOADS)

    def upload(n: int) -> None:
        body = io.BytesIO("".join(f"{n},{i}\n" for i in range(20)).join(["a,b\n", ""]).encode())
        start.wait()
        try:
            version_ids.append(
                datasets.add_version(
                    data_env.settings,
                    data_env.store,
                    user=data_env.owner,
                    dataset_id=dataset_id,
                    file_name=f"part-{n}.csv",
                    source=body,
                )
            )
        except BaseException as e:  # noqa: BLE001 - collected and reported below
            failures.append(e)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(UPLOADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    with session_scope(data_env.settings.database_url) as session:
        numbers = sorted(
            v.version for v in datasets.get_dataset(session, user=data_env.owner, dataset_id=dataset_id).versions
        )
    assert numbers == list(range(1, UPLOADS + 1))
