"""A notifier that records its calls in a JSON-lines file, so a test can read what an alert said.

Airflow imports it by class path (``recording_notifier.RecordingNotifier``) from the grants file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier


class RecordingNotifier(BaseNotifier):
    template_fields = ("subject", "text")

    def __init__(self, path: str, subject: str | None = None, text: str | None = None, tag: str = "") -> None:
        super().__init__()
        self.path = path
        self.subject = subject
        self.text = text
        self.tag = tag

    def notify(self, context: Any) -> None:
        record = {"tag": self.tag, "subject": self.subject, "text": self.text, "nylas": context.get("nylas")}
        with Path(self.path).open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


class NotANotifier:
    def __init__(self, path: str) -> None:
        self.path = path
