"""User training code: a Python file or a zip exposing `train_loop_per_worker(config)`, stored by content hash.

The code is checked when uploaded (it parses, and defines the function at the top level of the file, or of
`train.py` in a zip) and stored once under `code/<sha256>/<file name>`; a job names it by that hash.

Checking untrusted code must not cost the API what it needs to answer others: a zip is inspected within caps
(`archives`), and the entry source is parsed in a child Python process with CPU, memory and time limits, because
parsing holds the GIL throughout and a large file's syntax tree takes hundreds of MB (1 MiB of source: ~2 s).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass

from app.core.config import Settings
from app.core.errors import invalid, not_found, too_large
from app.services import archives
from app.storage import ObjectStore

ENTRY_FUNCTION = "train_loop_per_worker"
ZIP_ENTRY = "train.py"
PARSE_TIMEOUT_S = 30.0
PARSE_MEMORY_BYTES = 2 << 30

# Run by `python -I -S`: lists the top-level functions of the source on stdin, or says where it does not parse.
_PARSE = """
import ast, json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))
try:
    tree = ast.parse(sys.stdin.buffer.read(), filename=sys.argv[1])
except SyntaxError as e:
    print(json.dumps({{"line": e.lineno, "error": e.msg}}))
else:
    print(json.dumps({{"functions": [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]}}))
"""


@dataclass(frozen=True)
class StoredCode:
    code_hash: str
    file_name: str
    size_bytes: int
    key: str


def entry_source(settings: Settings, file_name: str, data: bytes) -> bytes:
    """The source that must define the entry function (the file itself, or train.py of a zip)."""
    if file_name.endswith(".py"):
        _check_source_size(settings, file_name, len(data))
        return data
    if file_name.endswith(".zip"):
        with archives.open_checked(io.BytesIO(data), archives.code_limits(settings)) as archive:
            names = archive.namelist()
            if any(name.startswith("/") or ".." in name.split("/") for name in names):
                raise invalid("The zip has absolute or '..' paths; zip a folder with relative paths.")
            if ZIP_ENTRY not in names:
                raise invalid(f"The zip needs a {ZIP_ENTRY} at its root defining {ENTRY_FUNCTION}(config).")
            _check_source_size(settings, ZIP_ENTRY, archive.getinfo(ZIP_ENTRY).file_size)
            return archive.read(ZIP_ENTRY)
    raise invalid(f"Upload a .py file or a .zip (with {ZIP_ENTRY}), not {file_name!r}.")


def _check_source_size(settings: Settings, name: str, size: int) -> None:
    if size > settings.code_max_source_bytes:
        raise too_large(
            f"{name} has {size} bytes of source; AIP_CODE_MAX_SOURCE_BYTES allows {settings.code_max_source_bytes}. "
            f"Put helpers in other modules of a zip (only {ZIP_ENTRY} is parsed at upload) and data in a dataset.",
            setting="AIP_CODE_MAX_SOURCE_BYTES",
            limit=settings.code_max_source_bytes,
        )


def check(settings: Settings, file_name: str, data: bytes) -> None:
    """Refuses code that is empty, too large, not UTF-8, does not parse or lacks the entry function (a 4xx that
    says which)."""
    if not data:
        raise invalid("The code file is empty.")
    if len(data) > settings.code_max_upload_bytes:
        raise too_large(
            f"The code file has {len(data)} bytes; AIP_CODE_MAX_UPLOAD_BYTES allows {settings.code_max_upload_bytes}."
            " Ship data as a dataset instead.",
            setting="AIP_CODE_MAX_UPLOAD_BYTES",
            limit=settings.code_max_upload_bytes,
        )
    source = entry_source(settings, file_name, data)
    try:
        source.decode("utf-8")
    except UnicodeDecodeError as e:
        raise invalid(f"{file_name} is not UTF-8 text: {e}") from e
    functions = _top_level_functions(file_name, source)
    if ENTRY_FUNCTION not in functions:
        raise invalid(f"The code defines no top-level {ENTRY_FUNCTION}(config); the platform calls that function.")


def _top_level_functions(file_name: str, source: bytes) -> list[str]:
    script = _PARSE.format(memory=PARSE_MEMORY_BYTES, cpu=int(PARSE_TIMEOUT_S))
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", script, file_name],
            input=source,
            capture_output=True,
            timeout=PARSE_TIMEOUT_S,
            check=False,
        )
        result = json.loads(done.stdout) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError):
        result = None
    if result is None:
        raise invalid(
            f"{file_name} could not be parsed within {PARSE_TIMEOUT_S:g} s and {PARSE_MEMORY_BYTES >> 30} GiB; "
            "make the entry file smaller or simpler."
        )
    if "error" in result:
        raise invalid(f"{file_name} does not parse: line {result['line']}: {result['error']}.")
    return list(result["functions"])


def store_code(settings: Settings, store: ObjectStore, *, file_name: str, data: bytes) -> StoredCode:
    """Checks and stores the code (once per content) and returns how jobs refer to it. Blocking: call it from a
    thread, not an event loop."""
    name = file_name.rsplit("/", 1)[-1]
    check(settings, name, data)
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
