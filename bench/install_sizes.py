"""How big each role's environment is: the wheel built from a tree, installed into fresh venvs
with the extras each role gets, from the lock's pins (uv's cache first).

    uv run python bench/install_sizes.py [--tree DIR]

Roles: a worker that only downloads (the base), one that also extracts audio (`audio`), a
transcriber (`audio,transcribe`), the head (`head`: dashboard, web, provisioning, embedded
server), and everything (what `uv sync` gives a checkout). A tree from before the extras
existed installs everything in every role. Prints a table, then one JSON line (MB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROLES = {
    "worker (download)": "",
    "worker (download, extract)": "audio",
    "worker (transcribe)": "audio,transcribe",
    "head": "head",
    "everything": "head,audio,transcribe",
}


def _size_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total / 1e6


def install(
    uv: str, tree: Path, venv: Path, wheel: Path, extras: list[str]
) -> subprocess.CompletedProcess[str]:
    """The lock's pins for these extras (no dev group), then the wheel itself."""
    pins = venv.with_suffix(".txt")
    flags = [f"--extra={e}" for e in extras]
    export = subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--no-dev",
            "--no-hashes",
            "--no-emit-project",
            *flags,
            "--directory",
            str(tree),
            "--output-file",
            str(pins),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    if export.returncode != 0:
        return export
    pip = [uv, "pip", "install", "--quiet", "--python", str(venv)]
    done = subprocess.run([*pip, "-r", str(pins)], capture_output=True, text=True)
    if done.returncode != 0:
        return done
    return subprocess.run([*pip, "--no-deps", str(wheel)], capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=REPO, help="the checkout to build (default: this)")
    args = ap.parse_args()
    uv = shutil.which("uv")
    if uv is None:
        print("install_sizes: needs uv on PATH", file=sys.stderr)
        return 2
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        dist = Path(tmp) / "dist"
        subprocess.run(
            [uv, "build", "--wheel", "--out-dir", str(dist), str(args.tree)],
            check=True,
            capture_output=True,
        )
        [wheel] = dist.glob("*.whl")
        for role, extras in ROLES.items():
            venv = Path(tmp) / role.replace(" ", "_")
            started = time.monotonic()
            subprocess.run(
                [uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True
            )
            done = install(uv, args.tree, venv, wheel, extras.split(",") if extras else [])
            if done.returncode != 0:
                print(f"{role}: install failed: {done.stderr.strip()[:200]}", file=sys.stderr)
                continue
            figures[role] = round(_size_mb(venv), 1)
            print(
                f"{role:28} {figures[role]:8.1f} MB  ({time.monotonic() - started:.1f} s)",
                file=sys.stderr,
            )
    print(json.dumps({"tree": str(args.tree), "venv_mb": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
