"""The layering rule: the control plane (`app/`) never imports the workload (`train_jobs/`, `serve_deployments/`),
and importing it loads neither torch nor Ray Train; every status enum is defined once, in `app.contracts.status`."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ("train_jobs", "serve_deployments")
HEAVY = ("torch", "ray.train", "ray.tune")  # and their submodules


def sources(*folders: str) -> Iterator[tuple[Path, ast.Module]]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(), filename=str(path))


def imported_modules(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every module an import statement names, at any depth (inside functions and `if TYPE_CHECKING` too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module


def under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def test_the_control_plane_imports_no_workload() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path, tree in sources("app")
        for line, module in imported_modules(tree)
        if under(module, WORKLOAD)
    ]
    assert not found, "app/ must not import the workload; move what both need to app/contracts:\n" + "\n".join(found)


def loaded_after(code: str) -> list[str]:
    """The heavy modules in `sys.modules` after a fresh interpreter ran `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [m for m in json.loads(done.stdout.splitlines()[-1]) if under(m, HEAVY)]


def test_the_api_application_loads_neither_torch_nor_ray_train() -> None:
    assert loaded_after("from app.api.main import create_app\ncreate_app()") == []


def test_no_module_of_the_control_plane_nor_the_api_ingress_loads_them() -> None:
    code = (
        "import importlib, pkgutil, app\n"
        "for m in pkgutil.walk_packages(app.__path__, 'app.'):\n"
        "    if not m.name.startswith('app.db.migrations'):\n"  # Alembic scripts run only under Alembic
        "        importlib.import_module(m.name)\n"
        "import serve_deployments.api_ingress"
    )
    assert loaded_after(code) == []


@pytest.mark.parametrize("folder", ["app", "train_jobs", "serve_deployments"])
def test_status_enums_are_defined_only_in_the_contracts(folder: str) -> None:
    home = ROOT / "app" / "contracts" / "status.py"
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} defines {node.name}"
        for path, tree in sources(folder)
        if path != home
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name.endswith("Status")
    ]
    assert not found, "define status enums in app/contracts/status.py:\n" + "\n".join(found)
