"""Before a load creates anything: can the application user do everything the run needs?

``WhoAmI`` names the user, ``RetrieveUserPrivileges`` lists what its roles allow, and
``core.privileges`` decides. A missing privilege fails the load at once, once, naming the privilege and where
to grant it (kind ``permissions``, not retried), instead of one 403 per email.

The answer is kept for ``CACHE_TTL`` in staging (``_preflight/<connection fingerprint>.json``), so a
thousand mailboxes loading for one application user cost two requests an hour, not two per mailbox. Only a
passing check is kept; a failing one is asked again next time, so a role fixed in the admin center takes
effect at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.privileges import (
    PrivilegeCheck,
    check_privileges,
    required_privileges,
    widest_depths,
)
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.errors import DataversePermissionError
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.staging import write_whole

log = logging.getLogger(__name__)

CACHE_TTL = dt.timedelta(hours=1)


def _cache_file(root: ObjectStoragePath, dataverse: DataverseHook, grant: GrantConfig) -> ObjectStoragePath:
    settings = dataverse.settings
    needed = ",".join(sorted(r.privilege for r in required_privileges(grant)))
    fingerprint = hashlib.sha256(
        f"{settings.env_url}\x00{settings.client_id}\x00{needed}".encode()
    ).hexdigest()
    return root / layout.PREFLIGHT_DIR / f"{fingerprint[:32]}.json"


def check(grant: GrantConfig, dataverse: DataverseHook) -> tuple[PrivilegeCheck, str]:
    """Ask Dataverse (two requests); returns the verdict and who the application user is."""
    who = dataverse.whoami()
    user_id = str(who.get("UserId", ""))
    held = widest_depths(dataverse.user_privileges(user_id))
    return check_privileges(required_privileges(grant), held), user_id


def ensure_privileges(
    grant: GrantConfig,
    dataverse: DataverseHook,
    root: ObjectStoragePath | None,
    *,
    now: dt.datetime | None = None,
) -> None:
    """Raise ``DataversePermissionError`` when the application user lacks a privilege the run needs."""
    now = now or dt.datetime.now(dt.UTC)
    cache = _cache_file(root, dataverse, grant) if root is not None else None
    if cache is not None and _fresh(cache, now):
        return
    verdict, user_id = check(grant, dataverse)
    who = f"{user_id} (connection {dataverse.dataverse_conn_id!r})"
    if not verdict.ok:
        raise DataversePermissionError(verdict.explain(who), status=403)
    if verdict.narrow:
        log.warning("%s", verdict.explain(who))
    if cache is not None:
        try:
            write_whole(cache, json.dumps({"checked_at": now.isoformat(), "user_id": user_id}).encode())
        except OSError:  # the cache only saves requests
            log.debug("Could not keep the privilege check in %s", cache, exc_info=True)


def _fresh(cache: ObjectStoragePath, now: dt.datetime) -> bool:
    try:
        if not cache.exists():
            return False
        data: Any = json.loads(cache.read_bytes())
        checked = dt.datetime.fromisoformat(str(data["checked_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return dt.timedelta(0) <= now - checked < CACHE_TTL
