"""The dashboard driven by keys (Textual's Pilot) against a real PostgreSQL and real agents."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from textual.pilot import Pilot
from textual.widgets import DataTable, RichLog, Static

from control.core import db, readmodels
from control.core.inventory import Inventory
from control.core.queue import Failure, Queue, TaskSpec
from control.core.settings import DatabaseTarget
from control.head.api import ControlPlane
from control.head.embedded import EmbeddedServer
from tests.helpers import fetch_task
from tui.app import Dashboard

pytestmark = pytest.mark.slow


async def until(pilot: Pilot[Any], cond: Callable[[], Any], timeout: float = 20.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = cond()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not on screen within {timeout} s")
        await pilot.pause(0.1)


def cell_text(table: DataTable[Any], row: str, col: str) -> str:
    try:
        return str(table.get_cell(row, col))
    except Exception:
        return ""


def app_for(url: str) -> Dashboard:
    return Dashboard(ControlPlane(DatabaseTarget(url), Inventory(path=None)), refresh_s=0.3)


async def test_d_on_a_host_drains_its_agent(
    db_url: str, spawn_agent: Callable[..., subprocess.Popen[str]], conn: db.AsyncConn
) -> None:
    spawn_agent("--host", "w1")
    app = app_for(db_url)
    async with app.run_test(size=(140, 40)) as pilot:
        hosts = app.screen.query_one("#hosts", DataTable)
        assert hosts.has_focus  # the hosts table has the focus when the fleet screen opens
        await until(pilot, lambda: cell_text(hosts, "w1", "state") == "online")
        await pilot.press("d")
        await until(pilot, lambda: app.screen.query("#question"))  # asks first
        await pilot.press("y")

        async def agent_state() -> str:
            cur = await conn.execute("SELECT agent_state FROM host_beats WHERE name = 'w1'")
            row = await cur.fetchone()
            return str(row["agent_state"]) if row else ""

        for _ in range(100):
            if await agent_state() == "drained":
                break
            await pilot.pause(0.1)
        assert await agent_state() == "drained"
        await until(pilot, lambda: cell_text(hosts, "w1", "state") == "drained")
        await until(pilot, lambda: cell_text(hosts, "w1", "idle") == "drained")


async def test_retry_and_cancel_from_the_tasks_screen(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    [failed] = await queue.enqueue([TaskSpec("fail", max_attempts=1)])
    [claimed] = await queue.claim("gone", ["fail"], limit=1, lease_s=30)
    await queue.fail(claimed, Failure("Boom", "it broke", retryable=False))
    [waiting] = await queue.enqueue([TaskSpec("noop")])
    app = app_for(db_url)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        table = app.screen.query_one("#tasks", DataTable)
        await until(pilot, lambda: cell_text(table, str(failed.id), "state") == "failed")
        detail = app.screen.query_one("#detail", Static)
        table.move_cursor(row=table.get_row_index(str(failed.id)))
        await until(pilot, lambda: "it broke" in str(detail.render()))
        await pilot.press("R")
        await until(pilot, lambda: cell_text(table, str(failed.id), "state") == "queued")
        assert (await fetch_task(conn, failed.id))["state"] == "queued"

        table.move_cursor(row=table.get_row_index(str(waiting.id)))
        await pilot.press("c")
        await until(pilot, lambda: app.screen.query("#question"))
        await pilot.press("y")
        await until(pilot, lambda: cell_text(table, str(waiting.id), "state") == "cancelled")
        assert (await fetch_task(conn, waiting.id))["state"] == "cancelled"
        await pilot.press("7")  # the Audit screen shows them
        audit = app.screen.query_one("#audit", DataTable)
        await until(pilot, lambda: len(audit.rows) == 2)
        actions = {cell_text(audit, k.value or "", "action") for k in audit.rows}
        assert actions == {"retry", "cancel"}
    # both actions are in the audit trail, as the dashboard's
    cur = await conn.execute(
        "SELECT via, action, targets, outcome, actor FROM audit_log ORDER BY id"
    )
    rows = [dict(r) for r in await cur.fetchall()]
    assert [(r["via"], r["action"], r["targets"], r["outcome"]) for r in rows] == [
        ("dashboard", "retry", [str(failed.id)], "ok"),
        ("dashboard", "cancel", [str(waiting.id)], "ok"),
    ]
    assert "@" in rows[0]["actor"]


async def test_log_view_shows_what_the_agent_just_logged(
    db_url: str, spawn_agent: Callable[..., subprocess.Popen[str]], queue: Queue
) -> None:
    spawn_agent("--host", "logger-1")
    # a success is logged at DEBUG (the task row says it); a failure at WARNING
    [t] = await queue.enqueue([TaskSpec("fail", max_attempts=1)])
    app = app_for(db_url)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("3")
        log = app.screen.query_one("#log", RichLog)

        def shown() -> str:
            return "\n".join(line.text for line in log.lines)

        await until(pilot, lambda: f"task {t.id} (fail) failed" in shown())
        assert "logger-1" in shown()


async def test_database_stopped_under_the_app_shows_a_banner_then_recovers(
    own_pg_home: Path,
) -> None:
    home = own_pg_home
    server = EmbeddedServer(home)
    url = server.ensure_running()
    try:
        app = app_for(url)
        async with app.run_test(size=(100, 30)) as pilot:
            banner = app.screen.query_one("#banner", Static)
            summary = app.screen.query_one("#summary", Static)
            try:
                await until(pilot, lambda: " hosts " in str(summary.render()), timeout=40)
            except AssertionError:
                raise AssertionError(
                    f"no first paint: banner {banner.render()!s}, app error {app._exception!r}"
                ) from None
            assert not banner.display
            await asyncio.to_thread(server.stop)
            await until(pilot, lambda: banner.display and "unreachable" in str(banner.render()))
            assert app.is_running  # no crash
            await asyncio.to_thread(server.ensure_running)
            await until(pilot, lambda: not banner.display, timeout=30)
    finally:
        server.stop()


async def test_editing_a_host_applies_to_its_agent_and_keeps_the_inventory_comments(
    db_url: str,
    spawn_agent: Callable[..., subprocess.Popen[str]],
    agent_env: dict[str, str],
    conn: db.AsyncConn,
) -> None:
    from control.core.inventory import load

    inv_path = Path(agent_env["CONTENTCTL_INVENTORY"])
    inv_path.write_text(
        "# our fleet\nhosts:\n  w1:   # the only one\n    address: 127.0.0.5\n"
        "    enabled_tasks: [noop]\n    max_concurrent_tasks: 1\n"
    )
    spawn_agent("--host", "w1")
    plane = ControlPlane(DatabaseTarget(db_url), load(inv_path))
    app = Dashboard(plane, refresh_s=0.3)
    async with app.run_test(size=(140, 40)) as pilot:
        hosts = app.screen.query_one("#hosts", DataTable)
        await until(pilot, lambda: cell_text(hosts, "w1", "state") == "online")
        await pilot.press("e")
        await until(pilot, lambda: app.screen.query("#types"))
        types = app.screen.query_one("#types")
        types.select("sleep")
        box = app.screen.query_one("#concurrency")
        box.value = "3"
        await pilot.press("ctrl+s")

        async def acked() -> str:
            cur = await conn.execute(
                "SELECT outcome FROM agent_commands WHERE host = 'w1' AND command = 'configure'"
            )
            row = await cur.fetchone()
            return str(row["outcome"]) if row and row["outcome"] else ""

        for _ in range(100):
            if await acked():
                break
            await pilot.pause(0.1)
        assert (await acked()).startswith("configured: noop,sleep; max 3")
    text = inv_path.read_text()
    assert "# our fleet" in text and "# the only one" in text
    assert load(inv_path).hosts["w1"].enabled_tasks == ("noop", "sleep")
    assert load(inv_path).hosts["w1"].max_concurrent_tasks == 3
    cur = await conn.execute("SELECT enabled_tasks FROM hosts WHERE name = 'w1'")
    assert list((await cur.fetchone() or {})["enabled_tasks"]) == ["noop", "sleep"]


async def test_media_screen_shows_the_transcript_s_first_lines(
    db_url: str, conn: db.AsyncConn, tmp_path: Path
) -> None:
    (tmp_path / "media" / "1").mkdir(parents=True)
    (tmp_path / "media" / "1" / "transcript.txt").write_text(
        "The quick brown fox.\nJumps over [bold]the lazy dog.\n"
    )
    await conn.execute(
        "INSERT INTO media_items (kind, source, title, outputs) VALUES ('file', '/x.ogg', 'x', "
        """'{"txt": "media/1/transcript.txt"}')"""
    )
    plane = ControlPlane(DatabaseTarget(db_url), Inventory(path=None))
    plane.storage_root = tmp_path
    app = Dashboard(plane, refresh_s=0.3)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("4")
        detail = app.screen.query_one("#detail", Static)
        await until(pilot, lambda: "Jumps over [bold]the lazy dog." in str(detail.render()))
        assert "The quick brown fox." in str(detail.render())


async def test_retry_every_failed_task_the_filter_matches(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    failed = []
    for _ in range(3):
        [t] = await queue.enqueue([TaskSpec("fail", max_attempts=1)])
        [c] = await queue.claim("gone", ["fail"], limit=1, lease_s=30)
        await queue.fail(c, Failure("Boom", "it broke", retryable=False))
        failed.append(t.id)
    [other] = await queue.enqueue([TaskSpec("noop")])
    app = app_for(db_url)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2", "slash")
        await pilot.press(*"state:failed", "enter")
        table = app.screen.query_one("#tasks", DataTable)
        await until(pilot, lambda: table.row_count == 3)
        await pilot.press("ctrl+r")
        question = await until(pilot, lambda: app.screen.query("#question"))
        assert "Retry 3 failed task(s)" in str(question.first().render())
        await pilot.press("y")

        async def states() -> set[str]:
            cur = await conn.execute("SELECT state FROM tasks WHERE id = ANY(%s)", (failed,))
            return {str(r["state"]) for r in await cur.fetchall()}

        for _ in range(100):
            if await states() == {"queued"}:
                break
            await pilot.pause(0.1)
        assert await states() == {"queued"}
        assert (await fetch_task(conn, other.id))["state"] == "queued"  # untouched anyway


async def test_sources_screen_polls_and_pauses(
    db_url: str, conn: db.AsyncConn, agent_env: dict[str, str]
) -> None:
    from control.core import intake

    await intake.add(
        conn,
        name="talk",
        url="http://127.0.0.1:9/feed.xml",
        kind="podcast",
        options={"latest": 2},
        spec=intake.poll_schedule("talk", 3600, None),
    )
    app = app_for(db_url)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.press("6")
        table = app.screen.query_one("#sources", DataTable)
        await until(pilot, lambda: cell_text(table, "1", "name") == "talk")
        assert cell_text(table, "1", "state") == "active"
        await pilot.press("n")

        async def polls_queued() -> int:
            cur = await conn.execute("SELECT count(*) AS n FROM tasks WHERE type = 'poll_source'")
            return int((await cur.fetchone() or {})["n"])

        for _ in range(50):
            if await polls_queued() == 2:  # the first poll at add, and ours
                break
            await pilot.pause(0.1)
        assert await polls_queued() == 2
        await pilot.press("space")
        await until(pilot, lambda: cell_text(table, "1", "state") == "paused")
        cur = await conn.execute("SELECT paused FROM schedules WHERE name = 'source:talk'")
        assert (await cur.fetchone() or {})["paused"] is True


async def test_media_screen_filters_by_source(db_url: str, conn: db.AsyncConn) -> None:
    """`s` on the Media screen shows one source's items, then the next source's, then all."""
    from control.core import intake

    for name in ("talk", "lectures"):
        await intake.add(
            conn,
            name=name,
            url=f"http://127.0.0.1:9/{name}.xml",
            kind="podcast",
            options={},
            spec=intake.poll_schedule(name, 3600, None),
        )
    await conn.execute(
        "INSERT INTO media_items (kind, source, unique_key, title, source_id) VALUES "
        "('podcast', 'http://127.0.0.1:9/a.ogg', 'a', 'From talk', 1), "
        "('podcast', 'http://127.0.0.1:9/b.ogg', 'b', 'From lectures', 2), "
        "('file', '/tmp/c.ogg', NULL, 'By hand', NULL)"
    )
    app = app_for(db_url)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.press("4")
        table = app.screen.query_one("#media", DataTable)

        def titles() -> set[str]:
            return {cell_text(table, key.value or "", "title") for key in table.rows}

        await until(pilot, lambda: len(table.rows) == 3)
        await pilot.press("s")
        await until(pilot, lambda: titles() == {"From talk"})
        await pilot.press("s")
        await until(pilot, lambda: titles() == {"From lectures"})
        await pilot.press("s")
        await until(pilot, lambda: len(table.rows) == 3)


async def test_many_hosts_news_reaches_the_screen_and_rows_scrolled_to(
    db_url: str, conn: db.AsyncConn
) -> None:
    """60 hosts, 15 rows on screen: a beat on screen shows at the next refresh, a beat off
    screen shows once the operator scrolls to it, and a refresh reads only the hosts that
    beat since the last one (not all 60)."""
    await conn.execute(
        "INSERT INTO hosts (name, enabled_tasks) "
        "SELECT 'h' || lpad(i::text, 2, '0'), ARRAY['noop'] FROM generate_series(1, 60) AS i"
    )
    await conn.execute(
        "INSERT INTO host_beats (name, agent_state, last_heartbeat_at, heartbeat) "
        "SELECT 'h' || lpad(i::text, 2, '0'), 'online', now(), "
        '\'{"load": {"cpu_percent": 10.0, "mem_percent": 20.0}}\' '
        "FROM generate_series(1, 60) AS i"
    )

    async def beat(host: str, cpu: float) -> None:
        await conn.execute(
            "UPDATE host_beats SET last_heartbeat_at = now(), heartbeat = jsonb_set("
            "heartbeat, '{load,cpu_percent}', to_jsonb(%s::float8)) WHERE name = %s",
            (cpu, host),
        )

    app = app_for(db_url)
    async with app.run_test(size=(140, 30)) as pilot:
        hosts = app.screen.query_one("#hosts", DataTable)
        await until(pilot, lambda: hosts.row_count == 60)
        await until(pilot, lambda: "10%" in cell_text(hosts, "h01", "cpu"))
        # rows below the first screenful are drawn when scrolled to, from the first paint on
        assert cell_text(hosts, "h60", "cpu") == ""
        view = app.plane.hosts_view
        read_before = view.reads["hosts_read"]
        await beat("h01", 77.0)
        await beat("h60", 66.0)
        await until(pilot, lambda: "77%" in cell_text(hosts, "h01", "cpu"))
        await pilot.pause(1.0)  # a few more refreshes with nothing new
        assert view.reads["hosts_read"] - read_before == 2  # only the two that beat
        hosts.move_cursor(row=59, animate=False)  # the operator scrolls to the last host
        await until(pilot, lambda: "66%" in cell_text(hosts, "h60", "cpu"))
        assert "66%" in "".join(
            strip.text for strip in hosts.render_lines(hosts.region.reset_offset)
        )


async def a_host_that_beat(conn: db.AsyncConn, name: str) -> None:
    """A declared host whose agent beat just now, online at 5% CPU."""
    await conn.execute(
        "INSERT INTO hosts (name, enabled_tasks) VALUES (%s, ARRAY['noop'])", (name,)
    )
    await conn.execute(
        "INSERT INTO host_beats (name, agent_state, last_heartbeat_at, heartbeat) "
        "VALUES (%s, 'online', now(), '{\"load\": {\"cpu_percent\": 5.0}}')",
        (name,),
    )


async def test_a_host_that_falls_silent_turns_stale_on_screen_without_a_read_of_it(
    db_url: str, conn: db.AsyncConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between full reads the dashboard re-reads only the hosts that beat; the others' entries
    and cells are kept and aged. Silence must still show: the state moves with the age alone."""
    monkeypatch.setattr(readmodels, "STALE_AFTER_S", 2.0)  # where a host's state is decided
    await a_host_that_beat(conn, "quiet")
    app = app_for(db_url)
    async with app.run_test(size=(140, 30)) as pilot:
        hosts = app.screen.query_one("#hosts", DataTable)
        await until(pilot, lambda: cell_text(hosts, "quiet", "state") == "online")
        await until(pilot, lambda: cell_text(hosts, "quiet", "state") == "stale", timeout=10)
        assert app.plane.hosts_view.reads["full"] == 1  # told by its age, not by a re-read


