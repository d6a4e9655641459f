"""HTML for the health page: Jinja templates (autoescaped) in ``templates/``, and the numbers they format."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from nylas_dataverse.core import health

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

# (sort key, heading, numeric); an empty key is a column that does not sort.
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("name", "Mailbox", False),
    ("provider", "Provider", False),
    ("status", "Status", False),
    ("last_synced_day", "Last day synced", False),
    ("", "Last 30 days", False),
    ("problem_days", "Missing or failed", True),
    ("created", "Created", True),
    ("already_present", "Present", True),
    ("skipped", "Skipped", True),
    ("failed", "Failed", True),
    ("unresolved", "Unresolved", True),
    ("throttled", "429s", True),
    ("throttle_wait_s", "Throttle wait", True),
)
NUMERIC_SORTS = frozenset(key for key, _, numeric in COLUMNS if numeric) | {"last_synced_day"}


def seconds(value: float | None) -> str:
    """A duration as a person reads it: ``0 s``, ``12.5 s``, ``3 min 20 s``, ``2 h 5 min``."""
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.0f} s" if value >= 10 or value == int(value) else f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


@dataclass(frozen=True)
class Query:
    """The overview's filter and sort, as given in the URL (already validated)."""

    q: str = ""
    status: str = ""
    problems: bool = False
    sort: str = "status"
    order: str = "asc"
    window: int = health.WEEK_DAYS

    def params(self, **changes: Any) -> dict[str, str]:
        values = {
            "q": self.q,
            "status": self.status,
            "problems": "1" if self.problems else "",
            "sort": self.sort,
            "order": self.order,
            "window": str(self.window),
            **{key: str(value) for key, value in changes.items()},
        }
        return {key: value for key, value in values.items() if value}

    def query_string(self, **changes: Any) -> str:
        return urlencode(self.params(**changes))

    def sort_link(self, key: str) -> str:
        if key == self.sort:
            order = "asc" if self.order == "desc" else "desc"
        else:
            order = "desc" if key in NUMERIC_SORTS else "asc"
        return self.query_string(sort=key, order=order)


CHART_BAR = 20
CHART_GAP = 4
CHART_HEIGHT = 150
_STACK = ("created", "already_present", "skipped", "failed")


def chart_geometry(days: list[health.ChartDay]) -> dict[str, Any]:
    """Stacked bars (created at the bottom, failed on top) scaled to the tallest day."""
    tallest = max((d.created + d.already_present + d.skipped + d.failed for d in days), default=0)
    scale = (CHART_HEIGHT - 10) / tallest if tallest else 0.0
    bars = []
    for index, day in enumerate(days):
        y = float(CHART_HEIGHT)
        parts = []
        for kind in _STACK:
            value = getattr(day, kind)
            if not value:
                continue
            height = max(1.0, value * scale)
            y -= height
            parts.append({"kind": kind, "y": round(y, 1), "height": round(height, 1)})
        bars.append(
            {
                "day": day.day.isoformat(),
                "x": index * (CHART_BAR + CHART_GAP) + CHART_GAP,
                "parts": parts,
                "empty": not parts,
                "state": day.state.value,
                **{kind: getattr(day, kind) for kind in _STACK},
            }
        )
    return {
        "bars": bars,
        "bar_width": CHART_BAR,
        "width": len(days) * (CHART_BAR + CHART_GAP) + CHART_GAP,
        "height": CHART_HEIGHT,
        "max": tallest,
    }


class Pages:
    def __init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(seconds=seconds, age=seconds, strip_html=strip_html)

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)


STATE_LABELS = {
    health.DayState.SYNCED: "synced",
    health.DayState.MESSAGES_FAILED: "synced, some messages failed",
    health.DayState.RUN_FAILED: "run failed",
    health.DayState.RETRYING: "failed attempt, retrying",
    health.DayState.MISSING: "no run",
    health.DayState.NOT_STARTED: "before the start date",
}


def strip_html(cells: Sequence[health.StripDay]) -> Markup:
    """The calendar strip: one cell per day with its state in a tooltip, and a sentence for screen readers.

    Built here rather than in a template: the overview of 1,000 grants has 30,000 cells.
    """
    tally = Counter(cell.state for cell in cells)
    summary = ", ".join(f"{count} {STATE_LABELS[state]}" for state, count in tally.most_common())
    parts = [f'<span class="strip" role="img" aria-label="last {len(cells)} days: {escape(summary)}">']
    for cell in cells:
        title = f"{cell.day.isoformat()}: {STATE_LABELS[cell.state]}"
        if cell.created:
            title += f", {cell.created} created"
        if cell.failed:
            title += f", {cell.failed} failed"
        if cell.failure_kind:
            title += f" ({cell.failure_kind})"
        parts.append(f'<i class="cell {cell.state.value}" title="{escape(title)}"></i>')
    parts.append("</span>")
    return Markup("".join(parts))  # noqa: S704 - every variable part above is escaped


def run_link(airflow: str, entry: health.RunEntry, dag_id: str) -> Markup:
    """A link to the Airflow run that wrote ``entry`` (or to the DAG's runs when it was not a task)."""
    if entry.run is not None:
        href = f"{airflow}/dags/{quote(entry.run.dag_id)}/runs/{quote(entry.run.run_id, safe='')}"
        text = "run" if entry.run.try_number is None else f"run, try {entry.run.try_number}"
    else:
        href = f"{airflow}/dags/{quote(dag_id)}/runs"
        text = "runs"
    return Markup('<a href="{}" target="_top">{}</a>').format(escape(href), text)


def today_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
