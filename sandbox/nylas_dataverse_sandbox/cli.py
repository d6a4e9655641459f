"""``nylas-dataverse-sandbox``: run the stand-ins, or look inside their persisted state."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path

from nylas_dataverse_sandbox.nylas.switches import BAD_API_KEY_STATUSES, CHOICES, NylasSwitches
from nylas_dataverse_sandbox.sandbox import DEFAULT_PORTS, DEFAULT_START_DAY, Sandbox, SandboxConfig

# serve flag -> (switch, help); every switch of nylas/switches.py has one (docs/sandbox.md: open behaviours)
_NYLAS_SWITCH_FLAGS: dict[str, tuple[str, str]] = {
    "--nylas-received-after": ("received_after", "is received_after inclusive or exclusive (row 3)"),
    "--nylas-received-before": ("received_before", "is received_before exclusive or inclusive (row 3)"),
    "--nylas-received-field": ("received_field", "the timestamp the time filters compare (row 3)"),
    "--nylas-list-body": ("list_body", "do message lists carry body (row 7)"),
    "--nylas-headers-504-over-limit": (
        "headers_504_over_limit",
        "lists with fields=include_headers and a larger limit answer 504; 0 = never (row 8)",
    ),
    "--nylas-retry-after": ("retry_after", "which 429s carry Retry-After (row 11)"),
    "--nylas-imap-headers": ("imap_headers", "do IMAP grants return headers when asked (row 18)"),
    "--nylas-cursor": ("cursor", "next_cursor well-behaved, cycling A,B,A,B or repeating itself"),
    "--nylas-cursor-ttl": ("cursor_ttl_s", "seconds after which a page_token expires; 0 = never (row 19)"),
    "--nylas-bad-api-key-status": ("bad_api_key_status", "the status of a rejected API key"),
    "--nylas-expired-grant-error": ("expired_grant_error", "the error envelope of an expired grant"),
    "--nylas-download-content-type": ("download_content_type", "Content-Type of attachment downloads"),
}


def nylas_switches(args: argparse.Namespace) -> NylasSwitches:
    """The switches the serve flags chose (unset flags keep the defaults)."""
    chosen = {
        switch: getattr(args, switch)
        for switch, _ in _NYLAS_SWITCH_FLAGS.values()
        if getattr(args, switch, None) is not None
    }
    return NylasSwitches().replace(chosen)


def serve_config(args: argparse.Namespace) -> SandboxConfig:
    from nylas_dataverse_sandbox.dataverse import cli_options as dataverse_options
    from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits

    # --- Dataverse and Entra switches (dataverse/cli_options.py) ---
    dataverse_behaviour, dataverse_faults, dataverse_limits = dataverse_options.from_args(args)
    return SandboxConfig(
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
        nylas_switches=nylas_switches(args),
        application_users=args.application_users,
        nylas_extra_grants=args.nylas_extra_grants,
    )


def _serve(args: argparse.Namespace) -> int:
    config = serve_config(args)
    sandbox = Sandbox.start(config)
    print(f"Nylas v3     {sandbox.nylas_url}")
    print(f"Entra ID     {sandbox.entra_url}/<tenant>/oauth2/v2.0/token")
    print(f"Dataverse    {sandbox.dataverse_url}/api/data/v9.2/")
    print(f"Mail days    {config.start_day} .. {config.start_day + dt.timedelta(days=config.days - 1)}")
    changed = config.nylas_switches.changed()
    if changed:
        print("Nylas        " + ", ".join(f"{name}={value}" for name, value in changed.items()))
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


def _add_nylas_switch_flags(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group(
        "Nylas behaviours",
        "answers to what Nylas leaves undocumented (docs/sandbox.md, 'Open behaviours'); "
        "the default is listed first",
    )
    defaults = NylasSwitches()
    for flag, (switch, text) in _NYLAS_SWITCH_FLAGS.items():
        default = getattr(defaults, switch)
        if switch in CHOICES:
            group.add_argument(flag, dest=switch, choices=CHOICES[switch], help=f"{text} (default {default})")
        elif switch == "bad_api_key_status":
            group.add_argument(
                flag, dest=switch, type=int, choices=BAD_API_KEY_STATUSES, help=f"{text} (default {default})"
            )
        else:
            kind = int if isinstance(default, int) else float
            group.add_argument(flag, dest=switch, type=kind, metavar="N", help=f"{text} (default {default})")


def build_parser() -> argparse.ArgumentParser:
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
    serve.add_argument(
        "--application-users",
        type=int,
        default=1,
        metavar="N",
        help="Dataverse application users, each with its own limits (connections dataverse_default, "
        "dataverse_app_2 ... dataverse_app_N)",
    )
    serve.add_argument(
        "--nylas-extra-grants",
        type=int,
        default=0,
        metavar="N",
        help="synthetic mailboxes mbx-001 ... mbx-N besides the seeded ones, listed in the grants file; "
        "their mail comes only from bulk days (POST /_sandbox/bulk)",
    )
    # --- Dataverse and Entra switches: one flag per field (dataverse/cli_options.py) ---
    from nylas_dataverse_sandbox.dataverse import cli_options as dataverse_options

    dataverse_options.add_arguments(serve)
    _add_nylas_switch_flags(serve)
    serve.set_defaults(func=_serve)
    inspect = sub.add_parser(
        "inspect", help="print Dataverse emails with parties and state, or request counters"
    )
    inspect.add_argument("what", choices=["emails", "counters"])
    inspect.add_argument("--state-dir", default=".sandbox")
    inspect.add_argument("--limit", type=int, default=50)
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(func=_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
