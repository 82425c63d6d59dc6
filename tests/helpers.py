"""Small helpers shared by tests: poll with a deadline (never sleep on a guess), read rows."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import inspect
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, overload

from control.core import db
from provisioning.facts import HostFacts

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]


@overload
async def wait_for(
    probe: Callable[[], Awaitable[T]], timeout_s: float = ..., interval_s: float = ...
) -> T: ...
@overload
async def wait_for(
    probe: Callable[[], T], timeout_s: float = ..., interval_s: float = ...
) -> T: ...
async def wait_for(probe: Any, timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    """Call `probe` (async or not) until it returns something truthy; fail the test at the
    deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await _value(probe)
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last: {value!r})")
        await asyncio.sleep(interval_s)


@overload
async def holds(probe: Callable[[], Awaitable[T]], for_s: float, interval_s: float = ...) -> T: ...
@overload
async def holds(probe: Callable[[], T], for_s: float, interval_s: float = ...) -> T: ...
async def holds(probe: Any, for_s: float, interval_s: float = 0.05) -> Any:
    """A negative wait ("nothing happens for a while"): call `probe` for `for_s` seconds and
    fail the test the first time it is falsy. Unlike a sleep that looks once at its end, it
    fails at the moment the thing that must not happen does, and sees a state that came and
    went."""
    loop = asyncio.get_running_loop()
    until = loop.time() + for_s
    while True:
        value = await _value(probe)
        if not value:
            raise AssertionError(f"condition broken within {for_s} s (got: {value!r})")
        if loop.time() >= until:
            return value
        await asyncio.sleep(interval_s)


async def _value(probe: Callable[[], Any]) -> Any:
    value = probe()
    return await value if inspect.isawaitable(value) else value


def wait_until(what: str, probe: Callable[[], T], timeout: float, interval: float = 0.25) -> T:
    """`wait_for` for code without an event loop: poll `probe` until truthy, else fail naming
    `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {value!r})")
        time.sleep(interval)


async def fetch_task(conn: db.AsyncConn, task_id: int) -> dict[str, Any]:
    cur = await conn.execute("SELECT * FROM tasks WHERE id = %s", (task_id,))
    row = await cur.fetchone()
    assert row is not None, f"task {task_id} does not exist"
    return dict(row)


async def tasks_of(conn: db.AsyncConn, media_id: int) -> list[dict[str, Any]]:
    """A media item's tasks, oldest first."""
    cur = await conn.execute("SELECT * FROM tasks WHERE media_id = %s ORDER BY id", (media_id,))
    return [dict(r) for r in await cur.fetchall()]


async def make_due(conn: db.AsyncConn, task_id: int) -> None:
    """Time passes: a scheduled task's run_at arrives."""
    await conn.execute("UPDATE tasks SET run_at = now() WHERE id = %s", (task_id,))


# Debian's chromium headless as root on a machine with no network but loopback: no sandbox,
# no GPU, and none of its background connections (each refused, many at a time)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def contentctl(
    env: dict[str, str], *args: str, timeout: float = 120, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """Run `contentctl ARGS...` as a script would, in its own process, with `env` and no
    terminal (stdin /dev/null), from the repository."""
    return subprocess.run(
        [sys.executable, "-m", "tui.launcher", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def loopback_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1 (a free port) from a thread; yields the base URL
    (`http://127.0.0.1:PORT`). The server is shut down when the block ends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def write_inventory(env: dict[str, str], text: str, *, storage: bool = False) -> Path:
    """Write the test's inventory (`env`'s CONTENTCTL_INVENTORY). With `storage`, a storage
    root under the test's CONTENTCTL_HOME comes first (made: a configured root is never made
    for us). Returns the storage root."""
    root = Path(env["CONTENTCTL_HOME"]) / "storage"
    if storage:
        root.mkdir(parents=True, exist_ok=True)
        text = f"storage_root: {root}\n{text}"
    Path(env["CONTENTCTL_INVENTORY"]).write_text(text)
    return root


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at `address` right now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def state_is(conn: db.AsyncConn, task_id: int, *states: str) -> Callable[[], Awaitable[bool]]:
    """A probe for `wait_for`: the task is in one of `states`."""

    async def probe() -> bool:
        return (await fetch_task(conn, task_id))["state"] in states

    return probe


def host_facts(**found: object) -> HostFacts:
    """A host's facts as the facts script reports them (what it does not say: its default)."""
    return HostFacts.from_json({"base_dir": "/b", **found})
