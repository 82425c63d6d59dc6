"""Text from workers, feeds and websites is shown as text: never Rich markup, never terminal
control sequences. Each test is the attack: hostile text goes in, the screen shows it verbatim
and nothing crashes."""

from __future__ import annotations

import json

import pytest
from textual.widgets import DataTable, Static

from control.core import db
from control.core.queue import Failure, Queue, TaskSpec
from tests.helpers import contentctl
from tests.integration.test_dashboard import app_for, cell_text, until

pytestmark = pytest.mark.slow

# yt-dlp's errors begin with `[youtube]`; a closing tag with nothing open, an unclosed style
# and a link are what broke the dashboard.
HOSTILE = "[/] [youtube] abc: [bold]unclosed [@click=app.quit]x[/] [link=file:///etc/passwd]y"


async def test_markup_in_a_task_error_is_shown_as_text(db_url: str, queue: Queue) -> None:
    [t] = await queue.enqueue([TaskSpec("fail", max_attempts=1, payload={"note": HOSTILE})])
    [claimed] = await queue.claim("w1", ["fail"], limit=1, lease_s=30)
    await queue.fail(claimed, Failure("DownloadError", HOSTILE, retryable=False))
    app = app_for(db_url)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("2")
        table = app.screen.query_one("#tasks", DataTable)
        await until(pilot, lambda: cell_text(table, str(t.id), "state") == "failed")
        assert cell_text(table, str(t.id), "error").startswith("[/] [youtube] abc:")
        await pilot.pause(0.5)  # the table has painted the row
        detail = app.screen.query_one("#detail", Static)
        await until(pilot, lambda: HOSTILE in str(detail.render()))
        assert app.is_running and app._exception is None


async def test_markup_in_a_media_title_is_shown_as_text(db_url: str, conn: db.AsyncConn) -> None:
    cur = await conn.execute(
        "INSERT INTO media_items (kind, source, title) VALUES ('podcast', %s, %s) RETURNING id",
        ("https://feed.example/ep1.mp3", HOSTILE),
    )
    row = await cur.fetchone()
    assert row is not None
    app = app_for(db_url)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("4")
        table = app.screen.query_one("#media", DataTable)
        key = str(row["id"])
        await until(pilot, lambda: cell_text(table, key, "title"))
        assert cell_text(table, key, "title") == HOSTILE[:40]
        await pilot.pause(0.5)
        detail = app.screen.query_one("#detail", Static)
        await until(pilot, lambda: HOSTILE in str(detail.render()))
        assert app.is_running and app._exception is None


async def test_cli_output_strips_terminal_control_sequences(
    db_url: str, queue: Queue, agent_env: dict[str, str]
) -> None:
    # A worker's error that would clear the screen, retitle the terminal and hide text.
    evil = "boom\x1b[2J\x1b]0;owned\x07\x1b[8mhidden\r\x9b31m"
    [t] = await queue.enqueue([TaskSpec("fail", max_attempts=1)])
    [claimed] = await queue.claim("w1", ["fail"], limit=1, lease_s=30)
    await queue.fail(claimed, Failure("Boom", evil, retryable=False))
    for args in (("tasks",), ("task", str(t.id))):
        out = contentctl(agent_env, *args)
        assert out.returncode == 0, out.stderr
        assert "boom" in out.stdout
        assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\x9b" not in out.stdout
        assert "\\x1b[2J" in out.stdout  # made visible, not dropped: the operator sees it
        assert "\r" not in out.stdout
    # JSON output keeps the value (escaped by the encoder), so scripts see what was stored.
    out = contentctl(agent_env, "task", str(t.id), "--json")
    assert json.loads(out.stdout)["error"]["message"] == evil


async def test_markup_in_sources_and_audit_rows_is_shown_as_text(
    db_url: str, conn: db.AsyncConn
) -> None:
    """A source's last error comes from a website; an audit row's targets from a command line."""
    from control.core import audit

    await audit.record(conn, "source poll", [HOSTILE], f"failed: {HOSTILE}", via="cli")
    await conn.execute(
        "INSERT INTO sources (name, url, kind) VALUES ('feed', 'http://127.0.0.1:9/f', 'podcast')"
    )
    await conn.execute(
        "INSERT INTO tasks (type, state, payload, error_message, finished_at) VALUES "
        "('poll_source', 'failed', '{\"source_id\": 1}', %s, now())",
        (HOSTILE,),
    )
    app = app_for(db_url)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.press("7")
        table = app.screen.query_one("#audit", DataTable)
        await until(pilot, lambda: len(table.rows) == 1)
        key = next(iter(table.rows)).value or ""
        assert cell_text(table, key, "on") == HOSTILE[:40]
        assert cell_text(table, key, "outcome") == f"failed: {HOSTILE}"[:60]
        await pilot.press("6")
        sources = app.screen.query_one("#sources", DataTable)
        await until(pilot, lambda: cell_text(sources, "1", "last error"))
        assert cell_text(sources, "1", "last error") == HOSTILE[:60]
        assert app.is_running and app._exception is None


# OSC 52 sets the operator's clipboard; ESC[2J clears the screen; ESC[8m hides what follows;
# U+202E reverses the line; \x9b is a one-byte CSI.
ESCAPES = "boom\x1b]52;c;cm0gLXJmIH4=\x07 \x1b[2J\x1b[8mhidden \u202eevil \x9b31m"


async def test_terminal_escapes_from_outside_are_shown_not_obeyed(
    db_url: str, queue: Queue, conn: db.AsyncConn
) -> None:
    """A task error (the dashboard's task table and detail), a schedule name and its targets in
    the audit log, and an agent's log line, each carrying OSC 52 and a clear-screen: what the
    dashboard draws holds no control character, and shows each escape as `\\x1b`."""
    from control.core import audit

    [t] = await queue.enqueue([TaskSpec("fail", max_attempts=1)])
    [claimed] = await queue.claim("w1", ["fail"], limit=1, lease_s=30)
    await queue.fail(claimed, Failure("Boom", ESCAPES, retryable=False))
    await audit.record(conn, "schedule add", [ESCAPES], "ok", via="cli")
    await conn.execute(
        "INSERT INTO agent_logs (host, ts, level, logger, message) "
        "VALUES ('w1', now(), 'ERROR', 'agent', %s)",
        (ESCAPES,),
    )
    app = app_for(db_url)

    def drawn() -> str:
        return app.export_screenshot()

    def clean(svg: str) -> bool:
        return not any(c in svg for c in ("\x1b", "\x07", "\x9b", "\u202e"))

    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.press("2")
        table = app.screen.query_one("#tasks", DataTable)
        await until(pilot, lambda: cell_text(table, str(t.id), "state") == "failed")
        await pilot.pause(0.5)
        detail = app.screen.query_one("#detail", Static)
        await until(pilot, lambda: "\\x1b]52" in str(detail.render()))
        assert clean(drawn()) and "\\x1b" in drawn()
        # the error as a line ("Boom: ..."), not a Python dict's repr
        assert "Boom: boom" in str(detail.render()) and "'message'" not in str(detail.render())
        await pilot.press("7")
        audit_table = app.screen.query_one("#audit", DataTable)
        await until(pilot, lambda: len(audit_table.rows) == 1)
        await pilot.pause(0.3)
        assert clean(drawn()) and "\\x1b" in drawn()
        await pilot.press("3")  # logs
        await until(pilot, lambda: "\\x1b[2J" in drawn())
        assert clean(drawn())
        assert app.is_running and app._exception is None
