"""Sources polled by agents: a feed served on loopback gains an episode between two polls (one
new item, no duplicates), answers 304 when unchanged (no item, no error, no write to the
source), and the first poll takes only the latest N. A playlist is read by yt-dlp's flat
extraction: its generic extractor lists an XSPF playlist from the loopback server, offline."""

from __future__ import annotations

import http.server
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from control.core import db
from tests.helpers import contentctl, loopback_http, wait_for

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

    with loopback_http(Handler) as base:
        yield f"{base}/feed.xml", state


async def test_a_feed_source_adds_each_new_episode_once(
    feed_server: tuple[str, Feed],
    agent_env: dict[str, str],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    agent_role_url: Callable[[str], str],
    conn: db.AsyncConn,
) -> None:
    """The poller runs as its own agent role: a poll records its finds with an agent's rights."""
    url, feed = feed_server
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(
        "hosts:\n  poller: {address: 127.0.0.2, enabled_tasks: [poll_source]}\n"
    )
    added = contentctl(
        agent_env, "source", "add", url, "--podcast", "--latest", "2", "--name", "talk", "--json"
    )
    assert added.returncode == 0, added.stderr
    role_env = {**agent_env, "CONTENTCTL_DATABASE_URL": agent_role_url("poller")}
    spawn_agent("--host", "poller", "--heartbeat", "0.3", env=role_env)

    async def titles() -> list[str]:
        cur = await conn.execute("SELECT title FROM media_items ORDER BY upload_date")
        return [str(r["title"]) for r in await cur.fetchall()]

    await wait_for(lambda: _ge(polls_done(conn), 1), 20)
    assert await titles() == ["Episode 2", "Episode 3"]  # the latest two, not the backlog

    feed.episodes = 4  # a new episode
    assert contentctl(agent_env, "source", "poll", "talk").returncode == 0
    await wait_for(lambda: _ge(polls_done(conn), 2), 20)
    assert await titles() == ["Episode 2", "Episode 3", "Episode 4"]  # one more, once

    before = await _source_version(conn)
    assert contentctl(agent_env, "source", "poll", "talk").returncode == 0
    await wait_for(lambda: _ge(polls_done(conn), 3), 20)
    assert feed.not_modified >= 1  # asked conditionally: 304, nothing read
    assert await titles() == ["Episode 2", "Episode 3", "Episode 4"]
    assert await _source_version(conn) == before  # nothing changed: the source not rewritten
    cur = await conn.execute("SELECT metadata->>'source_id' AS s, source_id FROM media_items")
    assert {(r["s"], r["source_id"]) for r in await cur.fetchall()} == {("1", 1)}
    listed = json.loads(contentctl(agent_env, "source", "list", "--json").stdout)
    assert listed[0]["items_found"] == 3 and listed[0]["last_error"] is None
    for action in ("pause", "resume"):  # --json: one document on stdout
        done = contentctl(agent_env, "source", action, "talk", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"id": 1, "name": "talk", "action": action}


async def _ge(probe: object, n: int) -> bool:
    return int(await probe) >= n  # type: ignore[misc]


async def polls_done(conn: db.AsyncConn) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM tasks WHERE type = 'poll_source' AND state = 'succeeded'"
    )
    return int((await cur.fetchone() or {})["n"])


async def _source_version(conn: db.AsyncConn) -> str:
    cur = await conn.execute("SELECT xmin::text AS v FROM sources")
    return str((await cur.fetchone() or {})["v"])


class Site:
    """A loopback web site: an XSPF playlist whose tracks the test sets, and the pages a bad
    source is made of."""

    def __init__(self) -> None:
        self.tracks = ["First talk", "Second talk", "Third talk"]
        self.broken = False

    def xspf(self, base: str) -> bytes:
        tracks = "".join(
            f"<track><location>{base}/{t.replace(' ', '-')}.ogg</location>"
            f"<title>{t}</title></track>"
            for t in self.tracks
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><playlist version="1" '
            'xmlns="http://xspf.org/ns/0/"><title>Lectures</title>'
            f"<trackList>{tracks}</trackList></playlist>"
        ).encode()


@pytest.fixture
def site() -> Iterator[tuple[str, Site]]:
    state = Site()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            pages = {
                "/list.xspf": ("application/xspf+xml", state.xspf(base)),
                "/page.html": ("text/html", b"<html><body><p>nothing to see</p></body></html>"),
                "/notxml": ("text/plain", b"hello, this is no feed"),
            }
            kind, body = pages.get(self.path, ("text/plain", b""))
            found = self.path in pages and not (state.broken and self.path == "/list.xspf")
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with loopback_http(Handler) as base:
        yield base, state


