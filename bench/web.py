"""What a browser tab on `contentctl web` costs: first paint in a real browser (Debian's
chromium, headless, through Playwright) and the memory of each tab's dashboard process, against
the terminal dashboard's own process run side by side.

    uv run python bench/web.py [--tabs 3]

A throwaway state dir (the embedded server), the repository's inventory, 200 queued tasks.
First paint: from opening the page with its token to the first screen drawn; RSS and USS
(memory only this process holds) of each session process after 5 s, and of the server.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers import CHROMIUM_ARGS


def _mb(p: psutil.Process) -> tuple[float, float]:
    info = p.memory_full_info()
    return info.rss / 1e6, info.uss / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tabs", type=int, default=3, help="tabs opened one after the other")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="contentctl-bench-web."))
    env = {
        **os.environ,
        "CONTENTCTL_HOME": str(home),
        "CONTENTCTL_INVENTORY": str(REPO / "inventory.yaml"),
        "XDG_DATA_HOME": str(home / "keys"),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
    }
    env.pop("CONTENTCTL_DATABASE_URL", None)
    cli = [sys.executable, "-m", "tui.launcher"]
    subprocess.run([*cli, "enqueue", "noop", "--count", "200"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    port = 18765
    web = subprocess.Popen(
        [*cli, "web", "--port", str(port), "--max-sessions", str(args.tabs + 1)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    figures: dict[str, object] = {}
    try:
        assert web.stdout is not None
        url = web.stdout.readline().strip()
        paints: list[float] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
            )
            pages = []
            for _ in range(args.tabs):
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                started = time.monotonic()
                page.goto(url)
                page.wait_for_function(
                    "document.body.classList.contains('-first-byte')", timeout=60_000
                )
                paints.append(time.monotonic() - started)
                pages.append(page)
            pages[-1].wait_for_timeout(5000)
            server = psutil.Process(web.pid)
            sessions = [
                p for p in server.children(recursive=True)
                if "tui.web_session" in " ".join(p.cmdline())
            ]  # fmt: skip
            mems = [_mb(p) for p in sessions]
            figures = {
                "tabs": args.tabs,
                "first_paint_s": [round(p, 2) for p in paints],
                "first_paint_median_s": round(statistics.median(paints), 2),
                "tab_rss_mb": [round(r, 1) for r, _ in mems],
                "tab_uss_mb": [round(u, 1) for _, u in mems],
                "server_rss_mb": round(_mb(server)[0], 1),
            }
            browser.close()
        # the terminal dashboard's process, for comparison: the same app, no server around it
        term = subprocess.Popen(
            [
                "script",
                "-qfc",
                " ".join([*cli, "--inventory", str(REPO / "inventory.yaml")]),
                "/dev/null",
            ],
            env={**env, "TERM": "xterm-256color", "COLUMNS": "142", "LINES": "44"},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(6)
        kids = [
            p for p in psutil.Process(term.pid).children(recursive=True)
            if "tui.launcher" in " ".join(p.cmdline())
        ]  # fmt: skip
        if kids:
            rss, uss = _mb(kids[0])
            figures["terminal_rss_mb"], figures["terminal_uss_mb"] = round(rss, 1), round(uss, 1)
        os.killpg(term.pid, signal.SIGKILL)
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=30)
        subprocess.run([*cli, "db", "stop"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:22} {value}", file=sys.stderr)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
