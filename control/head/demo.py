"""`contentctl demo`: the whole pipeline on this machine, offline.

It starts (or reuses) the embedded database, serves the bundled speech sample from a loopback
HTTP server, adds it like any video URL, and starts local agents: yt-dlp downloads it, ffmpeg
extracts the audio, faster-whisper transcribes it with the bundled tiny.en model in overlapping
chunks (so both agents take part), and the chunks are stitched. A few diagnostic tasks ride along
so the queue has something to show. `--headless` prints the transcript and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from control.core import db
from control.core.inventory import Inventory
from control.core.queue import Queue, TaskSpec
from control.core.settings import ENV_DATABASE_URL, DatabaseTarget, state_dir, storage_root
from control.head import database, media

DEMO_TIMEOUT_S = 300
SAMPLE = "speech.ogg"
DEMO_CHUNK_S = 10.0  # the 18 s sample in two chunks, to show them spread over the agents
DEMO_OVERLAP_S = 3.0


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_sample() -> Iterator[str]:
    """The bundled sample on a loopback HTTP server; yields its URL."""
    directory = Path(str(resources.files("control.head.assets")))
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{SAMPLE}"
    finally:
        server.shutdown()
        server.server_close()


async def _spawn_agent(name: str, url: str, inventory: Path | None) -> asyncio.subprocess.Process:
    env = dict(os.environ)
    env[ENV_DATABASE_URL] = url  # the environment, never argv: a URL may carry a password
    extra = ["--inventory", str(inventory)] if inventory else []
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui.launcher",
        "agent",
        "run",
        "--host",
        name,
        "--concurrency",
        "2",
        *extra,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def _side_work() -> list[TaskSpec]:
    specs = [TaskSpec("noop", {"demo": True}) for _ in range(10)]
    specs += [TaskSpec("sleep", {"demo": True, "seconds": s}) for s in (2, 3, 4)]
    specs.append(TaskSpec("fail", {"retryable": False, "message": "broken on purpose"}))
    return specs


Dashboard = Callable[[], Awaitable[int]]


async def run(
    target: DatabaseTarget,
    inventory: Inventory,
    *,
    agents: int,
    headless: bool,
    dashboard: Dashboard | None = None,
) -> int:
    """Run the demo; without `headless`, `dashboard` (given by tui/, which control/ never
    imports) runs while the agents work, and the demo ends when it is closed."""
    url = await asyncio.to_thread(database.resolve_url, target, start_stopped=True)
    conn = await db.open_url(url)
    root = storage_root(inventory.storage_root)
    # The demo's agents run without the fleet's worker limits: a download window or a daily
    # limit from the example inventory must not hold the sample back at night.
    demo_inventory = state_dir() / "demo-inventory.yaml"
    demo_inventory.write_text(
        "# Written by `contentctl demo`: its agents' settings (no worker limits).\n"
        + yaml.safe_dump({"storage_root": str(root), "pipeline": inventory.pipeline})
    )
    procs: list[asyncio.subprocess.Process] = []
    try:
        with serve_sample() as sample_url:
            opts = media.options([], inventory.pipeline, priority=1)
            opts.update(chunk_s=DEMO_CHUNK_S, overlap_s=DEMO_OVERLAP_S)
            added = await media.add_url(conn, sample_url, opts)
            await Queue(conn).enqueue(_side_work())
            print(f"demo: media {added.id} <- {sample_url} (bundled speech sample)")
            print(f"demo: {agents} local agent(s); storage {root}")
            for i in range(agents):
                procs.append(await _spawn_agent(f"demo-agent-{i + 1}", url, demo_inventory))
            if not headless and dashboard is not None:
                return await dashboard()
            return await _follow(conn, root, added.id)
    finally:
        await _stop(procs)
        await conn.close()


async def _follow(conn: db.AsyncConn, root: Path, media_id: int) -> int:

    start = time.monotonic()
    last = ""
    while True:
        view = await media.item(conn, root, media_id)
        line = media.media_line(view)
        if line != last:
            print(f"  {time.monotonic() - start:5.1f}s  {line}", flush=True)
            last = line
        if view.finished:
            break
        if time.monotonic() - start > DEMO_TIMEOUT_S:
            print(
                f"demo: media {media_id} did not finish in {DEMO_TIMEOUT_S} s; see "
                f"`contentctl media {media_id}`",
                file=sys.stderr,
            )
            return 1
        await asyncio.sleep(0.5)
    if view.state != "succeeded" or view.transcript is None:
        print(f"demo: media {media_id} {view.state}: {view.error}", file=sys.stderr)
        return 1
    txt = view.transcript
    print(f"done in {time.monotonic() - start:.1f}s")
    print(f"transcript: {txt}")
    print(Path(txt).read_text().strip())
    return 0


async def _stop(procs: list[asyncio.subprocess.Process]) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            async with asyncio.timeout(15):
                await p.wait()
        except TimeoutError:
            p.kill()
            await p.wait()
