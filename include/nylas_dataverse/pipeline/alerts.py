"""Alerts a team can route: the grants file's ``alerts`` section turned into Airflow notifiers.

Every grant DAG's tasks get an ``on_failure_callback`` (``AlertCallback``) when notifiers are configured.
Airflow calls it once a task has failed for good (not on an attempt that will be retried). It sends:

- the ``grant_expired`` notifiers when the task failed because the Nylas grant expired or was revoked
  (the ``on_failure`` ones when no ``grant_expired`` notifier is configured);
- the ``on_failure`` notifiers for every other failure.

Each notifier is built from its class path and keyword arguments for every alert. Its templated fields
(e.g. ``SmtpNotifier``'s ``subject`` and ``html_content``) are rendered by Airflow with the task's context
plus ``nylas``: ``grant``, ``grant_id``, ``email``, ``day``, ``kind``, ``reason``, ``remedy``, ``message``
(the whole alert line), ``event``, ``dag_id``, ``run_id``, ``task_id``. Message arguments left unset
(``subject``, ``title``, ``text``, ``message``, ``body``, ``html_content``, where the notifier's
constructor has them) are filled with the alert, so a notifier configured with only its recipient still
names the grant, the day and the reason. A notifier that fails is logged; the others still run.
"""

from __future__ import annotations

import datetime as dt
import html
import importlib
import inspect
import logging
from collections.abc import Mapping
from typing import Any

from nylas_dataverse.core.config import AlertsConfig, ConfigError, GrantConfig, NotifierConfig
from nylas_dataverse.core.errors import Failure, FailureKind
from nylas_dataverse.pipeline.failures import alert_line, classify

log = logging.getLogger(__name__)

CONTEXT_KEY = "nylas"
# Where attempt() leaves the day and classified failure for the callback (on the exception itself).
EXCEPTION_ATTRIBUTE = "nylas_dataverse_alert"
_SUBJECT_ARGUMENTS = ("subject", "title")
_TEXT_ARGUMENTS = ("text", "message", "body")
_HTML_ARGUMENTS = ("html_content",)


def notifier_class(config: NotifierConfig) -> type[Any]:
    """The notifier's class; ``ConfigError`` when it cannot be imported or is not a ``BaseNotifier``."""
    from airflow.sdk import BaseNotifier

    module_name, _, name = config.class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            "grants file", None, "alerts", f"notifier {config.class_path!r} cannot be imported ({exc})"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
        raise ConfigError(
            "grants file", None, "alerts", f"{config.class_path!r} is not an Airflow notifier (BaseNotifier)"
        )
    return cls


def check_alerts(alerts: AlertsConfig, source: str) -> list[ConfigError]:
    """Every notifier importable, and its keyword arguments accepted by its constructor."""
    problems: list[ConfigError] = []
    for config in alerts.notifiers():
        try:
            cls = notifier_class(config)
            inspect.signature(cls).bind_partial(**config.kwargs)
        except ConfigError as exc:
            problems.append(ConfigError(source, None, "alerts", exc.message))
        except TypeError as exc:
            problems.append(ConfigError(source, None, "alerts", f"notifier {config.class_path}: {exc}"))
    return problems


def alert_details(
    grant: GrantConfig, day: str | None, failure: Failure, context: Mapping[str, Any], event: str
) -> dict[str, Any]:
    ti = context.get("ti")
    return {
        "event": event,
        "grant": grant.key,
        "grant_id": grant.grant_id,
        "email": grant.email,
        "day": day,
        "kind": failure.kind.value,
        "reason": failure.one_line(),
        "remedy": failure.remedy,
        "message": alert_line(grant, day, failure),
        "dag_id": grant.dag_id,
        "run_id": context.get("run_id"),
        "task_id": getattr(ti, "task_id", None),
    }


def _defaults(cls: type[Any], given: Mapping[str, Any], details: Mapping[str, Any]) -> dict[str, Any]:
    """The alert for the notifier's message arguments that the grants file left unset."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}
    day = f" on {details['day']}" if details["day"] else ""
    subject = f"Nylas to Dataverse: {details['kind']} for grant {details['grant']}{day}"
    filled: dict[str, Any] = {}
    for names, text in (
        (_SUBJECT_ARGUMENTS, subject),
        (_TEXT_ARGUMENTS, details["message"]),
        (_HTML_ARGUMENTS, f"<p>{html.escape(details['message'])}</p>"),
    ):
        for name in names:
            if name in parameters and name not in given:
                filled[name] = text
    return filled


def _day_from_context(context: Mapping[str, Any]) -> str | None:
    start = context.get("data_interval_start")
    return start.astimezone(dt.UTC).date().isoformat() if isinstance(start, dt.datetime) else None


class AlertCallback:
    """A task's ``on_failure_callback``: sends the grant's configured notifiers (module docstring)."""

    def __init__(self, grant: GrantConfig, alerts: AlertsConfig) -> None:
        self.grant = grant
        self.alerts = alerts

    def __repr__(self) -> str:
        return f"AlertCallback({self.grant.key})"

    def __call__(self, context: Mapping[str, Any]) -> None:
        error = context.get("exception")
        recorded = getattr(error, EXCEPTION_ATTRIBUTE, None)
        if isinstance(recorded, tuple) and len(recorded) == 2 and isinstance(recorded[1], Failure):
            day, failure = recorded
        else:
            if isinstance(error, BaseException):
                failure = classify(error)
            else:
                failure = Failure(FailureKind.UNEXPECTED, str(error or "the task failed"))
            day = _day_from_context(context)
        expired = failure.kind is FailureKind.GRANT_EXPIRED and self.alerts.grant_expired
        event = "grant_expired" if expired else "on_failure"
        notifiers = self.alerts.grant_expired if expired else self.alerts.on_failure
        details = alert_details(self.grant, day, failure, context, event)
        for config in notifiers:
            self.send(config, details, context)

    def send(self, config: NotifierConfig, details: Mapping[str, Any], context: Mapping[str, Any]) -> None:
        try:
            cls = notifier_class(config)
            kwargs = {**_defaults(cls, config.kwargs, details), **config.kwargs}
            notifier = cls(**kwargs)
            notifier({**context, CONTEXT_KEY: dict(details)})
        except Exception:  # one broken notifier must not keep the others from sending
            log.exception("Alert notifier %s failed for grant %s", config.class_path, self.grant.key)
            return
        log.info("Sent %s alert for grant %s through %s", details["event"], self.grant.key, config.class_path)
