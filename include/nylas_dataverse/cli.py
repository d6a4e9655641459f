"""``nylas-dataverse``: checks an operator runs by hand.

``nylas-dataverse doctor [--grant KEY ...]`` reads the grants file (``NYLAS_DATAVERSE_CONFIG`` or
``include/grants.yaml``) and, through the same Airflow connections the DAGs use (environment variables such as
``AIRFLOW_CONN_NYLAS_DEFAULT``, a secrets backend, or the metadata database), checks for every enabled grant:

- its Nylas grant answers (an expired grant, a rejected API key and a missing connection are told apart);
- its Dataverse application user can get a token and holds every privilege the runs need (``WhoAmI`` and
  ``RetrieveUserPrivileges``; each application user is checked once);
- every Airflow pool the checked grants' tasks run in exists (``pipeline/pools.py``: ``nylas_api`` and each
  application user's pool, read from the metadata database; a missing one is named with the
  ``airflow pools set`` command that creates it; without a reachable database this is a warning).

It prints one line per check and a summary counting the grants file's errors, unknown ``--grant`` names and
failed checks. It exits 0 only when every check passed (warnings allowed), and 1 when anything failed or
there was no grant to check (an empty or unreadable grants file, every grant disabled). It only reads.

``nylas-dataverse assign-users --user CONN [--user CONN ...] [--by count|volume]`` spreads the enabled grants
over several Dataverse application users (one Airflow connection each), evenly or by each grant's emails
created per day in the health summaries (``core/assignment.py`` has the rule), and prints each grant's
``dataverse_conn_id``, every user's share and the Airflow pools to create. It only reads.
``nylas-dataverse plan --grant KEY --day YYYY-MM-DD [--grants-file FILE]`` is a dry run of one grant's day
(``pipeline/plan.py``): it extracts and transforms the day under ``plan-<day>/`` in staging
(``NYLAS_DATAVERSE_STAGING``), asks Dataverse only which emails it already holds, and writes ``plan.json``
and ``plan.csv``; it prints the counts and where the plan is. Nothing is written to Dataverse.
``--grants-file`` previews a changed policy before it is deployed. Like the DAGs, it plans a valid entry
when other entries are invalid (their errors are printed as warnings); an invalid entry of the grant, or a
file that cannot be read, is one ``FAIL`` line saying so, and exit 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TextIO

from nylas_dataverse.core import assignment
from nylas_dataverse.core.config import ConfigError, ConfigResult, GrantConfig, parse_config
from nylas_dataverse.core.errors import Failure, FailureKind
from nylas_dataverse.core.privileges import PrivilegeCheck
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline import pools, preflight
from nylas_dataverse.pipeline.failures import classify
from nylas_dataverse.pipeline.run import Services, plan_day
from nylas_dataverse.pipeline.settings import config_path, load_grants
from nylas_dataverse.pipeline.staging import staging_root
from nylas_dataverse.pipeline.summary import SummaryStore


def _check_nylas(grant: GrantConfig) -> tuple[bool, str]:
    nylas = NylasHook(grant.nylas_conn_id)
    try:
        data = nylas.get_grant(grant.grant_id)
        if data.get("grant_status") == "invalid":
            failure = Failure(FailureKind.GRANT_EXPIRED, f"Nylas reports grant {grant.grant_id} as invalid")
            return False, f"{failure.one_line()} -> {failure.remedy}"
        nylas.list_folders(grant.grant_id)  # a data call: an expired grant answers 401 here
    except Exception as exc:
        failure = classify(exc)
        return False, f"{failure.one_line()} -> {failure.remedy}"
    return True, f"grant {grant.grant_id} ({data.get('provider', '?')}, {data.get('email', '?')}) answers"


def _check_dataverse(grant: GrantConfig) -> tuple[bool, str]:
    try:
        verdict, user_id = preflight.check(grant, DataverseHook(grant.dataverse_conn_id))
    except Exception as exc:
        failure = classify(exc)
        return False, f"{failure.one_line()} -> {failure.remedy}"
    return _privilege_line(verdict, user_id, grant.dataverse_conn_id)


def _privilege_line(verdict: PrivilegeCheck, user_id: str, conn_id: str) -> tuple[bool, str]:
    text = verdict.explain(f"{user_id} (connection {conn_id!r})")
    return verdict.ok, text


_PoolResult = tuple[int, int, list[str], bool]  # checks, failed, lines to print, warned


def _pool_lines(grants: Sequence[GrantConfig], existing: Callable[[], Collection[str]]) -> _PoolResult:
    """Whether every pool the grants' tasks need exists (``pipeline/pools.py``)."""
    needed = pools.required_pools(grants)
    if not needed:
        return 0, 0, [], False
    try:
        present = set(existing())
    except Exception as exc:  # no metadata database here: say so, the other checks still count
        reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:200]
        names = ", ".join(pool.name for pool in needed)
        warning = (
            f"WARN {'pools':<16} not checked, Airflow's metadata database cannot be read here ({reason}); "
            f"run doctor where the scheduler runs, or check that {names} exist with: airflow pools list"
        )
        return 0, 0, [warning], True
    lines: list[str] = []
    missing = [pool for pool in needed if pool.name not in present]
    for pool in missing:
        lines.append(
            f"FAIL {'pools':<16} pool {pool.name} does not exist: the {pool.tasks} tasks of {pool.users()} "
            f"wait for it forever -> {pool.create_command()}"
        )
    found = [pool.name for pool in needed if pool.name in present]
    if found:
        lines.insert(0, f"ok   {'pools':<16} {', '.join(found)} exist{'s' if len(found) == 1 else ''}")
    return len(needed), len(missing), lines, False


