"""The Astro project files are what the Astro CLI and the Astro Runtime image expect, for this project.

What the Astro CLI does with each file was read in its source: what ``astro dev init`` writes, how
``astro dev start`` loads ``airflow_settings.yaml``, how ``astro dev pytest`` and ``astro dev parse`` run
pytest in the image. README "Run it in Astro" says which commands could not be run here.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PARSE_TEST = PROJECT_ROOT / ".astro" / "test_dag_integrity_default.py"

# The tests `astro dev pytest` can run in the image (README "Run it in Astro"), with their conftests.
IN_IMAGE_TEST_FILES = (
    PARSE_TEST,
    PROJECT_ROOT / "tests" / "conftest.py",
    PROJECT_ROOT / "tests" / "pipeline" / "conftest.py",
    PROJECT_ROOT / "tests" / "pipeline" / "test_dag_integrity.py",
)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _requirements(path: Path) -> dict[str, Requirement]:
    requirements = (
        Requirement(line.split("#", 1)[0]) for line in _lines(path) if line.split("#", 1)[0].strip()
    )
    return {canonicalize_name(req.name): req for req in requirements}


def _locked_version(name: str) -> str:
    for line in _lines(PROJECT_ROOT / "requirements" / "lock.txt"):
        locked, _, version = line.partition("==")
        if canonicalize_name(locked.strip()) == canonicalize_name(name):
            return version.split()[0]
    raise AssertionError(f"{name} is not in requirements/lock.txt")


# --- .astro/ --------------------------------------------------------------------------------------------


def test_the_project_config_names_the_project_as_the_astro_cli_requires() -> None:
    config = yaml.safe_load((PROJECT_ROOT / ".astro" / "config.yaml").read_text())
    name = config["project"]["name"]
    # The Astro CLI's name rule; without .astro/config.yaml every `astro dev` command refuses to run.
    assert re.fullmatch(r"(?i)[a-z0-9]([a-z0-9_-]*[a-z0-9])", name)
    assert (PROJECT_ROOT / "tests").is_dir()  # `astro dev pytest` refuses to run without tests/


def _load_parse_test(project: Path) -> ModuleType:
    path = project / ".astro" / "test_dag_integrity_default.py"
    spec = importlib.util.spec_from_file_location(f"astro_parse_{abs(hash(path))}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _project_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    for name in ("dags", ".astro"):
        shutil.copytree(PROJECT_ROOT / name, copy / name)
    (copy / "include").mkdir()
    shutil.copy(PROJECT_ROOT / "include" / "grants.yaml", copy / "include")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", copy)
    return copy


BROKEN_DAG = "from airflow.sdk import dag\n\nraise RuntimeError('this DAG file is broken')\n"


def test_astro_dev_parse_passes_on_this_projects_dags() -> None:
    _load_parse_test(PROJECT_ROOT).test_every_dag_file_imports()


def test_astro_dev_parse_fails_on_a_dag_file_that_does_not_import(tmp_path: Path) -> None:
    copy = _project_copy(tmp_path)
    (copy / "dags" / "broken.py").write_text(BROKEN_DAG)

    # Exactly what the Astro CLI runs in the container: pytest on the file, from the project root.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", ".astro/test_dag_integrity_default.py", "-q"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "dags/broken.py" in result.stdout
    assert "this DAG file is broken" in result.stdout


def test_a_dag_file_listed_in_the_exceptions_may_fail(tmp_path: Path) -> None:
    copy = _project_copy(tmp_path)
    (copy / "dags" / "broken.py").write_text(BROKEN_DAG)
    exceptions = copy / ".astro" / "dag_integrity_exceptions.txt"
    exceptions.write_text(exceptions.read_text() + "dags/broken.py\n")

    _load_parse_test(copy).test_every_dag_file_imports()


def test_an_empty_dags_folder_does_not_pass_as_parsed(tmp_path: Path) -> None:
    copy = _project_copy(tmp_path)
    for path in (copy / "dags").glob("*.py"):
        path.unlink()
    with pytest.raises(AssertionError, match="no DAGs found"):
        _load_parse_test(copy).test_every_dag_file_imports()


# --- airflow_settings.yaml --------------------------------------------------------------------------------

# The keys the Astro CLI's settings loader decodes; any other key is dropped without a word.
ASTRO_CONNECTION_KEYS = {
    "conn_id",
    "conn_type",
    "conn_host",
    "conn_schema",
    "conn_login",
    "conn_password",
    "conn_port",
    "conn_uri",
    "conn_extra",
}
ASTRO_POOL_KEYS = {"pool_name", "pool_slot", "pool_description"}
ASTRO_VARIABLE_KEYS = {"variable_name", "variable_value"}


def _settings() -> dict[str, Any]:
    settings = yaml.safe_load((PROJECT_ROOT / "airflow_settings.yaml").read_text())
    assert set(settings) == {"airflow"}
    assert set(settings["airflow"]) <= {"connections", "pools", "variables"}
    return settings["airflow"]  # type: ignore[no-any-return]


def _astro_connection_body(conn: dict[str, Any]) -> dict[str, Any]:
    """The body the Astro CLI (1.42 and later) sends to the local Airflow's POST /api/v2/connections."""
    body: dict[str, Any] = {"connection_id": conn["conn_id"]}
    for key, field in (
        ("conn_type", "conn_type"),
        ("conn_host", "host"),
        ("conn_login", "login"),
        ("conn_password", "password"),
        ("conn_schema", "schema"),
    ):
        if conn.get(key):
            body[field] = conn[key]
    if conn.get("conn_port"):
        body["port"] = conn["conn_port"]
    extra = conn.get("conn_extra")
    if extra:
        body["extra"] = extra if isinstance(extra, str) else json.dumps(extra)
    return body


