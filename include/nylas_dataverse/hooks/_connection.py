"""Reading hook settings from an Airflow connection: base URLs and declared extras.

Hooks never look at ``conn_type`` (Airflow's CLI stores a type no installed provider registers as
``generic``); they read the fields and the extras declared in ``provider_info.py`` and refuse the rest.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from urllib.parse import urlsplit

from nylas_dataverse.hooks.errors import ConnectionConfigError

# The Airflow UI stores declared form fields as ``extra__<conn_type>__<field>``.
_PREFIXED_EXTRA = re.compile(r"extra__(?P<conn_type>.+?)__(?P<name>[^_].*)")


def read_extras(extra: Mapping[str, object], allowed: Collection[str], *, conn_id: str) -> dict[str, object]:
    """The connection's extras by plain name, empty values dropped; unknown keys are an error.

    ``timeout`` and ``extra__<any type>__timeout`` both mean ``timeout``; when both are set the plain key
    wins. Empty strings and nulls (an untouched UI field) count as unset.
    """
    plain: dict[str, object] = {}
    prefixed: dict[str, object] = {}
    unknown: list[str] = []
    for key, value in extra.items():
        match = _PREFIXED_EXTRA.fullmatch(key)
        name = match.group("name") if match else key
        if name not in allowed:
            unknown.append(key)
        elif value is not None and value != "":
            (prefixed if match else plain)[name] = value
    if unknown:
        raise ConnectionConfigError(
            f"Connection {conn_id!r} has unknown extra field(s) {sorted(unknown)}; "
            f"allowed extras are {sorted(allowed)}. Remove the others from the connection's Extra."
        )
    return {**prefixed, **plain}


def number_extra(
    extras: Mapping[str, object],
    name: str,
    *,
    default: float,
    conn_id: str,
    minimum: float,
    maximum: float | None = None,
    integer: bool = False,
) -> float:
    """A numeric extra (int, float or numeric string) within bounds, else a clear error."""
    raw = extras.get(name, default)
    value: float
    if isinstance(raw, bool):
        value = float("nan")
    elif isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            value = float("nan")
    else:
        value = float("nan")
    out_of_range = not (value >= minimum and (maximum is None or value <= maximum))
    if out_of_range or (integer and not value.is_integer()):
        kind = "an integer" if integer else "a number"
        bounds = f">= {minimum:g}" if maximum is None else f"between {minimum:g} and {maximum:g}"
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra {name!r} must be {kind} {bounds}, got {raw!r}"
        )
    return value


# A URL names these ports by its scheme alone; the UI's Port field may repeat them (443 is its hint).
_SCHEME_PORTS = {"http": 80, "https": 443}


def port_field(port: object, *, conn_id: str) -> int | None:
    """The connection's Port field: None when unset, else a TCP port, else a clear error.

    0 counts as unset: Airflow's UI sends 0 for an empty Port when it tests a connection.
    """
    if port is None or port == "" or port == 0:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: port must be a TCP port between 1 and 65535 (443 for https), "
            f"got {port!r}"
        )
    return port


def normalize_base_url(
    host: str | None, port: int | None, *, default: str | None, conn_id: str, field: str
) -> str:
    """An absolute base URL from the connection host: https when no scheme, no trailing slash.

    ``port`` (the connection's separate Port field) is used when the host names none, and must agree
    with the host when it does. The scheme's own port (443 for https, 80 for http) is left out.
    """
    port_number = port_field(port, conn_id=conn_id)
    text = (host or "").strip()
    if not text:
        if default is None:
            raise ConnectionConfigError(f"Connection {conn_id!r} has no host; set it to the {field}.")
        text = default
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: host {host!r} is not a usable {field} (expected e.g. https://host)"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: host must be a plain {field} without credentials, query or fragment"
        )
    try:
        explicit_port = parts.port
    except ValueError:
        raise ConnectionConfigError(f"Connection {conn_id!r}: host {host!r} has an invalid port") from None
    if explicit_port is not None and port_number is not None and explicit_port != port_number:
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: host {host!r} names port {explicit_port} but the Port field says "
            f"{port_number}; make them agree or clear one"
        )
    netloc = parts.netloc if explicit_port is None else parts.netloc.rsplit(":", 1)[0]
    effective_port = explicit_port if explicit_port is not None else port_number
    if effective_port is not None and effective_port != _SCHEME_PORTS[parts.scheme]:
        netloc = f"{netloc}:{effective_port}"
    return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")


def refuse_path(
    base_url: str, host: str | None, *, conn_id: str, must_be: str, containing: str | None = None
) -> None:
    """Refuse a base URL with a path (any path, or only one containing ``containing``).

    The hooks add the API's own path (``/v3/...``, ``/api/data/v9.2/...``) to the host, so an endpoint URL
    pasted as the host would put every request under it and each would end in a 404.
    """
    path = urlsplit(base_url).path
    if not path or (containing is not None and containing not in path.lower()):
        return
    without = f"the {containing}/... path" if containing is not None else f"a path ({path})"
    raise ConnectionConfigError(
        f"Connection {conn_id!r}: host must be {must_be}, without {without}; got {host!r}"
    )


def about_this_connection(text: str, conn_id: str) -> str:
    """A ``test_connection`` message that says "this connection" instead of naming the connection id.

    The UI's Test button runs the hook under a random temporary connection id, which would only confuse.
    """
    return text.replace(f"Connection {conn_id!r}", "This connection").replace(
        f"connection {conn_id!r}", "this connection"
    )


def required_text(value: str | None, *, conn_id: str, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ConnectionConfigError(f"Connection {conn_id!r} has no {what}; set it in the connection.")
    return text
