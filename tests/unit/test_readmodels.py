"""The read models: one `to_json()` in the contract's shape, beats of any age read without an
error, and hostile text made harmless for a screen without losing the unchanged host's identity."""

from __future__ import annotations

from typing import Any

from control.core.readmodels import (
    FleetSnapshot,
    HeartbeatBody,
    HostEntry,
    MediaView,
    host_state,
)
from control.core.redact import shown

HOST: dict[str, Any] = {
    "name": "mac-1",
    "address": "10.0.0.209",
    "state": "online",
    "declared": True,
    "heartbeat_age_s": 1.2,
    "last_heartbeat_at": "2026-01-01T12:00:00+00:00",
    "session_alive": True,
    "load": {"cpu_percent": 12.0, "mem_percent": 40.1, "load_avg": [0.5, 0.4, 0.3]},
    "running": [
        {"id": 1, "type": "transcribe", "progress": 0.4, "stage": "transcribing", "stalled": False}
    ],
    "enabled_tasks": ["transcribe"],
    "max_concurrent_tasks": 2,
    "idle_reason": None,
    "idle_until": None,
    "counters": {"done_this_run": 3, "done_today": 41},
    "storage": {"ok": True, "error": None, "checked_at": "2026-01-01T12:00:00+00:00"},
    "agent_version": "0.1.0",
    "code_hash": "abc",
    "last_restart": {"reason": "start", "at": "2026-01-01T11:00:00+00:00"},
}
SNAPSHOT: dict[str, Any] = {
    "generated_at": "2026-01-01T12:00:00+00:00",
    "database": {"reachable": True, "schema_version": "5"},
    "queue": {
        "by_type": {"transcribe": {"queued": 1, "running": 1}},
        "totals": {"queued": 1, "running": 1},
    },
    "hosts": [HOST],
}


def test_the_documents_are_the_contracts_both_ways() -> None:
    assert HostEntry.from_json(HOST).to_json() == HOST
    assert list(HostEntry.from_json(HOST).to_json()) == list(HOST)  # the keys in their order
    assert FleetSnapshot.from_json(SNAPSHOT).to_json() == SNAPSHOT


def test_a_beat_from_an_older_or_a_rogue_agent_reads_without_an_error() -> None:
    assert HeartbeatBody.from_json(None) == HeartbeatBody()
    old = HeartbeatBody.from_json({"load": {"cpu_percent": 5}, "storage": {}})
    assert old.storage is None and old.running == () and old.last_restart is None
    rogue = HeartbeatBody.from_json(
        {"load": "x", "running": [{"id": "7", "stalled": "yes"}, "junk"], "storage": {"ok": 1}}
    )
    assert rogue.load == {} and [(t.id, t.stalled) for t in rogue.running] == [(7, False)]
    assert rogue.storage is not None and rogue.storage.ok is False  # only `true` is ok
    body: dict[str, Any] = {
        **dict.fromkeys(("idle_until", "storage", "last_restart")),
        **{"load": {}, "counters": {}, "idle_reason": "cooldown", "running": [], "uptime_s": 9},
    }
    assert HeartbeatBody.from_json(body).to_json() == body  # what it does not know: kept


def test_state_and_freshness_are_decided_in_one_place() -> None:
    assert host_state("online", 1.0) == "online"
    assert host_state("online", 20.0) == "stale"
    assert host_state("online", 100.0, session_alive=True) == "online"  # its session lives
    assert host_state("online", 1.0, enabled=False) == "disabled"
    assert host_state("stopped", 1.0) == "offline"
    assert HostEntry("a", "online", heartbeat_age_s=61.0).fresh
    assert not HostEntry("a", "stale", heartbeat_age_s=2.0).fresh
    silent = HostEntry("a", "offline", heartbeat_age_s=400.0, agent_state="online")
    assert silent.silent_for(300) and not silent.silent_for(500)
    assert not HostEntry("a", "offline", heartbeat_age_s=400.0, agent_state="stopped").silent_for(
        300
    )


def test_a_screen_gets_hostile_text_harmless_and_a_clean_entry_as_it_was() -> None:
    entry = HostEntry.from_json(HOST)
    assert shown(entry) is entry  # nothing to change: the very object (the table skips it)
    snap = FleetSnapshot.from_json(SNAPSHOT)
    assert shown(snap) is snap
    hostile = HostEntry.from_json(
        {
            **HOST,
            "name": "w1\x1b]0;owned\x07",
            "idle_reason": "storage unavailable: \x1b[2J",
            "load": {"password": "hunter2", "cpu_percent": 1.0},
        }
    )
    seen = shown(hostile)
    assert "\x1b" not in seen.name and "\\x1b" in seen.name
    assert seen.idle_reason is not None and "\x1b" not in seen.idle_reason
    assert "hunter2" not in str(seen.load)
    assert seen.running is hostile.running  # what needed nothing is shared


def test_a_media_items_document_is_the_contracts_both_ways() -> None:
    doc: dict[str, Any] = {
        "id": 7,
        "source": "https://www.youtube.com/watch?v=abc",
        "kind": "youtube",
        "title": "t",
        "channel": None,
        "duration_s": 3.5,
        "source_id": None,
        "state": "running",
        "generation": 2,
        "stages": {"download": "succeeded", "transcribe": "running"},
        "outputs": {"audio": "/nas/media/7/audio.wav", "txt": None, "translations": {}},
        "progress": {
            "chunks_done": 1,
            "chunks": 3,
            "running": [
                {"id": 9, "type": "transcribe", "host": "w1", "progress": 0.5, "stage": None}
            ],
        },
        "error": None,
        "created_at": "2026-01-01T12:00:00+00:00",
    }
    view = MediaView.from_json(doc)
    assert view.to_json() == doc and list(view.to_json()) == list(doc)
    assert view.chunk_count("transcribe") == " 1/3" and view.chunk_count("download") == ""
    assert not view.finished and view.transcript is None and view.name == "t"
