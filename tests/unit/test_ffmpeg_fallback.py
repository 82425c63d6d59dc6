"""A system ffmpeg that cannot start (a shared library gone after an upgrade) is a broken tool,
not broken media: the bundled ffmpeg takes over (before: the item failed for good as
unreadable media, and the broken binary was preferred)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPEECH = REPO / "control/head/assets/speech.ogg"


def test_a_broken_system_ffmpeg_falls_back_to_the_bundled_one(tmp_path: Path) -> None:
    shims = tmp_path / "bin"
    shims.mkdir()
    fake = shims / "ffmpeg"
    fake.write_text(
        "#!/bin/sh\necho 'ffmpeg: error while loading shared libraries: libavdevice.so.59: "
        "cannot open shared object file: No such file or directory' >&2\nexit 127\n"
    )
    fake.chmod(0o755)
    storage = tmp_path / "storage"
    (storage / "media/1").mkdir(parents=True)
    (storage / "media/1/source.ogg").write_bytes(SPEECH.read_bytes())
    code = (
        "import json, sys\n"
        "from agent.child import ChildContext\n"
        "from agent.stages.audio import extract_audio\n"
        f"ctx = ChildContext(1, 1, sys.stderr, {{'storage_root': {str(storage)!r}}})\n"
        "print(json.dumps(extract_audio({'input': 'media/1/source.ogg', 'out_dir': 'media/1'},"
        " ctx)))\n"
    )
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["duration_s"] > 5
    assert "cannot start" in done.stderr and "bundled" in done.stderr
