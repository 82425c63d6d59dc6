"""Operators' title patterns run in bounded time (a backtracking pattern froze an agent's event
loop for 5.4 minutes), and what cannot be bounded is refused when the source is added."""

from __future__ import annotations

import pytest

from control.core import ytdlp


def test_a_catastrophic_pattern_matches_in_linear_time() -> None:
    taken = ytdlp.title_filter({"match_title": "(a+)+$"})
    assert taken("a" * 32 + "!") is False  # no match (Python's re backtracks for minutes)
    assert ytdlp.title_filter({"match_title": "^(a+)+$"})("a" * 1500 + "!") is False
    reject = ytdlp.title_filter({"reject_title": "(?i)#shorts"})
    assert reject("Cats #Shorts") is False and reject("A talk") is True


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=x)y", r"(?<!x)y", "x" * 1001])
def test_a_pattern_that_cannot_be_bounded_is_refused(pattern: str) -> None:
    with pytest.raises(ytdlp.BadOption) as refused:
        ytdlp.check({"match_title": pattern}, ytdlp.SOURCE_KEYS)
    assert refused.value.key == "match_title"