def test_connections_have_the_keys_the_astro_cli_reads_and_placeholder_secrets() -> None:
    connections = _settings()["connections"]
    assert {conn["conn_id"] for conn in connections} >= {"nylas_default", "dataverse_default"}
    for conn in connections:
        assert set(conn) <= ASTRO_CONNECTION_KEYS, f"{conn['conn_id']}: {set(conn) - ASTRO_CONNECTION_KEYS}"
        # Without a type (or URI) the Astro CLI skips the connection.
        assert conn.get("conn_type") or conn.get("conn_uri")
        assert "conn_port" not in conn or isinstance(conn["conn_port"], int)
        assert conn.get("conn_extra") is None or isinstance(conn["conn_extra"], dict | str)
        assert re.fullmatch(r"<[a-z-]+>", conn.get("conn_password", "<none>")), "a real secret is committed"


def test_connections_are_accepted_by_airflows_rest_api_with_this_projects_types() -> None:
    from airflow.api_fastapi.core_api.datamodels.connections import ConnectionBody

    from nylas_dataverse import get_provider_info

    registered = {entry["connection-type"] for entry in get_provider_info()["connection-types"]}
    for conn in _settings()["connections"]:
        body = ConnectionBody.model_validate(_astro_connection_body(conn))
        assert body.conn_type in registered
        assert body.extra is None or isinstance(json.loads(body.extra), dict)


def test_pools_and_variables_have_the_shape_the_astro_cli_reads() -> None:
    from airflow.api_fastapi.core_api.datamodels.pools import PoolBody

    settings = _settings()
    pools = settings["pools"]
    assert pools
    for pool in pools:
        assert set(pool) <= ASTRO_POOL_KEYS
        # A pool without slots is skipped by the Astro CLI; the body is what it sends to POST /pools.
        assert isinstance(pool["pool_slot"], int)
        assert pool["pool_slot"] >= 1
        PoolBody.model_validate(
            {
                "name": pool["pool_name"],
                "slots": pool["pool_slot"],
                "description": pool.get("pool_description", ""),
                "include_deferred": False,
            }
        )
    for variable in settings.get("variables") or []:
        assert set(variable) == ASTRO_VARIABLE_KEYS


# --- .env.example -----------------------------------------------------------------------------------------


