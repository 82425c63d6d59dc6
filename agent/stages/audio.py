"""`extract_audio`: ffmpeg to 16 kHz mono 16-bit WAV, what Whisper wants."""

from __future__ import annotations

import logging
import shutil
import subprocess
import wave
from functools import cache
from typing import Any

from agent.handlers import Context, TaskError
from agent.stages import out_dir, path, rel
from control.core.storage import atomic_path

SAMPLE_RATE = 16_000
log = logging.getLogger(__name__)


@cache
def ffmpeg() -> str:
    """The system's ffmpeg if it starts, else the static one in the imageio-ffmpeg wheel. A
    system ffmpeg that cannot start (a missing shared library after an upgrade) is a broken
    tool, not broken media: it is passed over, said once in the log."""
    found = shutil.which("ffmpeg")
    if found:
        problem = _cannot_start(found)
        if problem is None:
            return found
        log.warning("the system's ffmpeg (%s) cannot start (%s): using the bundled one", found,
                    problem)  # fmt: skip
    import imageio_ffmpeg

    bundled = str(imageio_ffmpeg.get_ffmpeg_exe())
    problem = _cannot_start(bundled)
    if problem is not None:
        raise TaskError(
            f"no ffmpeg starts on this host ({problem}): install ffmpeg, or reinstall "
            "contentctl (imageio-ffmpeg)",
            retryable=True,
        )
    return bundled


def _cannot_start(exe: str) -> str | None:
    """Why `exe -version` fails (one line), or None when it runs."""
    try:
        proc = subprocess.run(
            [exe, "-version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None if proc.returncode == 0 else _reason(proc.stderr or proc.stdout)


def _reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else "no error output"


def extract_audio(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    src = path(ctx, payload, "input")
    if not src.is_file():
        raise TaskError(f"extract_audio: input {rel(ctx, src)} does not exist", retryable=False)
    dest = out_dir(ctx, payload) / "audio.wav"
    ctx.progress(0.0, "extracting")
    with atomic_path(dest) as tmp:
        proc = subprocess.run(
            [
                ffmpeg(),
                "-nostdin",
                "-hide_banner",
                "-v",
                "error",
                "-y",
                "-i",
                str(src),
                "-vn",
                "-ac",
                "1",
                "-ar",
                str(SAMPLE_RATE),
                "-c:a",
                "pcm_s16le",
                "-f",
                "wav",
                str(tmp),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise TaskError(
                f"ffmpeg could not read {src.name}: {_reason(proc.stderr)}", retryable=False
            )
        with wave.open(str(tmp), "rb") as w:
            frames = w.getnframes()
        if frames == 0:
            raise TaskError(f"ffmpeg found no audio in {src.name}", retryable=False)
    return {"path": rel(ctx, dest), "duration_s": round(frames / SAMPLE_RATE, 3)}
