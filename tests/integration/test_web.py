"""`contentctl web` in a real browser: Debian's chromium, headless, driven by Playwright (the
system browser: no browser download). What the page's terminal shows is read by replaying the
websocket's bytes into a terminal emulator (pyte): xterm.js draws on a canvas, so the DOM holds
no text. Screenshots are kept under .artifacts/ (CONTENTCTL_TEST_ARTIFACTS elsewhere)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil
import psycopg
import pytest

from control.core import db
from tests.helpers import CHROMIUM_ARGS, free_port, wait_until

pyte = pytest.importorskip("pyte")
playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium"),
]

ARTIFACTS = Path(
    os.environ.get("CONTENTCTL_TEST_ARTIFACTS") or Path(__file__).parents[2] / ".artifacts"
)


class Web:
    """A `contentctl web` process of the test's: its URL, stopped (and its tabs) at the end."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tui.launcher", "web", "--port", str(self.port), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()  # the first line, once it listens
        assert self.url.startswith(f"http://127.0.0.1:{self.port}/?token="), self.url
        self.base = f"http://127.0.0.1:{self.port}"

    def sessions(self) -> list[psutil.Process]:
        """The dashboard processes it runs now (one per open tab)."""
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [p for p in children if "tui.web_session" in " ".join(_cmdline(p))]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=30)


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return list(p.cmdline())
    except psutil.Error:
        return []


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class Tab:
    """One browser tab on the dashboard; `text()` is what its terminal shows."""

    def __init__(self, browser: Any, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.screen: Any = None
        self.stream: Any = None
        self.refused: list[str] = []
        self.page.on("websocket", self._watch)
        started = time.monotonic()
        self.page.goto(url)
        self.page.wait_for_function(
            "document.body.classList.contains('-first-byte')", timeout=30_000
        )
        self.first_paint_s = time.monotonic() - started
        self.page.locator(".xterm-helper-textarea").focus()  # keys go to the terminal

    def _watch(self, ws: Any) -> None:
        size = parse_qs(urlsplit(ws.url).query)
        self.screen = pyte.Screen(int(size["width"][0]), int(size["height"][0]))
        self.stream = pyte.ByteStream(self.screen)
        ws.on("framereceived", self._frame)

    def _frame(self, payload: Any) -> None:
        if isinstance(payload, bytes | bytearray):
            self.stream.feed(bytes(payload))

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display) if self.screen else ""

    def shows(self, *words: str, timeout_s: float = 20) -> str:
        """Wait until the screen shows every word (the browser's events are pumped meanwhile)."""
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.text()
            if all(w in text for w in words):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {words}:\n{text}")
            self.page.wait_for_timeout(100)

    def press(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)
            self.page.wait_for_timeout(50)


