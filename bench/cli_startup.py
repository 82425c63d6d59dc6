"""How long a script waits for `contentctl status --json` and `contentctl --help` in a fresh
process, against `python -c "import psycopg"` run side by side (the floor: a Python that can
talk to PostgreSQL at all).

    uv run python bench/cli_startup.py [--runs 10] [--tree DIR]

A throwaway state dir with the embedded server running (started once, before timing). Prints
the median and the ratio to the floor, then one JSON line. Target: both within 3x of the floor.
"""

from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _time(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, stdin=subprocess.DEVNULL)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-300:]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs of each command (median)")
    ap.add_argument("--tree", help="another checkout to time (the code before a change)")
    args = ap.parse_args()
    global REPO
    if args.tree:
        REPO = Path(args.tree).resolve()
    home = Path(tempfile.mkdtemp(prefix="contentctl-bench-cli-"))
    env = {**os.environ, "CONTENTCTL_HOME": str(home), "CONTENTCTL_INVENTORY": str(home / "i.yaml")}
    env.pop("CONTENTCTL_DATABASE_URL", None)
    (home / "i.yaml").write_text("hosts: {}\n")
    py = sys.executable
    cli = [py, "-m", "tui.launcher"]
    try:
        _time([*cli, "status"], env)  # the server started, the schema made: not timed
        cases = {
            "floor: import psycopg": [py, "-c", "import psycopg"],
            "status --json": [*cli, "status", "--json"],
            "--help": [*cli, "--help"],
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.runs):  # interleaved: the machine's noise falls on all alike
            for name, argv in cases.items():
                times[name].append(_time(argv, env))
        floor = statistics.median(times["floor: import psycopg"])
        out = {}
        for name, ts in times.items():
            med = statistics.median(ts)
            out[name] = {"median_s": round(med, 3), "ratio": round(med / floor, 2)}
            print(f"{name:24} median {med * 1000:7.0f} ms   {med / floor:5.2f}x the floor")
        print(json.dumps(out))
    finally:
        subprocess.run([*cli, "db", "stop"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
