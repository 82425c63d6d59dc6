"""The heartbeat is written when its content moves, or once a minute (a liveness touch: the
agent's database session says it is alive in between); load figures alone ride along with the
next write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from control.core import fleet
from control.core.readmodels import HeartbeatBody, HostEntry


def beat(cpu: float, progress: float = 0.5, state: str = "online", **extra: Any) -> fleet.Heartbeat:
    return fleet.Heartbeat(
        name="w1",
        address=None,
        agent_state=state,
        agent_version="t",
        code_hash="0",
        pid=1,
        started_at=datetime.now(UTC),
        enabled_tasks=["noop"],
        declared=True,
        body=HeartbeatBody.from_json(
            {
                "load": {"cpu_percent": cpu},
                "uptime_s": cpu * 10,
                "running": [{"id": 7, "type": "transcribe", "progress": progress}],
                "idle_reason": None,
                **extra,
            }
        ),
    )


def test_an_unchanged_heartbeat_is_written_once_a_minute() -> None:
    gate = fleet.BeatGate()
    every = fleet.LIVENESS_EVERY
    written = [gate.due(beat(cpu=float(i))) for i in range(2 * every + 1)]  # only load moves
    assert [i for i, w in enumerate(written) if w] == [0, every, 2 * every]
    assert fleet.HEARTBEAT_INTERVAL_S * every == 60.0


def test_a_change_of_content_is_written_at_once() -> None:
    gate = fleet.BeatGate()
    assert gate.due(beat(1.0))
    assert gate.due(beat(1.0, progress=0.6))  # progress moved a step
    assert not gate.due(beat(2.0, progress=0.61))  # below a step: rides along
    assert gate.due(beat(2.0, progress=0.61, state="draining"))
    assert gate.due(beat(2.0, progress=0.61, state="draining", idle_reason="cooldown"))


def test_the_storage_checks_time_rides_along_but_what_it_found_is_written() -> None:
    def storage(ok: bool, at: str) -> dict[str, Any]:
        return {"storage": {"ok": ok, "error": None if ok else "not mounted", "checked_at": at}}

    gate = fleet.BeatGate()
    assert gate.due(beat(1.0, **storage(True, "2026-11-28T00:00:00+00:00")))
    assert not gate.due(beat(1.0, **storage(True, "2026-11-28T00:00:05+00:00")))
    assert gate.due(beat(1.0, **storage(False, "2026-11-28T00:00:10+00:00")))


def test_the_dashboard_reads_an_idle_hosts_beat_as_fresh_until_the_next_write_is_late() -> None:
    """An unchanged beat is written once a minute, so a healthy idle host's beat is up to a
    minute old: the dashboard says `ok` for it, and its age only when late."""
    from tui import format as fmt

    def aged(age: float, state: str = "online") -> str:
        return fmt.beat_age(HostEntry("w1", state, heartbeat_age_s=age)).plain

    gap = fleet.HEARTBEAT_INTERVAL_S * fleet.LIVENESS_EVERY
    assert aged(gap + 1.0) == "ok"
    assert aged(gap + 5.0) == "1m"
    assert aged(fleet.HUNG_AFTER_S) == "3m"
    assert aged(2.0, "stale") == "2s"  # a late host's age is the news, however young
