"""The seed recipe's approach, as the baseline the pipeline is measured against.

For every message of the day, listed from Nylas page by page like the pipeline does: parse it, apply the
same capture policy, map it with the project's own mapping, then

1. ``GET emails?$filter=messageid eq '<Message-ID>'`` (skip it when Dataverse already has it),
2. ``POST emails`` (Dataverse generates the ``activityid``, as in the recipe),
3. ``PATCH emails(<id>)`` to Completed with status Sent or Received (the recipe says to complete it; a
   create cannot do that, so this is what really has to be sent).

No address is looked up (the recipe does none), so parties carry only ``addressused``; the number of
parties, and so Dataverse's modelled cost per email, is the same as the pipeline's. Requests go through
the project's ``DataverseHook``, so the baseline also waits out 429s instead of failing on them.

``threads`` > 1 is what a competent user of the recipe would write: the same three requests per email, with
that many emails in flight at once (listing and mapping stay on one thread).

``stop_after_s`` ends a run that has already taken longer than the best baseline of the same comparison:
it can no longer be the best, and the serial run would otherwise spend four of the burst's six minutes
confirming that. A stopped run writes no further email and says how far it got (``stopped``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.mapping import EmailRecord, MappingContext, map_message
from nylas_dataverse.core.messages import BadMessage, parse_message
from nylas_dataverse.core.policy import FolderRoles, ThreadTracker, decide
from nylas_dataverse.core.resolution import Directory
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.dataverse_tables import email_complete_body, email_create_body
from nylas_dataverse.hooks.errors import DataverseError
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.hooks.odata import quote_literal
from nylas_dataverse.pipeline.extract import grant_context


@dataclass
class BaselineResult:
    messages: int = 0
    created: int = 0
    already_present: int = 0
    skipped: int = 0
    failed: int = 0
    stopped: bool = False
    lookup_s: float = 0.0
    write_s: float = 0.0
    threads: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "lock"}


def _write_one(record: EmailRecord, dataverse: DataverseHook, result: BaselineResult) -> None:
    started = time.monotonic()
    existing = list(
        dataverse.query(
            "emails",
            filter=f"messageid eq {quote_literal(record.internet_message_id)}",
            select=["activityid"],
        )
    )
    written = time.monotonic()
    outcome = "already_present"
    if not existing:
        body = {key: value for key, value in email_create_body(record).items() if key != "activityid"}
        try:
            new_id = dataverse.create("emails", body)
            dataverse.update("emails", new_id, email_complete_body(record))
        except DataverseError:
            outcome = "failed"
        else:
            outcome = "created"
    finished = time.monotonic()
    with result.lock:
        result.lookup_s += written - started
        setattr(result, outcome, getattr(result, outcome) + 1)
        if outcome != "already_present":
            result.write_s += finished - written


def run_baseline(
    grant: GrantConfig,
    window: Window,
    nylas: NylasHook,
    dataverse: DataverseHook,
    *,
    threads: int = 1,
    stop_after_s: float | None = None,
) -> BaselineResult:
    result = BaselineResult(threads=threads)
    deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
    workers = threads
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    in_flight: set[Future[None]] = set()
    context = grant_context(grant, nylas)
    folder_roles = FolderRoles(context.folder_roles)
    mapping = MappingContext(
        grant_id=grant.grant_id,
        grant_email=context.email,
        owner_systemuser_id=None,
        folder_roles=folder_roles,
        regarding_preference=grant.policy.regarding_preference,
        org_domains=grant.org_domains,
    )
    no_directory = Directory.from_rows([])
    tracker = ThreadTracker()
    after, before = window.query_bounds(grant.query_overlap)
    for raw in nylas.iter_messages(
        grant.grant_id,
        received_after=after,
        received_before=before,
        fields=grant.headers_field,
        page_size=grant.page_size,
    ):
        if deadline is not None and time.monotonic() > deadline:
            result.stopped = True
            break
        result.messages += 1
        try:
            message = parse_message(raw)
        except BadMessage:
            result.failed += 1
            continue
        if not window.contains(message.date):
            result.messages -= 1
            continue
        skip = decide(
            message,
            policy=grant.policy,
            org_domains=grant.org_domains,
            grant_email=context.email,
            folder_roles=folder_roles,
            known_external=lambda _address: False,
            threads=tracker,
        )
        if skip is not None:
            result.skipped += 1
            continue
        record = map_message(message, no_directory, mapping).record
        if pool is None:
            _write_one(record, dataverse, result)
            continue
        in_flight.add(pool.submit(_write_one, record, dataverse, result))
        if len(in_flight) >= 4 * workers:
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()
    if pool is not None:
        for future in in_flight:
            future.result()
        pool.shutdown()
    return result
