"""The pipeline and its task types declared once (control/core/stages.py, tasktypes.py): a
stage declared in one place shows everywhere, and one declared half is refused."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from agent import executor, handlers
from control.cli import output
from control.core import pipeline, stages, tasktypes
from control.core.queue import TaskSpec
from control.head import media, reconcile

SUMMARIZE = stages.Stage(
    "summarize",
    ("noop",),
    ("transcript_json",),
    ("summary",),
    "summary",
    files=(("summary.txt", "summary"),),
)


@pytest.fixture
def with_summarize(monkeypatch: pytest.MonkeyPatch) -> None:
    """A throwaway stage after stitch, declared in the one place stages are declared."""
    at = stages.stages().index("stitch") + 1
    monkeypatch.setattr(
        stages, "DECLARED", (*stages.DECLARED[:at], SUMMARIZE, *stages.DECLARED[at:])
    )

    def start(item: dict[str, Any]) -> list[TaskSpec]:
        return [TaskSpec("noop", {"media_id": item["id"]}, media_id=item["id"])]

    async def record(a: pipeline.Advance) -> None:
        a.outputs["summary"] = a.result["path"]

    monkeypatch.setitem(pipeline._STARTS, "summarize", start)
    monkeypatch.setitem(pipeline._RECORDS, "summarize", record)


def _item(**outputs: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "source": "https://example.org/v",
        "kind": "youtube",
        "title": "t",
        "generation": 1,
        "options": {},
        "outputs": outputs,
        "duration_s": 10.0,
        "created_at": datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC),
    }


def _task(task_type: str, state: str, **payload: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "type": task_type,
        "state": state,
        "payload": payload,
        "host": "h1",
        "progress": None,
        "progress_stage": None,
        "error_message": None,
    }


def test_a_stage_declared_once_shows_in_media_retry_reconcile_the_cli_and_the_dashboard(
    with_summarize: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.check(stages.DECLARED, tasktypes.ALL_TYPES)  # whole: accepted
    assert pipeline.next_stage(_item(), "stitch") == "summarize"
    assert pipeline.next_stage(_item(), "summarize") is None  # translate: not asked for

    done = [
        _task("download_youtube", "succeeded"),
        _task("extract_audio", "succeeded"),
        _task("transcribe", "succeeded", chunks=1),
        _task("stitch", "succeeded"),
    ]
    view = media.view(_item(), [*done, _task("noop", "running")], Path("/"))
    assert list(view["stages"]) == [
        "download",
        "extract_audio",
        "transcribe",
        "stitch",
        "summarize",
    ]
    assert view["stages"]["summarize"] == "running" and view["state"] == "running"
    view = media.view(_item(), [*done, _task("noop", "succeeded")], Path("/"))
    assert view["state"] == "succeeded"  # the last stage the item runs is the new one

    output.print_media_list([view])
    header = capsys.readouterr().out.splitlines()[0].lower().split()
    assert header[2:-1] == ["download", "extract", "transcribe", "stitch", "summary", "translate"]

    recorded = reconcile._recorded({"summary": "media/7/summary.txt"})
    assert recorded == [("summarize", "media/7/summary.txt")]
    assert reconcile._files()["summary.txt"] == "summary"

    from tui.screens.media import MediaScreen

    assert ("summarize", "summary") in MediaScreen().stages


@pytest.mark.parametrize(
    ("stage", "why"),
    [
        (stages.Stage("x", (), (), ("o",), "x"), "at least one task type"),
        (stages.Stage("x", ("nope",), (), ("o",), "x"), "undeclared task types"),
        (stages.Stage("x", ("noop",), ("nothing_yet",), ("o",), "x"), "no earlier stage"),
        (stages.Stage("x", ("noop",), (), ("o",), "x"), "no @starts or no @records"),
        (stages.Stage("stitch", ("noop",), (), ("o",), "x"), "declared twice"),
    ],
)
def test_a_stage_declared_without_what_it_needs_is_refused(stage: stages.Stage, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        pipeline.check((*stages.DECLARED, stage), tasktypes.ALL_TYPES)


def test_task_types_declared_once_reach_the_agent() -> None:
    for t in tasktypes.DECLARED:
        assert handlers.HANDLERS[t.name] == t.handler
        assert tasktypes.policy(t.name) == t.policy
        assert (t.name in executor.WARM_TYPES) == t.warm
        assert (t.name in tasktypes.NO_STORAGE_TYPES) == (not t.storage)
    assert {pipeline.stage_of(t) for t in tasktypes.PIPELINE_TYPES} == set(stages.stages())
