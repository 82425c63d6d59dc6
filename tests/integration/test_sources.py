"""Podcast sources polled by agents: a feed served on loopback gains an episode between two
polls (one new item, no duplicates), answers 304 when unchanged (no item, no error), and the
first poll takes only the latest N."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from control.core import db
from tests.helpers import contentctl, wait_for

pytestmark = pytest.mark.slow


def _feed(n: int) -> str:
    items = "".join(
        f"<item><title>Episode {i}</title><guid>ep-{i}</guid>"
        f"<pubDate>Mon, 0{i} Jan 2024 10:00:00 GMT</pubDate>"
        f'<enclosure url="http://127.0.0.1:9/ep{i}.ogg" type="audio/ogg"/></item>'
        for i in range(n, 0, -1)
    )
    head = '<?xml version="1.0"?><rss version="2.0"><channel><title>Fleet Talk</title>'
    return f"{head}{items}</channel></rss>"


class Feed:
    def __init__(self) -> None:
        self.episodes = 3
        self.not_modified = 0


@pytest.fixture
def feed_server() -> Iterator[tuple[str, Feed]]:
    state = Feed()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            etag = f'"v{state.episodes}"'
            if self.headers.get("If-None-Match") == etag:
                state.not_modified += 1
                self.send_response(304)
                self.end_headers()
                return
            body = _feed(state.episodes).encode()
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed.xml", state
    finally:
        server.shutdown()
        server.server_close()


async def test_a_feed_source_adds_each_new_episode_once(
    feed_server: tuple[str, Feed],
    agent_env: dict[str, str],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    conn: db.AsyncConn,
) -> None:
    url, feed = feed_server
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(
        "hosts:\n  poller: {address: 127.0.0.2, enabled_tasks: [poll_source]}\n"
    )
    added = contentctl(
        agent_env, "source", "add", url, "--podcast", "--latest", "2", "--name", "talk", "--json"
    )
    assert added.returncode == 0, added.stderr
    spawn_agent("--host", "poller", "--heartbeat", "0.3")

    async def titles() -> list[str]:
        cur = await conn.execute("SELECT title FROM media_items ORDER BY upload_date")
        return [str(r["title"]) for r in await cur.fetchall()]

    async def polls() -> int:
        cur = await conn.execute("SELECT polls FROM sources WHERE name = 'talk'")
        return int((await cur.fetchone() or {})["polls"])

    await wait_for(lambda: _ge(polls(), 1), 20)
    assert await titles() == ["Episode 2", "Episode 3"]  # the latest two, not the backlog

    feed.episodes = 4  # a new episode
    assert contentctl(agent_env, "source", "poll", "talk").returncode == 0
    await wait_for(lambda: _ge(polls(), 2), 20)
    assert await titles() == ["Episode 2", "Episode 3", "Episode 4"]  # one more, once

    assert contentctl(agent_env, "source", "poll", "talk").returncode == 0
    await wait_for(lambda: _ge(polls(), 3), 20)
    assert feed.not_modified >= 1  # asked conditionally: 304, nothing read
    assert await titles() == ["Episode 2", "Episode 3", "Episode 4"]
    cur = await conn.execute("SELECT metadata->>'source_id' AS s, source_id FROM media_items")
    assert {(r["s"], r["source_id"]) for r in await cur.fetchall()} == {("1", 1)}
    listed = json.loads(contentctl(agent_env, "source", "list", "--json").stdout)
    assert listed[0]["items_found"] == 3 and listed[0]["last_error"] is None


async def _ge(probe: object, n: int) -> bool:
    return int(await probe) >= n  # type: ignore[misc]


def test_bad_sources_are_refused(agent_env: dict[str, str]) -> None:
    for args in (
        ("source", "add", "file:///etc/passwd", "--podcast"),
        ("source", "add", "https://example.org/feed.xml"),  # not --podcast
        ("source", "add", "https://example.org/f", "--podcast", "--cron", "nope"),
        ("source", "add", "https://example.org/f", "--podcast", "--latest", "0"),
        ("source", "poll", "nosuch"),
    ):
        out = contentctl(agent_env, *args)
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