def _code_string_literals() -> set[str]:
    literals: set[str] = set()
    for folder in ("include", "dags", "plugins"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    literals.add(node.value)
    return literals


def _env_example() -> dict[str, str | None]:
    """Variable name -> value (None for a commented-out example line)."""
    variables: dict[str, str | None] = {}
    for line in _lines(PROJECT_ROOT / ".env.example"):
        if not line.strip():
            continue
        commented = re.fullmatch(r"#([A-Z][A-Z0-9_]*)=.*", line)
        if commented:
            variables[commented.group(1)] = None
            continue
        if line.startswith("#"):
            continue
        # Docker's --env-file format: NAME=value taken literally, so no spaces around "=" and no quotes.
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(\S.*)", line)
        assert match, f"not a NAME=value line: {line!r}"
        name, value = match.groups()
        assert value[0] not in "'\"", f"{name}: Docker would keep the quotes"
        variables[name] = value
    return variables


def test_the_env_example_names_only_variables_something_reads() -> None:
    from airflow.configuration import conf

    from nylas_dataverse.hooks.dataverse import DataverseHook
    from nylas_dataverse.hooks.nylas import NylasHook
    from nylas_dataverse.realtime.receiver import WEBHOOK_CONN_ID

    conn_ids = {NylasHook.default_conn_name, DataverseHook.default_conn_name, WEBHOOK_CONN_ID}
    literals = _code_string_literals()
    variables = _env_example()
    assert {"NYLAS_DATAVERSE_STAGING", "NYLAS_DATAVERSE_CONFIG"} <= set(variables)
    for name in variables:
        if name.startswith("AIRFLOW_CONN_"):
            assert name.removeprefix("AIRFLOW_CONN_").lower() in conn_ids, name
        elif name.startswith("AIRFLOW__"):
            section, _, key = name.removeprefix("AIRFLOW__").lower().partition("__")
            assert key in conf.configuration_description[section]["options"], name
        else:
            assert name in literals, f"{name} is not read by include/, dags/ or plugins/"


def test_the_env_example_connections_parse_and_hold_only_placeholders() -> None:
    from airflow.models.connection import Connection

    from nylas_dataverse import get_provider_info

    types = {entry["connection-type"] for entry in get_provider_info()["connection-types"]} | {"generic"}
    connections = {
        name: value for name, value in _env_example().items() if name.startswith("AIRFLOW_CONN_") and value
    }
    assert connections
    for name, value in connections.items():
        conn = Connection.from_json(value, conn_id=name.removeprefix("AIRFLOW_CONN_").lower())
        assert conn.conn_type in types
        for field in (conn.password, conn.login):
            assert field is None or re.fullmatch(r"<[a-z-]+>", field), f"{name}: a real credential?"
        assert conn.password


def _git_ignored(relative: str) -> bool:
    result = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", relative], cwd=PROJECT_ROOT, check=False
    )
    assert result.returncode in (0, 1), "git check-ignore failed"
    return result.returncode == 0


def test_git_ignores_env_and_local_astro_state_but_not_the_templates() -> None:
    for path in (".env", "include/.staging/x/report.json", ".astro/standalone/venv", ".astro/a.local.yaml"):
        assert _git_ignored(path), path
    for path in (".env.example", ".astro/config.yaml", "airflow_settings.yaml", "packages.txt"):
        assert not _git_ignored(path), path


# --- .dockerignore ----------------------------------------------------------------------------------------


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(is exception, regex) per line, compiled the way moby/patternmatcher compiles them."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in _lines(PROJECT_ROOT / ".dockerignore"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        regex, i = "", 0
        while i < len(pattern):
            char = pattern[i]
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    i += 1
                regex += ".*" if i == len(pattern) else "(.*/)?"
                continue
            regex += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
            i += 1
        rules.append((exception, re.compile(f"^{regex}$")))
    return rules


