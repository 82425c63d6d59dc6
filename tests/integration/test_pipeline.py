"""The media pipeline with real tools: yt-dlp against a loopback HTTP server, ffmpeg, faster-whisper
with the bundled tiny.en model, stitching over two agents, translation against a loopback API."""

from __future__ import annotations

import contextlib
import difflib
import http.server
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from control.core import db
from control.core.queue import Queue, TaskSpec
from tests.helpers import contentctl, fetch_task, tasks_of, wait_for, write_inventory

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent.parent.parent / "control" / "head" / "assets"
SCRIPT = (  # what espeak-ng said in fixtures/speech.ogg
    "The quick brown fox jumps over the lazy dog. A control plane watches every worker in the "
    "fleet. Seven machines transcribe podcasts while the database keeps the queue. Green tea is "
    "served at noon in the garden. The river flows gently past the old stone bridge."
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, words(a), words(b)).ratio()


async def media_row(conn: db.AsyncConn, media_id: int) -> dict[str, Any]:
    cur = await conn.execute("SELECT * FROM media_items WHERE id = %s", (media_id,))
    row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def test_url_downloaded_extracted_transcribed_stitched(
    media_site: tuple[str, Path],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    agent_env: dict[str, str],
    agent_role_url: Callable[[str], str],
    conn: db.AsyncConn,
) -> None:
    """The agent runs as its own role (`agent_w1`): every stage, and each stage's follow-up,
    with an agent's rights only."""
    storage = write_inventory(
        agent_env,
        "pipeline: {chunk_s: 600, transcribe: {initial_prompt: 'A fox in a garden.'}}\n",
        storage=True,
    )
    url = f"{media_site[0]}/talk.ogg"
    added = cli("add", url, "--json")
    assert added.returncode == 0, added.stderr
    [item] = json.loads(added.stdout)
    again = cli("add", url, "--json")  # the same URL again: the same item
    assert json.loads(again.stdout)[0] == {**item, "created": False}

    role_env = {**agent_env, "CONTENTCTL_DATABASE_URL": agent_role_url("w1")}
    agent = spawn_agent("--host", "w1", "--burst", env=role_env)
    _, err = agent.communicate(timeout=120)
    assert agent.returncode == 0, err

    shown = cli("media", str(item["id"]), "--json")
    view = json.loads(shown.stdout)
    assert view["state"] == "succeeded", view
    assert view["stages"] == {
        "download": "succeeded",
        "extract_audio": "succeeded",
        "transcribe": "succeeded",
        "stitch": "succeeded",
    }
    row = await media_row(conn, item["id"])
    assert row["title"] == "talk" and 17 < row["duration_s"] < 19  # yt-dlp's metadata
    text = Path(view["outputs"]["txt"]).read_text()
    assert similarity(text, SCRIPT) > 0.75, text
    for word in ("fox", "lazy", "garden", "bridge"):
        assert word in words(text)
    doc = json.loads(Path(view["outputs"]["transcript_json"]).read_text())
    # how it was made: 18 s of audio, so no VAD by default; the fleet's prompt
    assert doc["options"] == {"vad_filter": False, "initial_prompt": "A fox in a garden."}
    starts = [s["start"] for s in doc["segments"]]
    assert starts == sorted(starts) and all(s["end"] >= s["start"] for s in doc["segments"])
    srt = Path(view["outputs"]["srt"]).read_text()
    assert srt.startswith("1\n00:00:00,") and " --> " in srt
    assert Path(view["outputs"]["vtt"]).read_text().startswith("WEBVTT\n")
    assert Path(view["outputs"]["audio"]).is_relative_to(storage)
    # no half files left behind anywhere
    assert not [p for p in storage.rglob("*") if p.name.endswith(".part")]

    # re-stitch without downloading or transcribing again
    retried = cli("media", "retry", str(item["id"]), "--from", "stitch")
    assert retried.returncode == 0, retried.stderr
    assert "re-running from stitch (generation 2" in retried.stdout
    # the stages it kept are done in the new generation too (before: shown as pending)
    kept = json.loads(cli("media", str(item["id"]), "--json").stdout)["stages"]
    assert kept == {
        "download": "succeeded",
        "extract_audio": "succeeded",
        "transcribe": "succeeded",
        "stitch": "queued",
    }, kept
    agent = spawn_agent("--host", "w1", "--burst", env=role_env)
    _, err = agent.communicate(timeout=60)
    view = json.loads(cli("media", str(item["id"]), "--json").stdout)
    assert view["state"] == "succeeded" and view["generation"] == 2, view
    types = [t["type"] for t in await tasks_of(conn, item["id"])]
    assert types.count("download_youtube") == 1 and types.count("transcribe") == 1
    assert types.count("stitch") == 2


