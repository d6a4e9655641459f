"""``nylas-dataverse``: checks an operator runs by hand.

``nylas-dataverse doctor [--grant KEY ...]`` reads the grants file (``NYLAS_DATAVERSE_CONFIG`` or
``include/grants.yaml``) and, through the same Airflow connections the DAGs use (environment variables such as
``AIRFLOW_CONN_NYLAS_DEFAULT``, a secrets backend, or the metadata database), checks for every enabled grant:

- its Nylas grant answers (an expired grant, a rejected API key and a missing connection are told apart);
- its Dataverse application user can get a token and holds every privilege the runs need (``WhoAmI`` and
  ``RetrieveUserPrivileges``; each application user is checked once).

It prints one line per check and exits 0 when everything passed, 1 otherwise. It only reads.

``nylas-dataverse assign-users --user CONN [--user CONN ...] [--by count|volume]`` spreads the enabled grants
over several Dataverse application users (one Airflow connection each), evenly or by each grant's emails
created per day in the health summaries (``core/assignment.py`` has the rule), and prints each grant's
``dataverse_conn_id``, every user's share and the Airflow pools to create. It only reads.
``nylas-dataverse plan --grant KEY --day YYYY-MM-DD [--grants-file FILE]`` is a dry run of one grant's day
(``pipeline/plan.py``): it extracts and transforms the day under ``plan-<day>/`` in staging
(``NYLAS_DATAVERSE_STAGING``), asks Dataverse only which emails it already holds, and writes ``plan.json``
and ``plan.csv``; it prints the counts and where the plan is. Nothing is written to Dataverse.
``--grants-file`` previews a changed policy before it is deployed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from nylas_dataverse.core import assignment
from nylas_dataverse.core.config import GrantConfig, parse_config
from nylas_dataverse.core.errors import Failure, FailureKind
from nylas_dataverse.core.privileges import PrivilegeCheck
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline import preflight
from nylas_dataverse.pipeline.failures import classify
from nylas_dataverse.pipeline.run import Services, plan_day
from nylas_dataverse.pipeline.settings import load_grants
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


def doctor(grants: Sequence[GrantConfig], out: TextIO | None = None) -> int:
    write = (out or sys.stdout).write
    failed = 0
    checked: dict[tuple[str, bool], tuple[bool, str]] = {}
    for grant in grants:
        ok, line = _check_nylas(grant)
        failed += not ok
        write(f"{'ok  ' if ok else 'FAIL'} {grant.key:<16} nylas      {line}\n")
        key = (grant.dataverse_conn_id, grant.remove_race_duplicates)
        if key not in checked:
            checked[key] = _check_dataverse(grant)
            ok, text = checked[key]
            failed += not ok
            first, *rest = text.splitlines() or [""]
            write(f"{'ok  ' if ok else 'FAIL'} {grant.key:<16} dataverse  {first}\n")
            for line in rest:
                write(f"{'':<27}{line}\n")
    write(f"{'All checks passed.' if not failed else f'{failed} check(s) failed.'}\n")
    return 0 if not failed else 1


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
        config = parse_config(args.grants_file.read_text(encoding="utf-8"), str(args.grants_file))
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
    for error in config.errors:
        print(f"FAIL grants file: {error}")
    if args.command == "plan":
        chosen = next((g for g in config.grants if g.key == args.grant), None)
        if chosen is None:
            print(f"FAIL no grant named {args.grant} in the grants file")
            return 1
        return 1 if config.errors else plan(chosen, args.day, args.project_root)
    grants = [g for g in config.grants if g.enabled and (not args.grant or g.key in args.grant)]
    unknown = sorted(set(args.grant) - {g.key for g in config.grants})
    if unknown:
        print(f"FAIL no grant named {', '.join(unknown)} in the grants file")
    code = doctor(grants)
    return 1 if config.errors or unknown else code


if __name__ == "__main__":
    sys.exit(main())
