"""User training code: a Python file or a zip exposing `train_loop_per_worker(config)`, stored by content hash.

The code is checked when uploaded (it parses, and defines the function at the top level of the file, or of
`train.py` in a zip) and stored once under `code/<sha256>/<file name>`; a job names it by that hash.
"""

from __future__ import annotations

import ast
import hashlib
import io
import zipfile
from dataclasses import dataclass

from app.core.errors import invalid, not_found
from app.storage import ObjectStore

ENTRY_FUNCTION = "train_loop_per_worker"
ZIP_ENTRY = "train.py"
MAX_BYTES = 10 << 20


@dataclass(frozen=True)
class StoredCode:
    code_hash: str
    file_name: str
    size_bytes: int
    key: str


def entry_source(file_name: str, data: bytes) -> str:
    """The source that must define the entry function (the file itself, or train.py of a zip)."""
    if file_name.endswith(".py"):
        return data.decode("utf-8")
    if file_name.endswith(".zip"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = archive.namelist()
                if any(name.startswith("/") or ".." in name.split("/") for name in names):
                    raise invalid("The zip has absolute or '..' paths; zip a folder with relative paths.")
                if ZIP_ENTRY not in names:
                    raise invalid(f"The zip needs a {ZIP_ENTRY} at its root defining {ENTRY_FUNCTION}(config).")
                return archive.read(ZIP_ENTRY).decode("utf-8")
        except zipfile.BadZipFile as e:
            raise invalid(f"{file_name} is not a readable zip: {e}") from e
    raise invalid(f"Upload a .py file or a .zip (with {ZIP_ENTRY}), not {file_name!r}.")


def check(file_name: str, data: bytes) -> None:
    if not data:
        raise invalid("The code file is empty.")
    if len(data) > MAX_BYTES:
        raise invalid(f"Code uploads are limited to {MAX_BYTES >> 20} MiB; ship data as a dataset instead.")
    try:
        tree = ast.parse(entry_source(file_name, data), filename=file_name)
    except UnicodeDecodeError as e:
        raise invalid(f"{file_name} is not UTF-8 text: {e}") from e
    except SyntaxError as e:
        raise invalid(f"{file_name} does not parse: line {e.lineno}: {e.msg}.") from e
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    if ENTRY_FUNCTION not in functions:
        raise invalid(f"The code defines no top-level {ENTRY_FUNCTION}(config); the platform calls that function.")


def store_code(store: ObjectStore, *, file_name: str, data: bytes) -> StoredCode:
    """Checks and stores the code (once per content) and returns how jobs refer to it."""
    name = file_name.rsplit("/", 1)[-1]
    check(name, data)
    digest = hashlib.sha256(data).hexdigest()
    key = f"code/{digest}/{name}"
    if not store.exists(key):
        store.put_bytes(key, data)
    return StoredCode(code_hash=digest, file_name=name, size_bytes=len(data), key=key)


def find(store: ObjectStore, code_hash: str) -> str:
    """The storage key of uploaded code by its hash."""
    if len(code_hash) != 64 or any(c not in "0123456789abcdef" for c in code_hash):
        raise invalid("code_hash must be the 64-hex sha256 that the code upload returned.")
    keys = list(store.list(f"code/{code_hash}/"))
    if not keys:
        raise not_found("Uploaded code", code_hash)
    return keys[0]