async def test_chunks_on_two_agents_stitch_without_seams_then_translate(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    agent_env: dict[str, str],
    conn: db.AsyncConn,
    tmp_path: Path,
    translation_api: http.server.ThreadingHTTPServer,
) -> None:
    api = translation_api
    write_inventory(
        agent_env,
        "pipeline:\n  chunk_s: 10\n  overlap_s: 3\n"
        f"  translate: {{backend: openai, url: 'http://127.0.0.1:{api.server_address[1]}/v1'}}\n"
        "task_types:\n  translate: {backoff_base_s: 0.1}\n"
        "hosts:\n"
        "  a: {address: 127.0.0.2, max_concurrent_tasks: 1,"
        " enabled_tasks: [extract_audio, transcribe, stitch, translate]}\n"
        "  b: {address: 127.0.0.3, max_concurrent_tasks: 1, enabled_tasks: [transcribe]}\n",
        storage=True,
    )
    env = {  # a keyring of its own, named on purpose (a plaintext file is never picked by itself)
        **agent_env,
        "XDG_DATA_HOME": str(tmp_path / "keys"),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
    }
    spawn_agent("--host", "b", env=env)
    # the item's own language and prompt (quotes and a `$(...)` reach Whisper as text), and a
    # priority every later stage inherits
    prompt = 'A "control plane"; seven machines $(transcribe) podcasts.'
    added = cli(
        "add",
        str(FIXTURES / "speech.ogg"),
        "--lang",
        "he",
        "--language",
        "en",
        "--prompt",
        prompt,
        "--priority",
        "5",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    media_id = json.loads(added.stdout)[0]["id"]
    spawn_agent("--host", "a", env=env)

    async def done() -> bool:
        view = json.loads(cli("media", str(media_id), "--json").stdout)
        assert view["state"] != "failed", view
        return bool(view["state"] == "succeeded")

    await wait_for(done, timeout_s=90, interval_s=0.5)
    chunks = [t for t in await tasks_of(conn, media_id) if t["type"] == "transcribe"]
    assert len(chunks) == 2
    assert {t["host"] for t in chunks} == {"a", "b"}  # one long item, two machines at once
    row = await media_row(conn, media_id)
    doc = json.loads(
        (
            Path(agent_env["CONTENTCTL_HOME"]) / "storage" / row["outputs"]["transcript_json"]
        ).read_text()
    )
    assert doc["options"]["initial_prompt"] == prompt and doc["language"] == "en"
    assert {t["priority"] for t in await tasks_of(conn, media_id)} == {5}
    seq = [w for s in doc["segments"] for w in words(s["text"])]
    starts = [s["start"] for s in doc["segments"]]
    assert starts == sorted(starts)
    assert not [a for a, b in itertools.pairwise(seq) if a == b], seq  # no doubled word
    assert len(seq) <= len(words(SCRIPT)) + 2  # the overlap was not kept twice
    assert similarity(" ".join(seq), SCRIPT) > 0.7, seq

    # the stitch enqueued the translation; it came back segment by segment, same timing
    view = json.loads(cli("media", str(media_id), "--json").stdout)
    assert view["stages"]["translate"] == "succeeded"
    translated = json.loads(Path(view["outputs"]["translations"]["he"]).read_text())
    assert [(t["start"], t["end"]) for t in translated["segments"]] == [
        (s["start"], s["end"]) for s in doc["segments"]
    ]
    assert all(t["text"].startswith("[he] ") for t in translated["segments"])


async def test_podcast_feed_added_twice_makes_each_episode_once(
    media_site: tuple[str, Path],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    agent_env: dict[str, str],
    conn: db.AsyncConn,
) -> None:
    base, root = media_site
    storage = write_inventory(
        agent_env,
        "hosts:\n  dl: {address: 127.0.0.2, enabled_tasks: [download_podcast]}\n",
        storage=True,
    )
    shutil.copy(root / "talk.ogg", root / "ep2.ogg")
    (root / "feed.xml").write_text(
        f"""<?xml version="1.0"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>
<title>Fleet Talk</title>
<item><title>Episode 2</title><guid>ep-2</guid><itunes:duration>0:18</itunes:duration>
 <pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate>
 <enclosure url="{base}/ep2.ogg" type="audio/ogg" length="72249"/></item>
<item><title>Episode 1</title><guid>ep-1</guid>
 <pubDate>Mon, 01 Jan 2024 10:00:00 GMT</pubDate>
 <enclosure url="{base}/talk.ogg" type="audio/ogg" length="72249"/></item>
</channel></rss>"""
    )
    first = cli("add", f"{base}/feed.xml", "--podcast", "--json")
    assert first.returncode == 0, first.stderr
    second = cli("add", f"{base}/feed.xml", "--podcast", "--json")
    assert [i["created"] for i in json.loads(first.stdout)] == [True, True]
    assert [i["created"] for i in json.loads(second.stdout)] == [False, False]
    cur = await conn.execute("SELECT title, channel, upload_date FROM media_items ORDER BY id")
    assert [dict(r) for r in await cur.fetchall()] == [
        {"title": "Episode 1", "channel": "Fleet Talk", "upload_date": "20240101"},
        {"title": "Episode 2", "channel": "Fleet Talk", "upload_date": "20240102"},
    ]
    cur = await conn.execute("SELECT count(*) AS n FROM tasks WHERE type = 'download_podcast'")
    assert (await cur.fetchone() or {})["n"] == 2

    agent = spawn_agent("--host", "dl", "--burst")
    _, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err
    for media_id in (1, 2):
        source = storage / f"media/{media_id}/source.ogg"
        assert source.read_bytes() == (FIXTURES / "speech.ogg").read_bytes()
    # the feed's titles and dates survive the download (before: the file name, "talk")
    cur = await conn.execute("SELECT title, upload_date FROM media_items ORDER BY id")
    assert [dict(r) for r in await cur.fetchall()] == [
        {"title": "Episode 1", "upload_date": "20240101"},
        {"title": "Episode 2", "upload_date": "20240102"},
    ]


async def test_corrupt_media_fails_once_with_ffmpegs_reason(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    agent_env: dict[str, str],
    tmp_path: Path,
    conn: db.AsyncConn,
) -> None:
    write_inventory(agent_env, "", storage=True)
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"this is not audio at all\n" * 200)
    spawn_agent("--host", "w1")
    waited = cli("add", str(bad), "--wait", "--json")
    assert waited.returncode == 1
    # stdout holds exactly one JSON document; the progress lines went to stderr
    [view] = json.loads(waited.stdout)
    assert view["id"] == 1 and view["state"] == "failed"
    assert "media 1 " in waited.stderr
    line = waited.stderr.splitlines()[-1]  # the verdict, after the progress lines
    assert line.startswith("media 1 failed")
    assert "ffmpeg could not read source.mp3" in line
    [task] = [t for t in await tasks_of(conn, 1) if t["type"] == "extract_audio"]
    assert task["state"] == "failed" and task["attempts"] == 1  # not retried
    assert "\n" not in task["error_message"]


