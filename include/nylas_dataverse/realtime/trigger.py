"""An event trigger for Airflow's ``AssetWatcher``: polls the webhook inbox and fires per claimed batch.

It runs in the triggerer. Every ``poll_interval`` seconds it claims the oldest pending notifications
(and retries that are due) as one bounded batch (``settings.BatchLimits``) and yields an event naming
it; Airflow records an asset event and the real-time DAG runs. Several
events that arrive while a run is going are folded into the next run, which processes every open
batch, so no batch depends on its own event. On start it also announces batches that were claimed
but never finished (a crash between claiming and the event being recorded), so none is stranded.

File I/O runs in a worker thread: the triggerer's event loop is shared with other triggers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import ObjectStoragePath
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from nylas_dataverse.realtime.inbox import Inbox

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_S = 0.5
_ERROR_BACKOFF_S = 5.0


class InboxTrigger(BaseEventTrigger):
    """Fires when notifications are pending in the inbox under ``staging_url``."""

    def __init__(self, staging_url: str, poll_interval: float = DEFAULT_POLL_INTERVAL_S) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.staging_url = staging_url
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"staging_url": self.staging_url, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        inbox = Inbox(ObjectStoragePath(self.staging_url))
        try:
            await asyncio.to_thread(inbox.complete_claims)  # a claim the previous run left half done
            stranded = await asyncio.to_thread(inbox.open_batches)
        except Exception:
            log.exception("Could not list open batches in %s", inbox.root)
            stranded = []
        if stranded:
            log.info("%d batch(es) were claimed earlier but not finished; announcing them", len(stranded))
            yield TriggerEvent({"batch_id": stranded[-1].id, "recovered": len(stranded)})  # type: ignore[no-untyped-call]
        while True:
            try:
                batch = await asyncio.to_thread(inbox.claim_batch)
            except Exception:
                # The inbox may be briefly unreachable (object store, NFS); keep watching.
                log.exception("Could not claim notifications from %s; retrying", inbox.root)
                await asyncio.sleep(_ERROR_BACKOFF_S)
                continue
            if batch is None:
                await asyncio.sleep(self.poll_interval)
                continue
            yield TriggerEvent({"batch_id": batch.id})  # type: ignore[no-untyped-call]
