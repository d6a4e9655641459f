"""``[core] hostname_callable`` for the Celery workers of ``make cluster``.

Two workers on one machine share its host name, so the task instances they run would all show the same
``hostname``. ``scripts/cluster.py`` gives each worker process its own name in
``NYLAS_DATAVERSE_WORKER_HOSTNAME`` and points ``hostname_callable`` here, as two machines would differ.
Kept free of imports beyond the standard library: every task process imports it.
"""

from __future__ import annotations

import os
import socket

HOSTNAME_ENV = "NYLAS_DATAVERSE_WORKER_HOSTNAME"


def worker_hostname() -> str:
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()