async def test_a_playlist_source_takes_the_latest_n_then_each_new_entry_once(
    site: tuple[str, Site],
    agent_env: dict[str, str],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    conn: db.AsyncConn,
) -> None:
    base, state = site
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(
        "pipeline:\n  ytdlp: {rate_limit: 2M}\n"
        "hosts:\n  poller: {address: 127.0.0.2, enabled_tasks: [poll_source]}\n"
    )
    added = contentctl(
        agent_env,
        *("source", "add", f"{base}/list.xspf", "--latest", "2", "--name", "lectures"),
        *("--reject-title", "(?i)bonus", "--sleep", "2", "--json"),
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["kind"] == "playlist"
    spawn_agent("--host", "poller", "--heartbeat", "0.3")

    async def items() -> list[tuple[str, str, str]]:
        cur = await conn.execute("SELECT title, kind, unique_key FROM media_items ORDER BY id")
        return [
            (str(r["title"]), str(r["kind"]), str(r["unique_key"])) for r in await cur.fetchall()
        ]

    await wait_for(lambda: _ge(polls_done(conn), 1), 30)
    # the playlist's first two in its own order (a channel lists its newest first)
    assert await items() == [
        ("Second talk", "youtube", f"url:{base}/Second-talk.ogg"),
        ("First talk", "youtube", f"url:{base}/First-talk.ogg"),
    ]
    state.tracks = ["Fourth talk", "Bonus clip", *state.tracks]
    assert contentctl(agent_env, "source", "poll", "lectures").returncode == 0
    await wait_for(lambda: _ge(polls_done(conn), 2), 30)
    assert [t for t, _, _ in await items()] == ["Second talk", "First talk", "Fourth talk"]
    # the source's yt-dlp options travel with its items to the download task
    cur = await conn.execute(
        "SELECT payload->'ytdlp' AS y FROM tasks WHERE type = 'download_youtube' LIMIT 1"
    )
    assert (await cur.fetchone() or {})["y"] == {"reject_title": "(?i)bonus", "sleep_s": 2.0}
    listed = json.loads(contentctl(agent_env, "source", "list", "--json").stdout)
    assert listed[0]["items_found"] == 3 and listed[0]["last_error"] is None


async def test_a_failing_source_shows_its_error_and_the_others_go_on(
    site: tuple[str, Site],
    feed_server: tuple[str, Feed],
    agent_env: dict[str, str],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    conn: db.AsyncConn,
) -> None:
    base, state = site
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(
        "hosts:\n  poller: {address: 127.0.0.2, enabled_tasks: [poll_source]}\n"
    )
    for args in ((f"{base}/list.xspf", "--name", "lectures"), (feed_server[0], "--podcast")):
        assert contentctl(agent_env, "source", "add", *args).returncode == 0
    state.broken = True  # the playlist is gone: 404
    spawn_agent("--host", "poller", "--heartbeat", "0.3")

    async def listed() -> list[dict[str, object]]:
        out = contentctl(agent_env, "source", "list", "--json")
        return list(json.loads(out.stdout))

    async def settled() -> bool:
        rows = await listed()
        return bool(rows[0]["last_error"]) and rows[1]["items_found"] == 3

    await wait_for(settled, 30)
    rows = await listed()
    assert "404" in str(rows[0]["last_error"]), rows
    assert rows[1]["last_error"] is None


async def test_bad_sources_are_refused(
    site: tuple[str, Site], agent_env: dict[str, str], conn: db.AsyncConn
) -> None:
    base, _ = site
    for args, says in (
        (("file:///etc/passwd", "--podcast"), "http(s)"),
        ((f"{base}/page.html",), "Unsupported URL"),  # no channel, no playlist
        ((f"{base}/notxml", "--podcast"), "not a podcast feed"),
        ((f"{base}/list.xspf", "--cron", "nope"), "cron"),
        ((f"{base}/list.xspf", "--latest", "0"), "--latest"),
        ((f"{base}/list.xspf", "--rate-limit", "fast"), "--rate-limit"),
        ((f"{base}/list.xspf", "--match-title", "(unclosed"), "--match-title"),
        ((f"{base}/list.xspf", "--cookies", "cookies.txt"), "--cookies"),
        ((f"{base}/list.xspf", "--since", "last week"), "--since"),
    ):
        out = contentctl(agent_env, "source", "add", *args)
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert says in out.stderr, (args, out.stderr)
    assert contentctl(agent_env, "source", "poll", "nosuch").returncode == 2
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM sources) + (SELECT count(*) FROM tasks) AS n"
    )
    assert (await cur.fetchone() or {})["n"] == 0  # nothing half-written