_NO_GRANTS = "no enabled grant; add one under grants: in the grants file (docs/configuration.md)"


def doctor(
    grants: Sequence[GrantConfig],
    out: TextIO | None = None,
    *,
    problems: Sequence[str] = (),
    existing_pools: Callable[[], Collection[str]] | None = None,
    nothing_to_check: str = _NO_GRANTS,
) -> int:
    """Check ``grants``; print one line per check and a summary; 0 when every check passed.

    ``problems`` (grants-file errors, unknown ``--grant`` names) are printed first and each counts as a
    failure. ``existing_pools`` lists the Airflow pools (``pipeline/pools.py``); None skips the pool check.
    No grant to check is a failure too, with ``nothing_to_check`` saying why and what to do.
    """
    write = (out or sys.stdout).write
    for problem in problems:
        write(f"FAIL {problem}\n")
    failed = 0
    total = 0
    warnings = 0
    checked: dict[tuple[str, bool], tuple[bool, str]] = {}
    for grant in grants:
        ok, line = _check_nylas(grant)
        total += 1
        failed += not ok
        write(f"{'ok  ' if ok else 'FAIL'} {grant.key:<16} nylas      {line}\n")
        key = (grant.dataverse_conn_id, grant.remove_race_duplicates)
        if key not in checked:
            checked[key] = _check_dataverse(grant)
            ok, text = checked[key]
            total += 1
            failed += not ok
            first, *rest = text.splitlines() or [""]
            write(f"{'ok  ' if ok else 'FAIL'} {grant.key:<16} dataverse  {first}\n")
            for line in rest:
                write(f"{'':<27}{line}\n")
    if existing_pools is not None:
        pool_checks, pool_failed, lines, warned = _pool_lines(grants, existing_pools)
        total += pool_checks
        failed += pool_failed
        warnings += warned
        for line in lines:
            write(f"{line}\n")
    if not grants:
        write(f"FAIL no grants to check: {nothing_to_check}\n")
    parts = [f"{len(problems)} problem(s) with the grants file or --grant"] if problems else []
    if not grants:
        parts.append("nothing checked")
    elif failed:
        parts.append(f"{failed} of {total} check(s) failed")
    if parts:
        write(f"NOT OK: {', '.join(parts)}.\n")
        return 1
    note = f" ({warnings} warning(s) above)" if warnings else ""
    write(f"All {total} checks passed{note}.\n")
    return 0