@pytest.fixture
def web_env(agent_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A head of the test's: its database, inventory, and a keychain of its own (the token)."""
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(
        "hosts:\n  gpu-7: {address: 127.0.0.7}\n  mac-3: {address: 127.0.0.8}\n"
    )
    return {
        **agent_env,
        "XDG_DATA_HOME": str(tmp_path / "keys"),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
    }


@pytest.fixture
def serve(web_env: dict[str, str]) -> Iterator[Callable[..., Web]]:
    started: list[Web] = []

    def start(*args: str) -> Web:
        w = Web(web_env, *args)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _enqueue(web_env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tui.launcher", "enqueue", *args],
        env=web_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def _rows(url: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as c:
        return list(c.execute(sql).fetchall())


def test_the_dashboard_in_a_browser_token_keys_actions_audit_and_stop(
    serve: Callable[..., Web], browser: Any, web_env: dict[str, str], db_url: str
) -> None:
    _enqueue(web_env, "noop", "--count", "2")
    _enqueue(web_env, "sleep", "--payload", '{"seconds": 1}')
    web = serve()
    # no token, a wrong one, a page's files without the cookie: 401 and nothing started
    assert status_of(web.base + "/") == 401
    assert status_of(web.base + "/?token=wrong") == 401
    assert status_of(web.base + "/static/js/textual.js") == 401
    assert status_of(web.base + "/ws") == 401
    assert web.sessions() == []

    tab = Tab(browser, web.url)
    assert tab.page.url == web.base + "/"  # the token left the address bar
    fleet = tab.shows("gpu-7", "mac-3", "Drain")  # the Fleet screen, its actions in the footer
    ARTIFACTS.mkdir(exist_ok=True)
    tab.page.screenshot(path=str(ARTIFACTS / "web-fleet.png"))
    assert "offline" in fleet
    [session] = web.sessions()

    tab.press("2")  # Tasks
    tab.shows("noop", "sleep", "Retry")
    tab.press("/", *"type:sleep", "Enter")  # the filter
    deadline = time.monotonic() + 20
    while "noop" in tab.text():
        assert time.monotonic() < deadline, tab.text()
        tab.page.wait_for_timeout(100)
    assert "sleep" in tab.text()
    tab.page.screenshot(path=str(ARTIFACTS / "web-tasks-filtered.png"))

    # an action through the web: in the audit log, with the browser connection it came from
    tab.press("1")
    tab.shows("gpu-7")
    tab.press("d")
    tab.shows("Drain gpu-7?")
    tab.press("y")
    deadline = time.monotonic() + 20
    while not (rows := _rows(db_url, "SELECT * FROM audit_log WHERE action = 'agent drain'")):
        assert time.monotonic() < deadline, "no audit row for the drain"
        tab.page.wait_for_timeout(200)
    [row] = rows
    assert row["via"] == "web" and row["targets"] == ["gpu-7"], row
    assert str(row["detail"]["client"]).startswith("127.0.0.1 "), row
    assert "HeadlessChrome" in row["detail"]["client"]  # the browser it came from

    # closing the tab ends its dashboard process
    tab.page.close()
    wait_until(
        "the tab's process ended with the tab",
        lambda: not session.is_running() or session.status() == psutil.STATUS_ZOMBIE,
        15,
        interval=0.1,
    )

    # SIGTERM: the server and every open tab's process stop
    second = Tab(browser, web.url)
    second.shows("gpu-7")
    [session] = web.sessions()
    web.proc.send_signal(signal.SIGTERM)
    assert web.proc.wait(timeout=15) == 0
    assert not session.is_running() or session.status() == psutil.STATUS_ZOMBIE


def test_a_read_only_session_has_no_actions_and_its_role_cannot_write(
    serve: Callable[..., Web], browser: Any, web_env: dict[str, str], db_url: str
) -> None:
    _enqueue(web_env, "fail", "--max-attempts", "1")
    web = serve("--read-only", "--max-sessions", "1")
    tab = Tab(browser, web.url)
    fleet = tab.shows("gpu-7", "Filter")
    tab.page.screenshot(path=str(ARTIFACTS / "web-read-only.png"))
    footer = fleet.splitlines()[-1]
    for action in ("Drain", "Restart", "Stop", "Edit", "Provision", "Start"):
        assert action not in footer, footer
    tab.press("d", "y", "5", "e")  # drain, provision's screen, edit: none of them exists
    tab.page.wait_for_timeout(1000)
    assert "Drain gpu-7?" not in tab.text() and "gpu-7" in tab.text()
    tab.press("2")
    tasks = tab.shows("fail")
    assert "Retry" not in tasks.splitlines()[-1] and "Cancel" not in tasks.splitlines()[-1]
    assert _rows(db_url, "SELECT * FROM agent_commands") == []
    assert _rows(db_url, "SELECT * FROM audit_log WHERE via = 'web'") == []

    # a tab past --max-sessions is refused before anything starts; so is a websocket from
    # another site's page, even with the cookie (cross-site websocket hijacking)
    [session] = web.sessions()
    [cookie] = [c for c in tab.page.context.cookies() if c["name"] == "contentctl_web"]
    ours = {"Cookie": f"contentctl_web={cookie['value']}"}
    assert status_of(web.base + "/ws", {"Cookie": "contentctl_web=guess"}) == 401
    assert status_of(web.base + "/ws", {**ours, "Origin": "http://evil.example"}) == 403
    assert status_of(web.base + "/ws", {**ours, "Origin": web.base}) == 503
    assert [s.pid for s in web.sessions()] == [session.pid]


async def test_the_read_only_plane_reads_everything_and_writes_nothing(
    conn: db.AsyncConn, db_url: str
) -> None:
    from control.core.inventory import Inventory
    from control.core.settings import DatabaseTarget
    from control.head.api import ControlPlane, ReadOnly, TaskQuery

    await conn.execute("INSERT INTO tasks (type, payload) VALUES ('noop', %s)", (json.dumps({}),))
    plane = ControlPlane(DatabaseTarget(db_url), Inventory(path=None), read_only=True)
    try:
        assert [t["type"] for t in await plane.tasks(TaskQuery())] == ["noop"]
        snap = await plane.fleet()
        assert snap.by_type["noop"]["queued"] == 1
        for attempt in (
            "UPDATE tasks SET priority = 1",
            "INSERT INTO agent_commands (host, command) VALUES ('x', 'drain')",
            "DELETE FROM tasks",
            "SELECT contentctl_sweep_expired()",
        ):
            c = await plane._connection()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await c.execute(attempt)
            await plane._drop()
        with pytest.raises(ReadOnly):
            await plane.retry([1])
        with pytest.raises(ReadOnly):
            await plane.command("gpu-7", "drain")
    finally:
        await plane.close()
    cur = await conn.execute("SELECT priority FROM tasks")
    assert [r["priority"] for r in await cur.fetchall()] == [0]
