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
    declared = (*stages.DECLARED[:at], SUMMARIZE, *stages.DECLARED[at:])
    monkeypatch.setattr(stages, "DECLARED", declared)
    monkeypatch.setattr(stages, "_current", declared)  # the pipeline in force: built-ins only

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
    assert list(view.stages) == [
        "download",
        "extract_audio",
        "transcribe",
        "stitch",
        "summarize",
    ]
    assert view.stages["summarize"] == "running" and view.state == "running"
    view = media.view(_item(), [*done, _task("noop", "succeeded")], Path("/"))
    assert view.state == "succeeded"  # the last stage the item runs is the new one

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


INVENTORY_STAGE = """\
task_types:
  summarize:
    command: [llm, --in, "{file:transcript.txt}", --out, "{out:summary.txt}", "{meta:title}"]
    timeout_s: 30
  index:
    command: [indexer, "{file:summary.txt}", "{out:index.json}"]
stages:
  index: {after: summarize, match: {language: [en]}}
  summarize: {after: stitch, match: {kind: [youtube, podcast]}}
hosts:
  w1: {transport: local, enabled_tasks: [summarize, noop]}
  w2: {transport: local}
"""


@pytest.fixture
def in_force() -> Any:
    """Whatever a test makes the process's types and stages, the built-ins again after it."""
    yield
    tasktypes.use(())
    stages.use(())


def test_an_inventory_stage_is_placed_checked_and_known_everywhere(
    tmp_path: Path, in_force: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from control.core import inventory

    inv = inventory.parse(INVENTORY_STAGE, tmp_path / "inventory.yaml").use()
    # declared out of order, placed by what each follows; reads tied to the writer's output
    assert stages.stages() == (
        "download",
        "extract_audio",
        "transcribe",
        "stitch",
        "summarize",
        "index",
        "translate",
    )
    summarize, index = stages.by_name("summarize"), stages.by_name("index")
    assert summarize.needs == ("txt",) and index.needs == ("summarize:summary.txt",)
    assert inv.hosts["w1"].enabled_tasks == ("summarize", "noop")
    assert "index" in inv.hosts["w2"].enabled_tasks  # every type, the inventory's included
    assert tasktypes.is_known("summarize") and tasktypes.policy("summarize").timeout_s == 30
    assert inv.task_types["summarize"].timeout_s == 30  # the queue's policy too

    item = _item(txt="media/7/transcript.txt")
    assert pipeline.next_stage(item, "stitch") == "summarize"
    assert pipeline.next_stage({**item, "kind": "file"}, "stitch") is None  # kind does not match
    # language: the item's own, else the one stitch detected
    with_lang = {**item, "metadata": {"language": "en"}}
    assert pipeline.next_stage(with_lang, "summarize") == "index"
    assert pipeline.next_stage(item, "summarize") is None
    [spec] = pipeline.first_specs(item, "summarize")
    assert spec.type == "summarize" and spec.unique_key == "summarize:7:1"
    assert spec.payload["files"] == {"transcript.txt": "media/7/transcript.txt"}
    assert spec.payload["meta"]["title"] == "t" and "command" not in spec.payload

    # media's view, the CLI's columns, reconcile's files, retry's list of stages
    view = media.view(_item(), [], Path("/"))
    assert list(view.stages)[-1] == "summarize"  # index: only for English items
    output.print_media_list([view])
    header = capsys.readouterr().out.splitlines()[0].lower().split()
    assert header[2:-1] == [
        "download", "extract", "transcribe", "stitch", "summarize", "index", "translate"
    ]  # fmt: skip
    assert reconcile._files()["summary.txt"] == "summarize:summary.txt"
    assert reconcile._recorded({"summarize:summary.txt": "media/7/summary.txt"}) == [
        ("summarize", "media/7/summary.txt")
    ]
    from tui.screens.media import MediaScreen

    assert ("summarize", "summarize") in MediaScreen().stages  # the dashboard's columns


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        (
            "task_types:\n  s:\n    command: [x, '{nope}']\n",
            3,
            r"task_types\.s\.command\.1: unknown placeholder \{nope\}",
        ),
        (
            "task_types:\n  s: {command: [x, '{out:../etc/passwd}']}\n",
            2,
            "not a plain file name",
        ),
        ("task_types:\n  s: {command: [x, '{meta:password}']}\n", 2, "unknown item key"),
        ("task_types:\n  s: {command: ['{source}']}\n", 2, "must be written out"),
        ("task_types:\n  s: {command: [x, 'a{b']}\n", 2, "a lone '{'"),
        ("task_types:\n  s: {timeout_s: 5}\n", 2, "declare it with command"),
        (
            "task_types:\n  s: {command: [x, '{out:a.txt}']}\nstages:\n  s: {after: nowhere}\n",
            4,
            "follows 'nowhere', which is not a stage",
        ),
        (
            "task_types:\n  s: {command: [x, '{file:notes.txt}', '{out:a.txt}']}\n"
            "stages:\n  s: {after: stitch}\n",
            4,
            r"reads \{file:notes.txt\}, which no stage before it writes",
        ),
        ("stages:\n  s: {after: stitch, type: noop}\n", 2, "not a command type"),
        (
            "task_types:\n  s: {command: [x]}\nstages:\n  s: {after: stitch}\n",
            4,
            "writes no {out:NAME}",
        ),
        (
            "task_types:\n  s: {command: [x, '{out:transcript.txt}']}\n"
            "stages:\n  s: {after: stitch}\n",
            4,
            "which an earlier stage writes",
        ),
        (
            "task_types:\n  s: {command: [x, '{out:a.txt}']}\n"
            "stages:\n  s: {after: stitch, match: {kind: [vhs]}}\n",
            4,
            "unknown kinds",
        ),
        ("task_types:\n  stitch: {command: [x]}\n", 2, "unknown key"),
        ("hosts:\n  w: {enabled_tasks: [summarize]}\n", 2, "unknown task type 'summarize'"),
    ],
)
def test_an_inventory_stage_or_type_declared_wrong_is_refused_with_its_line(
    tmp_path: Path, text: str, line: int, why: str
) -> None:
    from control.core import inventory
    from control.core.errors import UsageError

    path = tmp_path / "inventory.yaml"
    with pytest.raises(UsageError, match=why) as err:
        inventory.parse(text, path)
    assert str(err.value).startswith(f"{path}:{line}: "), err.value
    assert "\n" not in str(err.value)
