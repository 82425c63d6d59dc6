"""`extract_audio`: ffmpeg to 16 kHz mono 16-bit WAV, what Whisper wants."""

from __future__ import annotations

import shutil
import subprocess
import wave
from functools import cache
from typing import Any

from agent.handlers import Context, TaskError
from agent.stages import out_dir, path, rel
from control.core.storage import atomic_path

SAMPLE_RATE = 16_000


@cache
def ffmpeg() -> str:
    """The system's ffmpeg, else the static one in the imageio-ffmpeg wheel."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


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