def assign_users(
    grants: Sequence[GrantConfig],
    users: Sequence[str],
    volumes: dict[str, float | None] | None = None,
    *,
    pool_slots: int = 2,
    out: TextIO | None = None,
) -> dict[str, str]:
    """Print the assignment of ``grants`` to ``users`` (by ``volumes``, else evenly) and return it."""
    write = (out or sys.stdout).write
    by_volume = volumes is not None
    known = volumes or {}
    filled = assignment.with_unknown_filled({g.key: known.get(g.key) for g in grants} if by_volume else {})
    weights = filled if by_volume else {g.key: 1.0 for g in grants}
    chosen = assignment.assign(weights, users)
    totals = assignment.loads(chosen, weights, users)
    unit = "emails/day" if by_volume else "grants"
    how = "volume" if by_volume else "count"
    write(f"# {len(grants)} grants over {len(users)} application users, by {how}\n")
    for user in users:
        count = sum(1 for value in chosen.values() if value == user)
        write(f"#   {user:<24} {count:>6} grants  {totals[user]:>10,.0f} {unit}\n")
    if by_volume:
        guessed = sorted(key for key in filled if known.get(key) is None)
        if guessed:
            write(f"#   no history, counted as the median: {', '.join(guessed)}\n")
    write("# Set each grant's dataverse_conn_id in the grants file to:\n")
    for key, user in chosen.items():
        write(f"{key}: {user}\n")
    write("# Each application user's transform and load tasks run in its own pool; create them with:\n")
    for user in users:
        write(
            f"#   airflow pools set {assignment.pool_name(user)} {pool_slots} "
            f"'Dataverse tasks of application user {user}'\n"
        )
    return chosen


def _volumes(project_root: Path, grants: Sequence[GrantConfig]) -> dict[str, float | None]:
    store = SummaryStore(staging_root(project_root))
    return {grant.key: assignment.daily_volume(store.read_summary(grant.key)) for grant in grants}