def _docker_excludes(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether `docker build` leaves the path out: the last rule matching it or a parent decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for exception, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not exception
    return excluded


def _tracked(*folders: str) -> Iterable[str]:
    listing = subprocess.run(
        ["git", "ls-files", "--", *folders], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    return listing.stdout.split()


def test_the_image_gets_what_the_build_and_the_dags_need() -> None:
    rules = _dockerignore_rules()
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"], "requirements.txt", "packages.txt"}
    needed |= set(_tracked("dags", "plugins", "include", ".astro", "tests/pipeline", "tests/conftest.py"))
    assert "include/nylas_dataverse/__init__.py" in needed
    assert [path for path in sorted(needed) if _docker_excludes(path, rules)] == []


def test_the_image_gets_no_local_secrets_state_or_staged_mail() -> None:
    rules = _dockerignore_rules()
    for path in (
        ".env",
        "airflow_settings.yaml",
        ".git/config",
        ".venv/bin/python",
        ".staging/nylas_to_dataverse__alice/2026-11-03/messages.jsonl.gz",
        "include/.staging/nylas_to_dataverse__alice/2026-11-03/messages.jsonl.gz",
        ".sandbox/dataverse.sqlite3",
        ".airflow/airflow.db",
        "include/nylas_dataverse.egg-info/PKG-INFO",
        "include/nylas_dataverse/__pycache__/__init__.cpython-312.pyc",
        "sandbox/pyproject.toml",
    ):
        assert _docker_excludes(path, rules), path


# --- packages.txt, Dockerfile, requirements.txt -----------------------------------------------------------


def test_packages_txt_lists_only_debian_package_names() -> None:
    # Whether Runtime 3.x's ONBUILD step strips comments could not be checked; so no comments at all.
    for line in _lines(PROJECT_ROOT / "packages.txt"):
        assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", line.strip()), repr(line)


def test_the_dockerfile_starts_from_the_runtime_for_the_locked_airflow() -> None:
    froms = [
        line.split()[1] for line in _lines(PROJECT_ROOT / "Dockerfile") if line.upper().startswith("FROM ")
    ]
    # The Astro CLI reads the Runtime version from the first FROM; Runtime 3.x tags are
    # <Airflow major.minor>-<Astronomer patch>.
    match = re.fullmatch(r"astrocrpublic\.azurecr\.io/runtime:(\d+)\.(\d+)-(\d+)", froms[0])
    assert match, froms[0]
    airflow = _locked_version("apache-airflow").split(".")
    assert [match.group(1), match.group(2)] == airflow[:2]


def test_requirements_txt_carries_every_dependency_the_no_deps_install_skips() -> None:
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    requirements = _requirements(PROJECT_ROOT / "requirements.txt")
    for dependency in map(Requirement, pyproject["project"]["dependencies"]):
        name = canonicalize_name(dependency.name)
        if name == "apache-airflow":
            assert name not in requirements  # the Runtime image's Airflow is never replaced
            continue
        assert name in requirements, f"{name} would be missing from the image"
        assert requirements[name].specifier == dependency.specifier, name


def test_the_image_has_the_test_runner_the_dev_environment_uses() -> None:
    requirements = _requirements(PROJECT_ROOT / "requirements.txt")
    for name in ("pytest", "pytest-timeout"):
        assert requirements[name].specifier.contains(_locked_version(name)), name


def _image_modules() -> set[str]:
    """Top-level modules of apache-airflow, requirements.txt and what they depend on (this environment)."""
    names = ["apache-airflow", *_requirements(PROJECT_ROOT / "requirements.txt")]
    seen: set[str] = set()
    while names:
        name = canonicalize_name(names.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in map(Requirement, requires):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                names.append(requirement.name)
    return {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(canonicalize_name(dist) in seen for dist in dists)
    }


def test_the_tests_meant_for_the_image_import_only_what_the_image_has() -> None:
    available = _image_modules() | set(sys.stdlib_module_names) | {"nylas_dataverse"}
    for path in IN_IMAGE_TEST_FILES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0]
            for node in tree.body
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        }
        assert imported - available == set(), (
            f"{path.relative_to(PROJECT_ROOT)} imports {imported - available}"
        )


# --- dags/.airflowignore ----------------------------------------------------------------------------------


def test_the_dag_processor_parses_every_file_in_dags_and_nothing_else() -> None:
    from airflow.configuration import conf
    from airflow.utils.file import find_dag_file_paths

    dags = PROJECT_ROOT / "dags"
    # dags/.airflowignore is written in glob syntax, Airflow 3's default.
    assert conf.get("core", "dag_ignore_file_syntax") == "glob"
    found = {Path(path).name for path in find_dag_file_paths(dags, safe_mode=True)}
    assert found == {path.name for path in dags.glob("*.py")}
