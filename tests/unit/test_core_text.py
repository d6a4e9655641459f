"""Lengths as Dataverse counts them: UTF-16 code units."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nylas_dataverse.core.text import cut_utf16, utf16_len

EMOJI = "😀"  # outside the Basic Multilingual Plane: two UTF-16 code units


@pytest.mark.parametrize(
    ("text", "units"),
    [("", 0), ("abc", 3), ("é", 1), ("日本", 2), (EMOJI, 2), (f"a{EMOJI}b", 4), ("\ud83d", 1)],
)
def test_utf16_length(text: str, units: int) -> None:
    assert utf16_len(text) == units


def test_text_that_fits_is_kept_as_is() -> None:
    assert cut_utf16("abc", 3, "…") == "abc"


def test_an_astral_character_is_never_split() -> None:
    assert cut_utf16(f"ab{EMOJI}", 3) == "ab"
    assert cut_utf16(f"ab{EMOJI}", 4) == f"ab{EMOJI}"


def test_the_mark_counts_towards_the_limit() -> None:
    cut = cut_utf16(EMOJI * 10, 7, "…")
    assert cut == EMOJI * 3 + "…"
    assert utf16_len(cut) == 7


def test_a_negative_limit_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        cut_utf16("x", -1)


@given(text=st.text(), limit=st.integers(0, 50))
def test_a_cut_always_fits_and_is_a_prefix(text: str, limit: int) -> None:
    cut = cut_utf16(text, limit, "…")
    assert utf16_len(cut) <= limit
    if cut != text:
        assert text.startswith(cut.removesuffix("…"))