async def test_a_beat_behind_a_filter_and_a_late_beat_show_on_screen(
    db_url: str, conn: db.AsyncConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fleet screen passes over a host whose entry is the one its row was drawn from: a
    beat that came while a filter hid the host must show once the filter is cleared, and a
    beat growing late (no read, no new entry) must still show its age."""

    await a_host_that_beat(conn, "late")
    await a_host_that_beat(conn, "hidden")
    app = app_for(db_url)
    async with app.run_test(size=(140, 30)) as pilot:
        hosts = app.screen.query_one("#hosts", DataTable)
        await until(pilot, lambda: cell_text(hosts, "hidden", "beat") == "ok")
        await pilot.press("slash", *"late", "enter")
        await until(pilot, lambda: hosts.row_count == 1)
        await conn.execute(
            "UPDATE host_beats SET last_heartbeat_at = now(), "
            "heartbeat = '{\"load\": {\"cpu_percent\": 88.0}}' WHERE name = 'hidden'"
        )
        await pilot.pause(1.5)  # refreshes while it is filtered out
        await pilot.press("slash", "ctrl+u", "enter")
        await until(pilot, lambda: hosts.row_count == 2)
        # at the next refreshes, not at the next full read (every 30 s)
        await until(pilot, lambda: "88%" in cell_text(hosts, "hidden", "cpu"), timeout=3)
        monkeypatch.setattr(readmodels, "BEAT_FRESH_S", 1.5)  # `late` has not beaten since
        await until(pilot, lambda: cell_text(hosts, "late", "beat").endswith("s"), timeout=10)


async def test_a_cell_wider_than_its_column_widens_it(
    db_url: str, conn: db.AsyncConn, queue: Queue
) -> None:
    """The columns are sized by the first paint; a running task shown later (a wider cell)
    must widen its column, not be cropped."""
    await a_host_that_beat(conn, "w1")
    app = app_for(db_url)
    async with app.run_test(size=(160, 30)) as pilot:
        hosts = app.screen.query_one("#hosts", DataTable)
        await until(pilot, lambda: cell_text(hosts, "w1", "state") == "online")
        await queue.enqueue([TaskSpec("download_podcast", {"url": "http://127.0.0.1/x"})])
        [task] = await queue.claim("w1", ["download_podcast"])
        await conn.execute(  # its agent's next beat reports the task
            "UPDATE host_beats SET last_heartbeat_at = now(), "
            "heartbeat = jsonb_set(heartbeat, '{running}', %s) WHERE name = 'w1'",
            (Jsonb([{"id": task.id, "type": task.type, "progress": 0.0}]),),
        )

        def drawn() -> str:
            return "".join(strip.text for strip in hosts.render_lines(hosts.region.reset_offset))

        await until(pilot, lambda: "download_podcast" in drawn())
        assert task.type in drawn()


async def test_a_beat_that_reports_the_same_tasks_costs_no_read_of_them(
    conn: db.AsyncConn, queue: Queue
) -> None:
    """Between full reads, a host's running tasks are read again when its beat reports other
    ones (an agent writes its beat when a task's progress moved), not at every beat."""
    from control.head.status import HostsView

    await a_host_that_beat(conn, "busy")
    await queue.enqueue([TaskSpec("noop")] * 3)
    claimed = await queue.claim("busy", ["noop"], limit=3)

    async def beat(progress: float) -> None:
        running = [{"id": t.id, "progress": progress} for t in claimed]
        await conn.execute(
            "UPDATE host_beats SET last_heartbeat_at = clock_timestamp(), "
            "heartbeat = jsonb_set(heartbeat, '{running}', %s) WHERE name = 'busy'",
            (Jsonb(running),),
        )

    async def shown() -> list[float | None]:
        [entry] = await view.hosts(conn, Inventory(path=None))
        return [t.progress for t in entry.running]

    view = HostsView()
    await beat(0.0)
    assert await shown() == [None, None, None]  # the full read
    assert view.reads["tasks_read"] == 3
    await beat(0.0)  # alive, the same tasks at the same progress
    assert await shown() == [None, None, None]
    assert view.reads == {"full": 1, "incremental": 1, "hosts_read": 2, "tasks_read": 3}
    for t in claimed:  # the agent writes its tasks' progress, then beats about it
        assert (await queue.progress(t, 0.5)).held
    await beat(0.5)
    assert await shown() == [0.5, 0.5, 0.5]
    assert view.reads["tasks_read"] == 6


async def test_a_beat_committed_after_a_newer_one_was_read_is_read_once(
    db_url: str, conn: db.AsyncConn
) -> None:
    """A beat is stamped when its transaction starts and seen when it commits: one stamped
    before a beat already read, committed after that read, is still read (it is inside the
    margin), and a beat already read is not read again."""
    from control.head.status import HostsView

    await a_host_that_beat(conn, "early")
    await a_host_that_beat(conn, "later")
    view = HostsView()
    await view.hosts(conn, Inventory(path=None))  # the full read
    slow = await db.connect(db_url)
    try:
        await slow.set_autocommit(False)
        await slow.execute(  # stamped now, committed after the other beat was read
            "UPDATE host_beats SET last_heartbeat_at = now(), "
            "heartbeat = '{\"load\": {\"cpu_percent\": 42.0}}' WHERE name = 'early'"
        )
        await conn.execute(
            "UPDATE host_beats SET last_heartbeat_at = clock_timestamp() WHERE name = 'later'"
        )
        await view.hosts(conn, Inventory(path=None))
        assert view.reads["hosts_read"] == 2 + 1  # `later` only
        await slow.commit()
    finally:
        await slow.close()
    entries = {e.name: e for e in await view.hosts(conn, Inventory(path=None))}
    assert entries["early"].load == {"cpu_percent": 42.0}
    assert view.reads["hosts_read"] == 3 + 1  # `early`, and not `later` again
    await view.hosts(conn, Inventory(path=None))
    assert view.reads["hosts_read"] == 4  # nothing new: nothing read


async def test_the_dashboard_keeps_what_lives_as_long_as_it_out_of_full_collections(
    db_url: str, conn: db.AsyncConn
) -> None:
    """A full garbage collection scanned every object the dashboard holds for its whole life
    (modules, Textual's machinery): 80-130 ms stalls every ten-odd seconds. Those are frozen
    when the app starts: a full pass sees only what came after."""
    import gc

    gc.unfreeze()  # what earlier apps in this process froze
    await a_host_that_beat(conn, "gc-1")
    app = app_for(db_url)
    async with app.run_test(size=(140, 30)) as pilot:
        hosts = app.screen.query_one("#hosts", DataTable)
        await until(pilot, lambda: cell_text(hosts, "gc-1", "state") == "online")
        assert gc.get_freeze_count() > 4 * len(gc.get_objects())


async def test_vim_keys_and_the_command_line(db_url: str, queue: Queue) -> None:
    """j/k/g/G move the focused table's cursor; `:` takes a screen's name, as in k9s."""
    await queue.enqueue([TaskSpec("noop")] * 5)
    app = app_for(db_url)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("2")
        table = app.screen.query_one("#tasks", DataTable)
        await until(pilot, lambda: table.row_count == 5)
        table.focus()
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == 4
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("colon", *"audit", "enter")
        await until(pilot, lambda: app.current_mode == "audit")
        await pilot.press("colon", *"lo", "enter")  # a unique prefix will do
        await until(pilot, lambda: app.current_mode == "logs")
        await pilot.press("colon", *"nonsense", "enter")
        assert app.current_mode == "logs" and app.is_running


async def test_layout_holds_at_a_wide_terminal(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    """Before: the queue table stopped at 8 rows behind a scrollbar above 30 empty lines, the
    footer was cut at 200 columns, one long idle reason widened the whole hosts table."""
    from textual.widgets import Footer

    from control.core.tasktypes import ALL_TYPES

    await queue.enqueue([TaskSpec(t) for t in ALL_TYPES])
    beat = {"idle_reason": "storage unavailable: /Volumes/" + "x" * 120 + " is not answering"}
    await conn.execute("INSERT INTO hosts (name) VALUES ('w1')")
    await conn.execute(
        "INSERT INTO host_beats (name, agent_state, heartbeat) VALUES ('w1', 'online', %s)",
        (Jsonb(beat),),
    )
    app = app_for(db_url)
    async with app.run_test(size=(200, 50)) as pilot:
        table = app.screen.query_one("#queue", DataTable)
        await until(pilot, lambda: table.row_count == len(ALL_TYPES))
        await pilot.pause(0.3)
        assert table.region.height >= table.virtual_size.height  # every type, no scrollbar
        hosts = app.screen.query_one("#hosts", DataTable)
        await until(pilot, lambda: hosts.row_count == 1)
        assert hosts.virtual_size.width <= 200
        for key in "1234567":
            await pilot.press(key)
            await pilot.pause(0.3)
            footer = app.screen.query_one(Footer)
            assert footer.virtual_size.width <= footer.region.width, app.current_mode
