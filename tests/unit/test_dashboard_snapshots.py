"""Snapshots of each dashboard screen, with fixed data (no clock on screen, ages come with the
data) so they are the same on every run. `pytest --snapshot-update` rewrites them after an
intended change; look at the SVGs before committing."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any

from control.core.readmodels import FleetSnapshot, MediaView
from control.head.agents import CommandResult
from control.head.api import TaskQuery
from tui.app import Dashboard

T0 = datetime(2026, 11, 22, 14, 5, 0)
STATES = ("queued", "scheduled", "running", "succeeded", "failed", "cancelled")


def _counts(**kw: int) -> dict[str, int]:
    return {s: kw.get(s, 0) for s in STATES}


def _host(name: str, state: str, age: float | None, **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "address": "10.0.0.1",
        "state": state,
        "declared": True,
        "heartbeat_age_s": age,
        "last_heartbeat_at": None if age is None else (T0 - timedelta(seconds=age)).isoformat(),
        "load": kw.get("load", {}),
        "running": kw.get("running", []),
        "enabled_tasks": ["transcribe"],
        "idle_reason": kw.get("idle"),
        "idle_until": kw.get("until"),
        "counters": kw.get("counters", {}),
        "agent_version": "0.1.0",
        "code_hash": kw.get("code", "abc"),
    }


class FixedPlane:
    label = "postgresql://contentctl@head.local/contentctl"
    code_hash = "abc"

    async def fleet(self) -> FleetSnapshot:
        doc = self.document()
        return FleetSnapshot.from_json(doc, throughput=doc["throughput"])

    def document(self) -> dict[str, Any]:
        return {
            "generated_at": T0.isoformat(),
            "database": {"reachable": True, "schema_version": "3"},
            "queue": {
                "by_type": {
                    "download_youtube": _counts(queued=12, succeeded=340, failed=2),
                    "extract_audio": _counts(running=1, succeeded=338),
                    "transcribe": _counts(queued=40, running=3, succeeded=1200, failed=1),
                    "stitch": _counts(succeeded=300),
                },
                "totals": _counts(queued=52, running=4, succeeded=2178, failed=3),
            },
            "throughput": [3, 5, 8, 13, 9, 7, 12, 15, 11, 10, 14, 16, 12, 9, 4],
            "hosts": [
                _host(
                    "mac-1",
                    "online",
                    1.2,
                    load={"cpu_percent": 87, "mem_percent": 61},
                    running=[
                        {
                            "id": 4411,
                            "type": "transcribe",
                            "progress": 0.4,
                            "stage": "transcribing",
                            "stalled": False,
                        }
                    ],
                    counters={"done_today": 41},
                ),
                _host(
                    "mac-2",
                    "online",
                    3.0,
                    load={"cpu_percent": 12, "mem_percent": 30},
                    idle="cooldown",
                    until="2026-11-22T14:35:00+00:00",
                    counters={"done_today": 12},
                    code="old",
                ),
                _host(
                    "gpu-1",
                    "draining",
                    2.1,
                    load={"cpu_percent": 55, "mem_percent": 70},
                    running=[
                        {
                            "id": 4420,
                            "type": "transcribe",
                            "progress": 0.9,
                            "stage": "transcribing",
                            "stalled": True,
                        }
                    ],
                    idle="draining",
                ),
                _host("nas-dl", "stale", 22.0, load={"cpu_percent": 5, "mem_percent": 20}),
                _host("mac-3", "offline", None),
                _host("old-vm", "disabled", None),
            ],
        }

    async def tasks(self, query: TaskQuery) -> list[dict[str, Any]]:
        rows = []
        for i, (t, st, host, err) in enumerate(
            [
                ("transcribe", "running", "mac-1", None),
                ("download_youtube", "failed", "nas-dl", "HTTP Error 404: Not Found"),
                ("transcribe", "queued", None, None),
                ("stitch", "succeeded", "mac-2", None),
            ]
        ):
            rows.append(
                {
                    "id": 4411 - i,
                    "type": t,
                    "state": st,
                    "priority": 0,
                    "attempts": 1,
                    "max_attempts": 4,
                    "host": host,
                    "progress": 0.4 if st == "running" else None,
                    "progress_stage": None,
                    "error_message": err,
                    "media_id": 7,
                }
            )
        return rows

    async def task(self, task_id: int) -> dict[str, Any] | None:
        return {
            "id": task_id,
            "type": "transcribe",
            "state": "running",
            "priority": 0,
            "attempts": 1,
            "max_attempts": 4,
            "host": "mac-1",
            "payload": {"media_id": 7, "chunk": 2, "start_s": 1190.0, "end_s": 1795.0},
            "result": None,
            "error": None,
            "error_type": None,
            "error_traceback": None,
            "progress": 0.4,
            "progress_stage": "transcribing",
            "media_id": 7,
            "created_at": T0,
            "started_at": T0,
            "finished_at": None,
            "run_at": T0,
        }

    async def logs(
        self, host: str | None, after_id: int = 0, limit: int = 500
    ) -> list[dict[str, Any]]:
        if after_id:
            return []
        return [
            {"id": 1, "host": "mac-1", "ts": T0, "level": "INFO", "message": "agent mac-1 started"},
            {
                "id": 2,
                "host": "mac-1",
                "ts": T0,
                "level": "INFO",
                "message": "task 4411 (transcribe) started, attempt 1/4",
            },
            {
                "id": 3,
                "host": "nas-dl",
                "ts": T0,
                "level": "WARNING",
                "message": "task 4410 (download_youtube) failed: HTTP Error 404",
            },
            {
                "id": 4,
                "host": "gpu-1",
                "ts": T0,
                "level": "ERROR",
                "message": "database unreachable; retrying in 2 s",
            },
        ]

    async def media(self, limit: int = 200, source_id: int | None = None) -> list[MediaView]:
        doc: dict[str, Any] = {
            "id": 7,
            "source": "https://www.youtube.com/watch?v=abc",
            "kind": "youtube",
            "title": "Fleet operations, episode 12",
            "channel": "Ops",
            "duration_s": 3605.0,
            "state": "running",
            "generation": 1,
            "stages": {
                "download": "succeeded",
                "extract_audio": "succeeded",
                "transcribe": "running",
                "stitch": "pending",
                "translate": "pending",
            },
            "outputs": {
                "audio": "/nas/media/7/audio.wav",
                "transcript_json": None,
                "srt": None,
                "vtt": None,
                "txt": None,
                "translations": {},
            },
            "progress": {
                "chunks_done": 4,
                "chunks": 7,
                "running": [
                    {
                        "id": 4411,
                        "type": "transcribe",
                        "host": "mac-1",
                        "progress": 0.4,
                        "stage": "transcribing",
                    }
                ],
            },
            "error": None,
        }
        return [MediaView.from_json(doc)]

    async def retry(self, ids: list[int]) -> list[int]:
        return ids

    async def cancel(self, ids: list[int]) -> list[dict[str, Any]]:
        return []

    async def raise_priority(self, task_id: int, by: int = 10) -> int | None:
        return by

    async def command(self, host: str, command: str, args: Any = None) -> CommandResult:
        return CommandResult(host, True, command)

    async def configure_host(
        self, host: str, enabled_tasks: list[str], max_concurrent_tasks: int
    ) -> str:
        return "configured"

    async def start_agent(self, host: str) -> str:
        return "started"

    def ssh_hosts(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "mac-7",
                "address": "10.0.0.7:22",
                "user": "signal4",
                "env": "uv",
                "base_dir": "~/contentctl",
                "enabled": True,
            },
            {
                "name": "gpu-1",
                "address": "10.0.0.9:22",
                "user": "ops",
                "env": "conda (content-processing)",
                "base_dir": "/srv/contentctl",
                "enabled": True,
            },
        ]

    async def provision(self, host: str, *, dry_run: bool, on_step: Any) -> dict[str, Any]:
        for name, status, secs, detail in (
            ("facts", "ok", 0.3, "Darwin arm64 (Apple silicon), Python 3.11.9, 212 GB free"),
            ("code", "would-change", 0.4, "3 file(s) to send, 0 to delete"),
            ("environment", "ok", 0.1, "uv environment matches uv.lock"),
            ("nas credential", "ok", 0.2, "NAS password in the worker's keychain"),
            ("database", "ok", 0.2, "postgresql://contentctl@head:5432/contentctl"),
            ("agent service", "ok", 0.1, "launchd"),
            ("start", "would-change", 0.0, "restart the agent"),
        ):
            on_step({"name": name, "status": status, "seconds": secs, "detail": detail})
        return {"host": host, "failed": False, "changed": True}

    async def close(self) -> None:
        pass


def _app() -> Dashboard:
    app = Dashboard(FixedPlane(), refresh_s=3600)
    return app


def test_fleet_screen(snap_compare: Any) -> None:
    assert snap_compare(_app(), terminal_size=(140, 30))


def test_fleet_screen_80x24(snap_compare: Any) -> None:
    assert snap_compare(_app(), terminal_size=(80, 24))


def test_tasks_screen(snap_compare: Any) -> None:
    assert snap_compare(_app(), press=["2"], terminal_size=(140, 30))


def test_logs_screen(snap_compare: Any) -> None:
    assert snap_compare(_app(), press=["3"], terminal_size=(120, 20))


def test_media_screen(snap_compare: Any) -> None:
    assert snap_compare(_app(), press=["4"], terminal_size=(140, 24))


def test_drain_asks_first(snap_compare: Any) -> None:
    assert snap_compare(_app(), press=["d"], terminal_size=(100, 24))


async def test_the_database_password_never_reaches_the_screen() -> None:
    """The real control plane on a database that cannot be reached: the screen (label,
    banner with the connection error) shows the URL without its password."""
    from control.core.inventory import Inventory
    from control.core.settings import DatabaseTarget
    from control.head.api import ControlPlane

    plane = ControlPlane(
        DatabaseTarget("postgresql://ops:s3cr3t-pw@127.0.0.1:9/contentctl"), Inventory(None)
    )
    app = Dashboard(plane, refresh_s=0.2)
    async with app.run_test(size=(140, 30)) as pilot:
        banner = app.screen.query_one("#banner")
        for _ in range(100):
            await pilot.pause(0.1)
            if banner.display:
                break
        svg = app.export_screenshot()
    screen = html.unescape("".join(re.findall(r">([^<]*)</text>", svg))).replace("\xa0", " ")
    assert "unreachable" in screen or "cannot reach" in screen, screen[:400]
    assert "s3cr3t-pw" not in screen


def test_provision_screen_plan(snap_compare: Any) -> None:
    assert snap_compare(_app(), press=["5", "p"], terminal_size=(140, 20))


async def test_changed_cells_show_and_the_rest_stays() -> None:
    """The hosts table re-renders only changed rows (LiveTable): what changed must show."""

    class Changing(FixedPlane):
        calls = 0

        def document(self) -> dict[str, Any]:
            snap = super().document()
            Changing.calls += 1
            if Changing.calls > 5:  # after the table has settled (sizes, layout)
                snap["hosts"][1]["load"]["cpu_percent"] = 99  # mac-2: 12% -> 99%
                snap["hosts"][0]["running"] = []  # mac-1 finished its task
            return snap

    app = Dashboard(Changing(), refresh_s=0.2)
    async with app.run_test(size=(140, 30)) as pilot:
        for _ in range(50):
            await pilot.pause(0.1)
            if Changing.calls > 7:
                break
        svg = app.export_screenshot()
    screen = html.unescape("".join(re.findall(r">([^<]*)</text>", svg))).replace("\xa0", " ")
    assert "99%" in screen and "12%" not in screen
    assert "transcribe ━━╌╌" not in screen  # mac-1's finished task is gone
    assert "87%" in screen and "STALLED" in screen  # untouched rows still there


async def test_a_database_slower_than_the_refresh_still_paints() -> None:
    """A fetch that takes longer than the refresh interval (a remote database, a fresh one
    being migrated) must complete: the next tick may not cancel it."""
    import asyncio

    class Slow(FixedPlane):
        async def fleet(self) -> FleetSnapshot:
            await asyncio.sleep(0.5)
            return await super().fleet()

    app = Dashboard(Slow(), refresh_s=0.2)
    async with app.run_test(size=(140, 30)) as pilot:
        hosts = app.screen.query_one("#hosts")
        for _ in range(50):
            await pilot.pause(0.1)
            if hosts.row_count:
                break
        assert hosts.row_count == 6


async def test_moving_the_cursor_never_waits_for_the_detail_read() -> None:
    """Before, each cursor move awaited the task's detail read in the key handler: eight
    presses with a 0.3 s read took 2.5 s."""
    import asyncio
    import time

    class SlowDetail(FixedPlane):
        async def task(self, task_id: int) -> dict[str, Any] | None:
            await asyncio.sleep(0.3)
            return await super().task(task_id)

    app = Dashboard(SlowDetail(), refresh_s=5)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.press("2")
        table = app.screen.query_one("#tasks")
        for _ in range(50):
            await pilot.pause(0.05)
            if table.row_count == 4:
                break
        t0 = time.monotonic()
        for _ in range(4):
            await pilot.press("down", "up")
        assert time.monotonic() - t0 < 1.2  # eight presses, no 0.3 s wait each
        assert table.cursor_row == 0


async def test_a_second_provision_press_does_not_cancel_the_run_in_flight() -> None:
    """Before, `p` twice cancelled the first run (an exclusive worker), and a plan could
    cancel an apply."""
    import asyncio

    finished: list[str] = []

    class SlowProvision(FixedPlane):
        async def provision(self, host: str, *, dry_run: bool, on_step: Any) -> dict[str, Any]:
            await asyncio.sleep(0.6)
            finished.append(host)
            return await super().provision(host, dry_run=dry_run, on_step=on_step)

    app = Dashboard(SlowProvision(), refresh_s=5)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.press("5")
        await pilot.pause(0.2)
        await pilot.press("p")
        await pilot.pause(0.1)
        await pilot.press("p")
        for _ in range(40):
            await pilot.pause(0.1)
            if finished:
                break
        await pilot.pause(0.3)
        said = [n.message for n in app._notifications]
    assert finished == ["mac-7"]  # the first run completed, exactly one ran
    assert "a provisioning run is going on" in said


async def test_a_host_that_starts_later_joins_the_logs_host_cycle() -> None:
    """Before, the Logs screen read the host list once: a host started later never came up
    when `h` cycled through the hosts."""
    from datetime import timedelta

    class Later(FixedPlane):
        calls = 0

        async def logs(
            self, host: str | None, after_id: int = 0, limit: int = 500
        ) -> list[dict[str, Any]]:
            Later.calls += 1
            if Later.calls == 4:  # a new host's first line, after the first paint
                ts = T0 + timedelta(seconds=5)
                return [{"id": 99, "host": "late-1", "ts": ts, "level": "INFO", "message": "hi"}]
            return await super().logs(host, after_id, limit)

    app = Dashboard(Later(), refresh_s=0.1)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.press("3")
        for _ in range(50):
            await pilot.pause(0.1)
            if Later.calls > 5:
                break
        seen = []
        for _ in range(10):
            await pilot.press("h")
            seen.append(app.screen.host)
    assert "late-1" in seen


async def test_p_on_a_fleet_host_opens_its_provisioning_plan() -> None:
    from textual.widgets import RichLog

    from tui.screens.provision import ProvisionScreen

    app = Dashboard(FixedPlane(), refresh_s=5)
    async with app.run_test(size=(140, 30)) as pilot:
        hosts = app.screen.query_one("#hosts")
        for _ in range(50):
            await pilot.pause(0.05)
            if hosts.row_count:
                break
        hosts.move_cursor(row=2)  # gpu-1
        await pilot.press("p")
        for _ in range(50):
            await pilot.pause(0.05)
            if isinstance(app.screen, ProvisionScreen):
                log = app.screen.query_one("#steps", RichLog)
                if "gpu-1: would change" in "\n".join(line.text for line in log.lines):
                    break
        assert isinstance(app.screen, ProvisionScreen)
        shown = "\n".join(line.text for line in app.screen.query_one("#steps", RichLog).lines)
        assert "plan gpu-1" in shown and "gpu-1: would change" in shown
