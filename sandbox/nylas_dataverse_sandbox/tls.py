"""A throw-away certificate authority so the sandbox speaks HTTPS like the real services.

MSAL refuses non-HTTPS authorities and the Dataverse client requires https, so at first start the sandbox
has trustme make a CA and a server certificate for 127.0.0.1 and localhost, and writes the CA's PEM for
clients (``REQUESTS_CA_BUNDLE``). Later starts reuse the three files, so a CA bundle that clients were
given stays valid across restarts; delete the directory to get a new CA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path


def generate_tls(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """Create a CA and a server certificate valid for ``hosts``; reuse them if already present.

    trustme's certificates stay valid until the year 3000, so persisted files never expire under a
    long-lived ``.sandbox``. The CA's private key is not kept: nothing signs with it after this call.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    if files.ca_pem.exists() and files.cert_pem.exists() and files.key_pem.exists():
        return files

    ca = trustme.CA(organization_name="nylas-dataverse sandbox")
    server = ca.issue_cert(*hosts, common_name="localhost")
    # Created owner-only before the key is written, so it is never readable by others, even briefly.
    files.key_pem.unlink(missing_ok=True)
    descriptor = os.open(files.key_pem, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(server.private_key_pem.bytes())
    files.cert_pem.write_bytes(server.cert_chain_pems[0].bytes())
    files.ca_pem.write_bytes(ca.cert_pem.bytes())
    return files
