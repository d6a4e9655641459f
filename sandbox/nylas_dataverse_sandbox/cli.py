"""``nylas-dataverse-sandbox``: run the stand-ins, or look inside their persisted state."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path

from nylas_dataverse_sandbox.sandbox import DEFAULT_PORTS, DEFAULT_START_DAY, Sandbox, SandboxConfig


def _serve(args: argparse.Namespace) -> int:
    from nylas_dataverse_sandbox.dataverse import cli_options as dataverse_options
    from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits

    # --- Dataverse and Entra switches (dataverse/cli_options.py) ---
    dataverse_behaviour, dataverse_faults, dataverse_limits = dataverse_options.from_args(args)
    config = SandboxConfig(
        state_dir=Path(args.state_dir),
        host=args.host,
        nylas_port=args.nylas_port,
        entra_port=args.entra_port,
        dataverse_port=args.dataverse_port,
        start_day=dt.date.fromisoformat(args.start_day),
        days=args.days,
        limits=ServiceProtectionLimits(time_scale=args.time_scale, **dataverse_limits),
        dataverse_behaviour=dataverse_behaviour,
        dataverse_faults=dataverse_faults,
        entra_validate_resource=args.entra_validate_resource,
    )
    sandbox = Sandbox.start(config)
    print(f"Nylas v3     {sandbox.nylas_url}")
    print(f"Entra ID     {sandbox.entra_url}/<tenant>/oauth2/v2.0/token")
    print(f"Dataverse    {sandbox.dataverse_url}/api/data/v9.2/")
    print(f"Mail days    {config.start_day} .. {config.start_day + dt.timedelta(days=config.days - 1)}")
    print(f"Ready. Point clients at it with: source {Path(args.state_dir) / 'connections.env'}")
    print("Ctrl-C stops the sandbox.", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    sandbox.stop()
    print("Sandbox stopped.")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from nylas_dataverse_sandbox.dataverse.backend import DataverseBackend
    from nylas_dataverse_sandbox.entra.backend import EntraBackend

    db_path = Path(args.state_dir) / "dataverse.sqlite3"
    if not db_path.exists():
        print(
            f"No sandbox state at {db_path}; start it with `make sandbox` or `make run` first.",
            file=sys.stderr,
        )
        return 2
    backend = DataverseBackend(db_path=db_path, entra=EntraBackend())
    if args.what == "counters":
        print(json.dumps(backend.counters(), indent=2, sort_keys=True))
        return 0
    emails = backend.emails_with_parties()
    if args.json:
        print(json.dumps(emails, indent=2, ensure_ascii=False))
        return 0
    print(f"{len(emails)} email activities")
    for email in emails[: args.limit]:
        state = f"state={email.get('statecode')}/{email.get('statuscode')}"
        direction = "out" if email.get("directioncode") else "in "
        print(f"- {email.get('activityid')} {direction} {state} {str(email.get('subject', ''))[:70]!r}")
        print(f"    messageid={email.get('messageid')}")
        for party in email.get("email_activity_parties", []):
            target = next(
                (f"{k}={v}" for k, v in party.items() if k.startswith("_partyid") or k == "partyid"), ""
            )
            print(
                f"    party mask={party.get('participationtypemask')} {party.get('addressused', '')} {target}"
            )
    if len(emails) > args.limit:
        print(f"... {len(emails) - args.limit} more (use --limit or --json)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nylas-dataverse-sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run Nylas, Entra ID and Dataverse stand-ins in the foreground")
    serve.add_argument("--state-dir", default=".sandbox")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--nylas-port", type=int, default=DEFAULT_PORTS["nylas"])
    serve.add_argument("--entra-port", type=int, default=DEFAULT_PORTS["entra"])
    serve.add_argument("--dataverse-port", type=int, default=DEFAULT_PORTS["dataverse"])
    serve.add_argument("--start-day", default=DEFAULT_START_DAY.isoformat(), help="first day of seeded mail")
    serve.add_argument("--days", type=int, default=7, help="days of seeded mail")
    serve.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="service-protection window and costs scale (0.01 = 5 min in 3 s)",
    )
    # --- Dataverse and Entra switches: one flag per field (dataverse/cli_options.py) ---
    from nylas_dataverse_sandbox.dataverse import cli_options as dataverse_options

    dataverse_options.add_arguments(serve)
    serve.set_defaults(func=_serve)
    inspect = sub.add_parser(
        "inspect", help="print Dataverse emails with parties and state, or request counters"
    )
    inspect.add_argument("what", choices=["emails", "counters"])
    inspect.add_argument("--state-dir", default=".sandbox")
    inspect.add_argument("--limit", type=int, default=50)
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(func=_inspect)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
