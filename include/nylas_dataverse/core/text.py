"""Text lengths the way Dataverse counts them: UTF-16 code units.

Dataverse columns are .NET strings stored as SQL ``nvarchar``; their ``MaxLength`` counts UTF-16 code units,
so a character outside the Basic Multilingual Plane (most emoji, some CJK) counts twice. Python's ``len``
counts code points, which is why a long subject full of emoji used to be refused on every run.
"""

from __future__ import annotations


def utf16_len(text: str) -> int:
    """UTF-16 code units in ``text`` (a lone surrogate counts as one, as in .NET)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def cut_utf16(text: str, limit: int, mark: str = "") -> str:
    """``text`` itself when it fits in ``limit`` units; else its longest prefix that fits together with
    ``mark``, followed by ``mark``. Never splits a character (so never a surrogate pair)."""
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    if utf16_len(text) <= limit:
        return text
    budget = limit - utf16_len(mark)
    if budget < 0:
        return ""
    used = 0
    for index, char in enumerate(text):
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > budget:
            return text[:index] + mark
        used += width
    return text + mark  # unreachable: text did not fit