async def test_payload_path_outside_the_storage_root_is_refused(
    spawn_agent: Callable[..., subprocess.Popen[str]],
    agent_env: dict[str, str],
    queue: Queue,
    conn: db.AsyncConn,
) -> None:
    storage = write_inventory(agent_env, "", storage=True)
    storage.mkdir(parents=True, exist_ok=True)
    secret = storage.parent / "outside.txt"
    secret.write_text("not yours")
    os.symlink(secret, storage / "link.ogg")
    specs = [
        TaskSpec("extract_audio", {"input": "../outside.txt", "out_dir": "media/1"}),
        TaskSpec("extract_audio", {"input": str(secret), "out_dir": "media/2"}),
        TaskSpec("extract_audio", {"input": "link.ogg", "out_dir": "media/3"}),
        TaskSpec("stitch", {"chunks": [{"path": "../../etc/passwd"}], "out_dir": "m"}),
    ]
    ids = [e.id for e in await queue.enqueue(specs)]
    agent = spawn_agent("--host", "w1", "--burst")
    agent.communicate(timeout=60)
    for task_id in ids:
        row = await fetch_task(conn, task_id)
        assert row["state"] == "failed" and row["attempts"] == 1, row
        assert "escapes the storage root" in row["error_message"]
    assert not (storage / "media").exists()  # nothing written


@pytest.fixture
def translation_api() -> Iterator[http.server.ThreadingHTTPServer]:
    """A loopback server speaking DeepL's and the chat completions API; stopped at the end."""
    _TranslationApi.calls, _TranslationApi.times = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TranslationApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


