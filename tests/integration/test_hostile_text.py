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


SECRETS = ("SEKRET-pw-1", "SEKRET-key-2", "SEKRET-tok-3", "SEKRET-conn-4")
LEAKY = (
    f"fetch https://u:{SECRETS[0]}@cdn.example/x?api_key={SECRETS[1]} failed; "
    f"retried with token={SECRETS[2]} and host=db password={SECRETS[3]}"
)


async def test_one_redactor_on_every_surface(
    db_url: str, queue: Queue, conn: db.AsyncConn, agent_env: dict[str, str]
) -> None:
    """Before: logs were redacted but not task errors (`task`, `task --json`, `tasks --json`,
    the dashboard), `source list --json`, `media --json`, `audit --json` or `db url --db`; and
    the keyring hint's own fix was masked. One redactor now, where text leaves the process."""
    from control.core import audit
    from control.core.inventory import Inventory
    from control.core.settings import DatabaseTarget
    from control.head.api import ControlPlane

    [t] = await queue.enqueue([TaskSpec("fail", max_attempts=1)])
    [claimed] = await queue.claim("w1", ["fail"], limit=1, lease_s=30)
    await queue.fail(claimed, Failure("DownloadError", LEAKY, retryable=False))
    await conn.execute(
        "INSERT INTO sources (name, url, kind) VALUES ('f', %s, 'podcast')",
        (f"https://feeds.example/rss?api_key={SECRETS[1]}",),
    )
    await conn.execute(
        "INSERT INTO media_items (kind, source, title) VALUES ('youtube', %s, 't')",
        (f"https://v.example/watch?v=1&token={SECRETS[2]}",),
    )
    await audit.record(conn, "add", [f"https://u:{SECRETS[0]}@x.example/v"], "refused")
    said = []
    for args in (
        ("task", str(t.id)), ("task", str(t.id), "--json"), ("tasks", "--json"), ("tasks",),
        ("source", "list", "--json"), ("media", "--json"), ("audit", "--json"),
    ):  # fmt: skip
        out = contentctl(agent_env, *args)
        assert out.returncode == 0, (args, out.stderr)
        if "--json" in args:
            json.loads(out.stdout)  # still one valid document
        said.append(out.stdout + out.stderr)
    for given in (f"postgresql://u@h/d?password={SECRETS[3]}", f"host=h password={SECRETS[3]}"):
        out = contentctl(agent_env, "db", "url", "--db", given)
        said.append(out.stdout + out.stderr)
    plane = ControlPlane(DatabaseTarget(db_url), Inventory(path=None))
    try:
        said.append(json.dumps(await plane.task(t.id), default=str))
        said.append(json.dumps(await plane.sources(), default=str))
    finally:
        await plane.close()
    leaked = [s for s in SECRETS for text in said if s in text]
    assert not leaked, leaked
    assert "fetch https://u:***@cdn.example/x?api_key=***" in said[0]  # the rest stays readable

    # and the keyring hint's own fix is shown whole, not masked as a secret
    from control.cli.output import clean

    hint = "PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring here"
    assert clean(hint) == hint
