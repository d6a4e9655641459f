"""The layering rules of docs/architecture.md, checked on the source so they cannot erode silently."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "include" / "nylas_dataverse"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(PACKAGE / "core"), ids=lambda p: p.name)
def test_the_core_does_no_io_and_knows_no_framework(path: Path) -> None:
    forbidden = (
        "requests",
        "msal",
        "airflow",
        "http",
        "socket",
        "urllib.request",
        "os",
        "pathlib",
        "subprocess",
        "nylas_dataverse.hooks",
        "nylas_dataverse.pipeline",
    )
    bad = {name for name in _imports(path) if any(name == f or name.startswith(f + ".") for f in forbidden)}
    assert not bad


@pytest.mark.parametrize("path", _modules(PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_production_code_never_imports_the_sandbox(path: Path) -> None:
    assert not any(name.startswith("nylas_dataverse_sandbox") for name in _imports(path))


@pytest.mark.parametrize(
    "path",
    [p for p in _modules(PACKAGE) if p.parent.name not in {"hooks"}],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_only_hooks_speak_http(path: Path) -> None:
    assert not {name for name in _imports(path) if name.split(".")[0] in {"requests", "msal", "httpx"}}
