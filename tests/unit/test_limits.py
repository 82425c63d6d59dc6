"""Claiming limits with an injectable clock: no test sleeps."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from agent.limits import Limiter, TypeLimits


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def limiter(
    raw: dict[str, object], clock: FakeClock, task_type: str = "download_youtube"
) -> Limiter:
    return Limiter("mac-1", {task_type: TypeLimits.from_config(raw)}, clock, random.Random(7))


def test_tasks_per_run_then_cooldown() -> None:
    clock = FakeClock(T0)
    lim = limiter({"tasks_per_run": 3, "cooldown": 60}, clock, "transcribe")
    assert lim.decide(["transcribe"]).caps == {"transcribe": 3}
    for _ in range(3):
        assert lim.decide(["transcribe"]).allowed == ("transcribe",)
        lim.claimed("transcribe")
    d = lim.decide(["transcribe"])
    assert d.allowed == () and d.reason == "cooldown" and d.until == T0 + timedelta(seconds=60)
    clock.advance(seconds=59)
    assert lim.decide(["transcribe"]).reason == "cooldown"
    clock.advance(seconds=1)
    assert lim.decide(["transcribe"]).allowed == ("transcribe",)
    lim.claimed("transcribe")
    assert lim.decide(["transcribe"]).caps == {"transcribe": 2}  # a new run started


def test_other_types_are_not_held_up_by_a_cooldown() -> None:
    clock = FakeClock(T0)
    lim = limiter({"tasks_per_run": 1, "cooldown": 600}, clock, "transcribe")
    lim.claimed("transcribe")
    d = lim.decide(["transcribe", "stitch"])
    assert d.allowed == ("stitch",) and d.reason is None


def test_daily_limit_counts_what_the_database_remembers_and_resets_at_midnight() -> None:
    clock = FakeClock(datetime(2026, 3, 2, 23, 0, tzinfo=UTC))
    lim = limiter({"daily_limit": 5}, clock)
    lim.load_daily({"download_youtube": 4}, date(2026, 3, 2))  # claimed before a restart
    assert lim.decide(["download_youtube"]).caps == {"download_youtube": 1}
    lim.claimed("download_youtube")
    d = lim.decide(["download_youtube"])
    assert d.reason == "daily_limit" and d.until == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    clock.advance(hours=1)
    assert lim.decide(["download_youtube"]).allowed == ("download_youtube",)
    assert lim.daily_count("download_youtube") == 0


def test_window_with_an_end_that_moves_each_day() -> None:
    raw = {"window": {"start": "07:00", "end": "21:30", "end_jitter_minutes": 60}}
    ends = []
    for day in range(1, 8):
        clock = FakeClock(datetime(2026, 3, day, 6, 59, tzinfo=UTC))
        lim = limiter(raw, clock)
        d = lim.decide(["download_youtube"])
        assert d.reason == "outside_window" and d.until == datetime(2026, 3, day, 7, 0, tzinfo=UTC)
        clock.now = datetime(2026, 3, day, 21, 29, tzinfo=UTC)
        assert lim.decide(["download_youtube"]).allowed  # always open before 21:30
        clock.now = datetime(2026, 3, day, 22, 31, tzinfo=UTC)
        assert lim.decide(["download_youtube"]).reason == "outside_window"  # shut after 22:30
        # find this day's end, minute by minute
        clock.now = datetime(2026, 3, day, 21, 30, tzinfo=UTC)
        while lim.decide(["download_youtube"]).allowed:
            clock.advance(minutes=1)
        ends.append(clock.now)
        # the same host and day always get the same end (a restart agrees)
        again = limiter(raw, FakeClock(clock.now - timedelta(minutes=1)))
        assert again.decide(["download_youtube"]).allowed
    assert len({e.time() for e in ends}) > 3  # a fresh moment each day


def test_overnight_window() -> None:
    clock = FakeClock(datetime(2026, 3, 2, 23, 30, tzinfo=UTC))
    lim = limiter({"window": {"start": "22:00", "end": "06:00"}}, clock, "transcribe")
    assert lim.decide(["transcribe"]).allowed
    clock.now = datetime(2026, 3, 3, 5, 59, tzinfo=UTC)
    assert lim.decide(["transcribe"]).allowed
    clock.now = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    d = lim.decide(["transcribe"])
    assert d.reason == "outside_window" and d.until == datetime(2026, 3, 3, 22, 0, tzinfo=UTC)


def test_natural_delay_between_two_tasks() -> None:
    clock = FakeClock(T0)
    lim = limiter({"delay": {"min_s": 20, "max_s": 90}}, clock)
    assert lim.decide(["download_youtube"]).caps == {"download_youtube": 1}  # one at a time
    lim.claimed("download_youtube")
    assert lim.decide(["download_youtube"]).reason == "cooldown"  # while it runs
    clock.advance(seconds=300)
    lim.finished("download_youtube")
    d = lim.decide(["download_youtube"])
    assert d.reason == "cooldown" and d.until is not None
    pause = (d.until - clock.now).total_seconds()
    assert 20 <= pause <= 90
    clock.now = d.until
    assert lim.decide(["download_youtube"]).allowed


def test_the_most_telling_reason_wins() -> None:
    clock = FakeClock(datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    lim = Limiter(
        "h",
        {
            "download_youtube": TypeLimits.from_config(
                {"window": {"start": "07:00", "end": "21:00"}}
            ),
            "transcribe": TypeLimits.from_config({"tasks_per_run": 1, "cooldown": 60}),
        },
        clock,
    )
    lim.claimed("transcribe")
    assert lim.decide(["download_youtube", "transcribe"]).reason == "outside_window"


def test_a_limit_on_one_type_caps_that_type_only() -> None:
    """Before, a delay on download_youtube made every claim take one task of any type."""
    lim = limiter({"delay": {"min_s": 20, "max_s": 90}}, FakeClock(T0))
    d = lim.decide(["download_youtube", "noop", "transcribe"])
    assert d.allowed == ("download_youtube", "noop", "transcribe")
    assert d.caps == {"download_youtube": 1}