def plan(grant: GrantConfig, day: dt.date, project_root: Path, out: TextIO | None = None) -> int:
    write = (out or sys.stdout).write
    try:
        staging = plan_day(grant, staging_root(project_root), Window.for_day(day), Services.for_grant(grant))
    except Exception as exc:  # the operator gets the kind and what to do, as a task's log would say
        failure = classify(exc)
        write(f"FAIL {grant.key} {day}: {failure.one_line()}\n")
        return 1
    data = staging.read_json("plan.json") or {}
    counts = data.get("counts", {})
    write(
        f"Dry run of {grant.key} for {day} (nothing written to Dataverse): "
        + ", ".join(f"{name} {counts.get(name, 0)}" for name in ("create", "already_present", "skip", "fail"))
        + "\n"
    )
    for reason, count in (data.get("skipped_by_reason") or {}).items():
        write(f"  skip {reason}: {count}\n")
    write(f"Plan: {staging.file('plan.json')}\n      {staging.file('plan.csv')}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nylas-dataverse", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("doctor", help="check every grant's Nylas grant and Dataverse privileges")
    check.add_argument("--grant", action="append", default=[], help="only this grant key (repeatable)")
    check.add_argument("--project-root", type=Path, default=Path.cwd(), help="where include/grants.yaml is")
    spread = sub.add_parser("assign-users", help="spread the grants over several Dataverse application users")
    spread.add_argument(
        "--user",
        action="append",
        required=True,
        help="an application user's Airflow connection id (repeatable)",
    )
    spread.add_argument(
        "--by",
        choices=("count", "volume"),
        default="count",
        help="count: the same number of grants each; volume: by emails created per day (health summaries)",
    )
    spread.add_argument("--pool-slots", type=int, default=2, help="slots of each user's pool (default 2)")
    spread.add_argument("--project-root", type=Path, default=Path.cwd(), help="where include/grants.yaml is")
    preview = sub.add_parser("plan", help="dry run of one grant's day: plan.json + plan.csv, no writes")
    preview.add_argument("--grant", required=True, help="the grant key")
    preview.add_argument("--day", required=True, type=dt.date.fromisoformat, help="the UTC day, YYYY-MM-DD")
    preview.add_argument(
        "--grants-file", type=Path, help="a grants file to preview (default: the deployed one)"
    )
    preview.add_argument("--project-root", type=Path, default=Path.cwd(), help="where include/grants.yaml is")
    args = parser.parse_args(argv)
    if args.command == "plan" and args.grants_file is not None:
        config = _read_grants_file(args.grants_file)
    else:
        config = load_grants(args.project_root)
    if args.command == "assign-users":
        for error in config.errors:
            print(f"# not assigned, the grants file has a problem: {error}")
        enabled = [g for g in config.grants if g.enabled]
        try:
            volumes = _volumes(args.project_root, enabled) if args.by == "volume" else None
            assign_users(enabled, args.user, volumes, pool_slots=args.pool_slots)
        except ValueError as exc:
            print(f"FAIL {exc}")
            return 1
        return 1 if config.errors else 0
    if args.command == "plan":
        return _plan_command(config, args.grant, args.day, args.project_root, args.grants_file)
    return _doctor_command(config, args.grant, args.project_root)


def _read_grants_file(path: Path) -> ConfigResult:
    """``--grants-file``: like ``load_grants``, an unreadable file is one clean error, not a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        error = ConfigError(
            str(path),
            None,
            None,
            f"cannot read the grants file ({why}); pass an existing file to --grants-file",
        )
        return ConfigResult(grants=(), errors=(error,))
    return parse_config(text, str(path))


def _plan_command(
    config: ConfigResult, key: str, day: dt.date, project_root: Path, grants_file: Path | None
) -> int:
    """Plan ``key`` when its entry is valid, as the DAGs load the valid grants of a file with errors: the
    other entries' errors are warnings then. Without a valid entry, say why there is no plan."""
    chosen = next((g for g in config.grants if g.key == key), None)
    own = [error for error in config.errors if error.grant == key]
    whole_file = [error for error in config.errors if error.grant is None]
    still = f"; {key} is still planned" if chosen is not None else ""
    for error in config.errors:
        if chosen is not None or (error.grant is not None and error.grant != key):
            print(f"WARN grants file (another entry{still}): {error}")
    if chosen is not None:
        return plan(chosen, day, project_root)
    if own:
        problems = "; ".join(f"key '{e.key}': {e.message}" if e.key else e.message for e in own)
        print(f"FAIL grant {key} is in the file but invalid: {problems}")
    elif whole_file:
        for error in whole_file:
            print(f"FAIL grants file: {error}")
        print(f"FAIL grant {key} not planned: the grants file error(s) above stop every grant from loading")
    else:
        source = grants_file if grants_file is not None else config_path(project_root)
        print(f"FAIL no grant named {key} in {source}")
    return 1


def _doctor_command(config: ConfigResult, keys: Sequence[str], project_root: Path) -> int:
    grants = [g for g in config.grants if g.enabled and (not keys or g.key in keys)]
    problems = [f"grants file: {error}" for error in config.errors]
    unknown = sorted(set(keys) - {g.key for g in config.grants})
    if unknown:
        problems.append(f"no grant named {', '.join(unknown)} in the grants file")
    path = config_path(project_root)
    if keys:
        why = "none of the grants named with --grant is an enabled, valid grant of the file"
    elif config.errors:
        why = f"no valid enabled grant in {path}; fix the grants file errors above"
    elif config.grants:
        why = f"every grant in {path} is disabled; set enabled: true on the ones to sync"
    else:
        why = f"{path} lists no grants; add one under grants: (docs/configuration.md)"
    return doctor(grants, problems=problems, existing_pools=pools.existing_pool_names, nothing_to_check=why)


if __name__ == "__main__":
    sys.exit(main())
