"""Start the three stand-ins together and describe them to clients.

``Sandbox.start()`` serves Nylas, Entra ID and Dataverse on 127.0.0.1 over HTTPS (one generated CA) and
writes ``connections.env`` (Airflow connections, CA bundle, grants file) into the state directory, so
``source .sandbox/connections.env`` points the DAGs at it.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.dataverse.app import create_app as create_dataverse_app
from nylas_dataverse_sandbox.dataverse.backend import DataverseBackend
from nylas_dataverse_sandbox.dataverse.behaviour import DataverseBehaviour, DataverseFaults
from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits
from nylas_dataverse_sandbox.entra.app import create_app as create_entra_app
from nylas_dataverse_sandbox.entra.backend import EntraBackend
from nylas_dataverse_sandbox.nylas.app import create_app as create_nylas_app
from nylas_dataverse_sandbox.nylas.backend import NylasBackend
from nylas_dataverse_sandbox.nylas.switches import NylasSwitches
from nylas_dataverse_sandbox.server import RunningServer, serve_in_thread
from nylas_dataverse_sandbox.tls import generate_tls

DEFAULT_PORTS = {"nylas": 9041, "entra": 9042, "dataverse": 9043}
DEFAULT_START_DAY = dt.date(2026, 11, 2)


@dataclass
class SandboxConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    nylas_port: int = DEFAULT_PORTS["nylas"]
    entra_port: int = DEFAULT_PORTS["entra"]
    dataverse_port: int = DEFAULT_PORTS["dataverse"]
    start_day: dt.date = DEFAULT_START_DAY
    days: int = 7
    token_lifetime_s: int = 3599
    limits: ServiceProtectionLimits = field(default_factory=ServiceProtectionLimits)
    list_includes_body: bool = True  # False is the older spelling of nylas_switches list_body="omitted"
    nylas_switches: NylasSwitches = field(default_factory=NylasSwitches)
    # --- Dataverse and Entra switches (docs/sandbox.md, "Open behaviours"); reset() returns to these ---
    dataverse_behaviour: DataverseBehaviour = field(default_factory=DataverseBehaviour)
    dataverse_faults: DataverseFaults = field(default_factory=DataverseFaults)
    entra_validate_resource: bool = False  # tokens only for this sandbox's Dataverse URL
    # Dataverse application users (Entra clients), each with its own service-protection limits; user 1
    # is the connection dataverse_default, user N the connection dataverse_app_<N>.
    application_users: int = 1
    # Synthetic mailboxes besides the seeded ones (load tests; personas.extra_grants): in the grants file,
    # with mail only from bulk days.
    nylas_extra_grants: int = 0


def dataverse_conn_id(user: int) -> str:
    """The Airflow connection of the sandbox's application user ``user`` (see ``application_users``)."""
    return "dataverse_default" if user == 1 else f"dataverse_app_{user}"


@dataclass
class Sandbox:
    config: SandboxConfig
    nylas: NylasBackend
    entra: EntraBackend
    dataverse: DataverseBackend
    servers: dict[str, RunningServer]
    ca_pem: Path

    @classmethod
    def start(cls, config: SandboxConfig) -> Sandbox:
        state = config.state_dir.resolve()
        state.mkdir(parents=True, exist_ok=True)
        tls = generate_tls(state / "tls")
        nylas = NylasBackend(
            api_key=personas.NYLAS_API_KEY,
            start_day=config.start_day,
            days=config.days,
            switches=config.nylas_switches,
            list_includes_body=None if config.list_includes_body else False,
            extra_grants=config.nylas_extra_grants,
        )
        if config.application_users < 1:
            raise ValueError("application_users must be at least 1")
        clients = dict(personas.application_client(n) for n in range(1, config.application_users + 1))
        entra = EntraBackend(token_lifetime_s=config.token_lifetime_s, clients=clients)
        dataverse = DataverseBackend(
            db_path=state / "dataverse.sqlite3",
            entra=entra,
            limits=config.limits,
            behaviour=config.dataverse_behaviour,
            faults=config.dataverse_faults,
        )
        servers: dict[str, RunningServer] = {}
        try:
            servers["entra"] = serve_in_thread(
                "entra", create_entra_app(entra), config.host, config.entra_port, tls
            )
            servers["dataverse"] = serve_in_thread(
                "dataverse", create_dataverse_app(dataverse), config.host, config.dataverse_port, tls
            )
            servers["nylas"] = serve_in_thread(
                "nylas", create_nylas_app(nylas), config.host, config.nylas_port, tls
            )
        except Exception:
            for server in servers.values():
                server.stop()
            raise
        if config.entra_validate_resource:
            entra.restrict_resources([servers["dataverse"].url])
        sandbox = cls(config, nylas, entra, dataverse, servers, tls.ca_pem)
        sandbox.write_client_files()
        return sandbox

    @property
    def nylas_url(self) -> str:
        return self.servers["nylas"].url

    @property
    def entra_url(self) -> str:
        return self.servers["entra"].url

    @property
    def dataverse_url(self) -> str:
        return self.servers["dataverse"].url

    def nylas_connection(self) -> dict[str, object]:
        return {"conn_type": "nylas", "host": self.nylas_url, "password": personas.NYLAS_API_KEY}

    def dataverse_connection(self, user: int = 1) -> dict[str, object]:
        """The Airflow connection of application user ``user`` (1: ``dataverse_default``)."""
        client_id, secret = personas.application_client(user)
        return {
            "conn_type": "dataverse",
            "host": self.dataverse_url,
            "login": client_id,
            "password": secret,
            "extra": {"tenant_id": personas.TENANT_ID, "authority_host": self.entra_url},
        }

    def dataverse_connections(self) -> dict[str, dict[str, object]]:
        """Every application user's connection, by connection id."""
        return {
            dataverse_conn_id(user): self.dataverse_connection(user)
            for user in range(1, self.config.application_users + 1)
        }

    def grants_config(self) -> dict[str, object]:
        return {
            "defaults": {"org_domains": list(personas.ORG_DOMAINS)},
            "grants": [
                {
                    "key": grant.key,
                    "grant_id": grant.grant_id,
                    "email": grant.email,
                    "start_date": self.config.start_day.isoformat(),
                    "display_name": f"{grant.key.title()} ({grant.provider})",
                }
                for grant in self.nylas.grants
                if grant.in_grants_file
            ],
        }

    def environment(self) -> dict[str, str]:
        """What a client process needs to talk to this sandbox."""
        state = self.config.state_dir.resolve()
        return {
            "AIRFLOW_CONN_NYLAS_DEFAULT": json.dumps(self.nylas_connection()),
            **{
                f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(connection)
                for conn_id, connection in self.dataverse_connections().items()
            },
            "REQUESTS_CA_BUNDLE": str(self.ca_pem),
            "NYLAS_DATAVERSE_CONFIG": str(state / "grants.yaml"),
        }

    def write_client_files(self) -> Path:
        state = self.config.state_dir.resolve()
        (state / "grants.yaml").write_text(
            "# Written by the sandbox at start: the sandbox's mailboxes as a grants file.\n"
            + yaml.safe_dump(self.grants_config(), sort_keys=False)
        )
        env_file = state / "connections.env"
        lines = ["# Written by the sandbox at start; `source` it to point the DAGs at the sandbox."]
        lines += [f"export {name}={shlex.quote(value)}" for name, value in self.environment().items()]
        env_file.write_text("\n".join(lines) + "\n")
        env_file.chmod(0o600)
        return env_file

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
