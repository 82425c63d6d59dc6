"""The pipeline's pure parts: chunk planning, stitching at the seams, subtitle formats, paths."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from agent.stages.formats import to_srt, to_txt, to_vtt
from agent.stages.stitch import merge
from control.core.pipeline import plan_chunks
from control.core.storage import PathEscapes, atomic_write, resolve


def test_short_audio_is_one_chunk() -> None:
    assert [(c.start_s, c.end_s) for c in plan_chunks(30, 600, 5)] == [(0.0, 30.0)]


def test_chunks_overlap_cover_everything_and_leave_no_sliver() -> None:
    chunks = plan_chunks(3600, 600, 5)
    assert chunks[0].start_s == 0 and chunks[-1].end_s == 3600
    for a, b in itertools.pairwise(chunks):
        assert b.start_s < a.end_s and a.end_s - b.start_s == pytest.approx(5)
    # 1205 s at 600/5: a third window would hold 15 s; it is folded into the second
    two = plan_chunks(1205, 600, 5)
    assert [(c.start_s, c.end_s) for c in two] == [(0.0, 600.0), (595.0, 1205.0)]


def _w(word: str, start: float) -> dict[str, object]:
    return {"word": f" {word}", "start": start, "end": start + 0.4}


def test_merge_cuts_each_overlap_once_on_word_times() -> None:
    # chunk 0 covers 0-10, chunk 1 covers 7-17: the seam is at 8.5
    c0 = {
        "start_s": 0,
        "end_s": 10,
        "segments": [
            {
                "start": 6.0,
                "end": 10.0,
                "text": "",
                "words": [_w("alpha", 6.0), _w("beta", 7.5), _w("gam", 9.7)],
            },
        ],
    }
    c1 = {
        "start_s": 7,
        "end_s": 17,
        "segments": [
            {
                "start": 7.0,
                "end": 12.0,
                "text": "",
                "speaker": "S2",
                "words": [_w("ta", 7.0), _w("beta", 7.5), _w("gamma", 9.0), _w("delta", 11.0)],
            },
        ],
    }
    segs = merge([c1, c0])  # order of arrival does not matter
    text = " ".join(s["text"] for s in segs)
    assert text == "alpha beta gamma delta"
    assert segs[-1]["speaker"] == "S2"
    assert [s["start"] for s in segs] == sorted(s["start"] for s in segs)


def test_subtitle_formats() -> None:
    segs = [
        {"start": 0.0, "end": 1.5, "text": "Hello."},
        {"start": 3661.25, "end": 3662.0, "text": "Later.", "speaker": "S1"},
    ]
    assert to_srt(segs) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n01:01:01,250 --> 01:01:02,000\nS1: Later.\n"
    )
    assert to_vtt(segs).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello.\n")
    assert to_txt(segs) == "Hello.\nS1: Later.\n"


def test_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "media").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "media" / "sneaky")
    assert resolve(root, "media/1/audio.wav") == root.resolve() / "media/1/audio.wav"
    for bad in ("../x", "/etc/passwd", "media/../../x", "media/sneaky/file", ""):
        with pytest.raises(PathEscapes):
            resolve(root, bad)


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path: Path) -> None:
    dest = tmp_path / "t.txt"
    dest.write_text("whole")
    with pytest.raises(RuntimeError), atomic_write(dest) as fh:
        fh.write("half")
        raise RuntimeError("killed")
    assert dest.read_text() == "whole"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]
    with atomic_write(dest) as fh:
        fh.write("new")
    assert dest.read_text() == "new" and (dest.stat().st_mode & 0o777) == 0o644


def test_vad_is_on_for_long_audio_unless_the_inventory_says() -> None:
    from agent.stages.transcribe import decoding_options

    assert decoding_options({}, 30)["vad_filter"] is False
    assert decoding_options({}, 600)["vad_filter"] is True
    assert decoding_options({"vad_filter": False}, 600)["vad_filter"] is False
    assert decoding_options({"vad_filter": True, "initial_prompt": "Oban"}, 5) == {
        "vad_filter": True,
        "initial_prompt": "Oban",
    }


def test_every_task_type_has_a_handler_and_every_stage_a_type() -> None:
    import importlib

    from agent.handlers import HANDLERS
    from control.core import pipeline
    from control.core.tasktypes import ALL_TYPES

    assert set(HANDLERS) == set(ALL_TYPES)
    for task_type, ref in HANDLERS.items():
        module, _, name = ref.rpartition(".") if ":" not in ref else ref.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), task_type
    from control.core.tasktypes import PIPELINE_TYPES

    assert {pipeline.stage_of(t) for t in PIPELINE_TYPES} == set(pipeline.stages())


def test_an_items_language_and_prompt_reach_each_chunk_as_they_were_given() -> None:
    from control.core import pipeline
    from control.core.errors import UsageError
    from control.head import media

    hostile = 'Names: "Zoë" $(rm -rf ~) `id`\nand a second line; ok'
    opts = media.options([], {"chunk_s": 10, "overlap_s": 2}, 3, language="DE", prompt=hostile)
    item = {
        "id": 4,
        "generation": 1,
        "kind": "file",
        "duration_s": 25.0,
        "options": opts,
        "outputs": {"audio": "media/4/audio.wav"},
    }
    specs = pipeline.first_specs(item, "transcribe")
    assert len(specs) == 3
    for spec in specs:
        assert spec.payload["language"] == "de" and spec.payload["initial_prompt"] == hostile
        assert spec.priority == 3  # the item's priority, inherited by each later stage
    plain = pipeline.first_specs({**item, "options": media.options([], {}, 0)}, "transcribe")
    assert "language" not in plain[0].payload and "initial_prompt" not in plain[0].payload
    for bad in ("e", "en-US", "1234", "englishspoken"):
        with pytest.raises(UsageError, match="--language"):
            media.options([], {}, 0, language=bad)
    for bad in ("x" * 1001, "a\x00b"):
        with pytest.raises(UsageError, match="--prompt"):
            media.options([], {}, 0, prompt=bad)