class _TranslationApi(http.server.BaseHTTPRequestHandler):
    """DeepL's /v2/translate and an OpenAI-compatible /v1/chat/completions; the first request
    of each is answered 429 with Retry-After."""

    calls: ClassVar[list[tuple[str, str | None]]] = []
    times: ClassVar[list[float]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append((self.path, self.headers.get("Authorization")))
        self.times.append(time.monotonic())
        if sum(1 for p, _ in self.calls if p == self.path) == 1:
            self.send_response(429)
            self.send_header("Retry-After", "2")
            self.end_headers()
            return
        if self.path == "/v2/translate":
            answer: Any = {
                "translations": [{"text": f"[{body['target_lang']}] {t}"} for t in body["text"]]
            }
        else:
            texts = json.loads(body["messages"][-1]["content"].split("\n", 1)[1])
            reply = json.dumps([f"[he] {t}" for t in texts])
            answer = {"choices": [{"message": {"role": "assistant", "content": reply}}]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.mark.parametrize("backend", ["deepl", "openai"])
async def test_translation_keeps_timing_and_honours_429(
    backend: str,
    spawn_agent: Callable[..., subprocess.Popen[str]],
    agent_env: dict[str, str],
    queue: Queue,
    conn: db.AsyncConn,
    tmp_path: Path,
    translation_api: http.server.ThreadingHTTPServer,
) -> None:
    server = translation_api
    url = f"http://127.0.0.1:{server.server_address[1]}" + ("/v1" if backend == "openai" else "")
    storage = write_inventory(
        agent_env,
        f"pipeline:\n  translate: {{backend: {backend}, url: '{url}'}}\n"
        "task_types:\n  translate: {backoff_base_s: 0.1}\n",
        storage=True,
    )
    env = {
        **agent_env,
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
    }
    key = "sk-test-9f8e7d6c5b4a"
    subprocess.run(
        [sys.executable, "-m", "keyring", "set", "contentctl", f"{backend}_api_key"],
        input=key + "\n",
        env=env,
        text=True,
        check=True,
        capture_output=True,
    )
    doc = {
        "language": "en",
        "segments": [
            {"start": 0.0, "end": 1.5, "text": "Hello fleet."},
            {"start": 1.5, "end": 3.25, "text": "The queue is empty.", "speaker": "S1"},
        ],
    }
    (storage / "media/7").mkdir(parents=True)
    (storage / "media/7/transcript.json").write_text(json.dumps(doc))
    lang = "de" if backend == "deepl" else "he"
    [t] = await queue.enqueue(
        [
            TaskSpec(
                "translate",
                {"lang": lang, "transcript": "media/7/transcript.json", "out_dir": "media/7"},
            )
        ]
    )
    agent = spawn_agent("--host", "tr", env=env)

    row = await wait_for(lambda: _succeeded(conn, t.id), timeout_s=60, interval_s=0.2)
    assert row["attempts"] == 2  # the 429 was a retryable failure
    assert "HTTP 429" in row["error_message"] and "retry after 2 s" in row["error_message"]
    gap = _TranslationApi.times[1] - _TranslationApi.times[0]
    assert gap >= 2.0  # Retry-After beat the type's 0.1 s backoff
    out = json.loads((storage / f"media/7/transcript.{lang}.json").read_text())
    prefix = "[DE]" if backend == "deepl" else "[he]"
    assert [(s["start"], s["end"], s["text"]) for s in out["segments"]] == [
        (0.0, 1.5, f"{prefix} Hello fleet."),
        (1.5, 3.25, f"{prefix} The queue is empty."),
    ]
    assert out["segments"][1]["speaker"] == "S1"
    srt = (storage / f"media/7/transcript.{lang}.srt").read_text()
    assert "00:00:01,500 --> 00:00:03,250" in srt
    auth = {a for _, a in _TranslationApi.calls}
    assert len(auth) == 1 and key in str(auth.pop())  # the key from the keychain was sent
    agent.terminate()
    _, err = agent.communicate(timeout=30)
    assert key not in err  # never logged
    logs = (Path(agent_env["CONTENTCTL_HOME"]) / "logs").rglob("*.jsonl")
    assert all(key not in p.read_text() for p in logs)


async def _succeeded(conn: db.AsyncConn, task_id: int) -> dict[str, Any] | None:
    row = await fetch_task(conn, task_id)
    assert row["state"] != "failed", row["error_message"]
    return row if row["state"] == "succeeded" else None


def test_demo_headless_runs_the_whole_pipeline_and_prints_the_transcript(
    own_pg_home: Path, tmp_path: Path
) -> None:
    """The README's first command, headless: embedded database, bundled sample, two agents.
    The fleet's download window (closed all day here) must not hold the demo back."""
    inv = tmp_path / "inventory.yaml"
    inv.write_text(
        "worker_limits:\n  download_youtube:\n"
        "    window: {start: '00:00', end: '00:01', end_jitter_minutes: 0}\n"
        "    delay: {min_s: 60, max_s: 90}\n"
    )
    env = {**os.environ, "CONTENTCTL_HOME": str(own_pg_home), "CONTENTCTL_INVENTORY": str(inv)}
    env.pop("CONTENTCTL_DATABASE_URL", None)
    demo = subprocess.Popen(
        [sys.executable, "-m", "tui.launcher", "demo", "--headless"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the demo and the agents it starts: one group to stop
    )
    try:
        stdout, stderr = demo.communicate(timeout=100)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)
        demo.wait()
    assert demo.returncode == 0, stdout + stderr
    assert "transcript: " in stdout
    text = stdout.split("transcript: ", 1)[1]
    for word in ("fox", "garden", "bridge"):
        assert word in words(text), stdout
    stopped = contentctl(env, "db", "stop", timeout=60)
    assert stopped.returncode == 0
