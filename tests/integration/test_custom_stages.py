"""Stages and task types an operator declares in the inventory (a `command` type running an
argv template): real agents run real programs (small scripts this test writes) on real items."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from control.core import db
from tests.helpers import fetch_task, tasks_of, wait_for, write_inventory

pytestmark = pytest.mark.slow

ASSETS = Path(__file__).parent.parent.parent / "control" / "head" / "assets"

# A "summariser": fails the first time (a model still loading), then writes a summary of the
# transcript with the item's title, saying its progress on stdout.
SUMMARIZE = """\
import pathlib, sys
transcript, out, title, marker = sys.argv[1:5]
if not pathlib.Path(marker).exists():
    pathlib.Path(marker).write_text("once")
    print("model not loaded yet", file=sys.stderr)
    sys.exit(3)
print("progress 50%", flush=True)
words = pathlib.Path(transcript).read_text().split()
pathlib.Path(out).write_text(f"{title}: {' '.join(words[:4])}\\n")
print("1.0")
"""

# Writes the argv it was given as JSON (what a hostile value became).
ARGV = """\
import json, pathlib, sys
pathlib.Path(sys.argv[1]).write_text(json.dumps(sys.argv[2:]))
"""


async def test_a_summarize_stage_after_stitch_is_retried_rerun_alone_and_reconciled(
    media_site: tuple[str, Path],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    agent_env: dict[str, str],
    agent_role_url: Callable[[str], str],
    conn: db.AsyncConn,
    tmp_path: Path,
) -> None:
    script = tmp_path / "summarize.py"
    script.write_text(SUMMARIZE)
    marker = tmp_path / "loaded"
    storage = write_inventory(
        agent_env,
        "task_types:\n"
        "  summarize:\n"
        f"    command: [{sys.executable}, {script}, '{{file:transcript.txt}}',"
        f" '{{out:summary.txt}}', '{{meta:title}}', {marker}]\n"
        "    max_attempts: 3\n    backoff_base_s: 0.2\n    timeout_s: 60\n"
        "stages:\n"
        "  summarize: {after: stitch, match: {kind: [youtube]}}\n",
        storage=True,
    )
    added = cli("add", f"{media_site[0]}/talk.ogg", "--json")
    assert added.returncode == 0, added.stderr
    media_id = json.loads(added.stdout)[0]["id"]
    local = cli("add", str(ASSETS / "speech.ogg"), "--json")  # a file: the stage does not match
    assert local.returncode == 0, local.stderr
    local_id = json.loads(local.stdout)[0]["id"]

    # the agent runs as its own role: it enqueues the custom stage itself after stitch
    spawn_agent("--host", "w1", env={**agent_env, "CONTENTCTL_DATABASE_URL": agent_role_url("w1")})

    def view(mid: int) -> dict[str, Any]:
        shown = cli("media", str(mid), "--json")
        assert shown.returncode == 0, shown.stderr
        return dict(json.loads(shown.stdout))

    async def both_done() -> bool:
        views = [view(media_id), view(local_id)]
        assert all(v["state"] != "failed" for v in views), views
        return all(v["state"] == "succeeded" for v in views)

    await wait_for(both_done, timeout_s=90, interval_s=0.5)
    item = view(media_id)
    assert item["stages"] == {
        "download": "succeeded",
        "extract_audio": "succeeded",
        "transcribe": "succeeded",
        "stitch": "succeeded",
        "summarize": "succeeded",
    }
    assert "summarize" not in view(local_id)["stages"]  # matched youtube items only
    summary = Path(item["outputs"]["summarize:summary.txt"])
    assert summary.parent == Path(item["outputs"]["txt"]).parent  # next to the transcript
    assert summary.read_text().startswith("talk: ")  # the title from the download
    [task] = [t for t in await tasks_of(conn, media_id) if t["type"] == "summarize"]
    assert task["attempts"] == 2 and task["progress"] == 1.0  # failed once, then retried
    assert not list(storage.rglob("*.part"))

    # the text view and list name the stage like a built-in one
    listed = cli("media")
    assert "STITCH  SUMMARIZE" in listed.stdout.splitlines()[0], listed.stdout
    assert "summarize:summary.txt" in cli("media", str(media_id)).stdout

    # re-run only the custom stage
    summary.unlink()
    report = json.loads(cli("reconcile", "--json").stdout)
    assert [(f["kind"], f["stage"]) for f in report] == [("missing_file", "summarize")], report
    retried = cli("media", "retry", str(media_id), "--from", "summarize", "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["tasks"] == 1

    async def regenerated() -> bool:
        v = view(media_id)
        return bool(v["generation"] == 2 and v["state"] == "succeeded")

    await wait_for(regenerated, timeout_s=60, interval_s=0.5)
    assert summary.read_text().startswith("talk: ")
    types = [t["type"] for t in await tasks_of(conn, media_id)]
    assert types.count("summarize") == 2
    assert types.count("stitch") == 1 and types.count("transcribe") == 1


async def test_command_types_by_hand_hostile_values_missing_hanging_and_linking(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    agent_env: dict[str, str],
    conn: db.AsyncConn,
    tmp_path: Path,
) -> None:
    script = tmp_path / "argv.py"
    script.write_text(ARGV)
    storage = write_inventory(
        agent_env,
        "task_types:\n"
        f"  echoargs: {{command: [{sys.executable}, {script}, '{{out:argv.json}}',"
        " '{payload:text}', '--title={payload:text}', '{task_id}'], max_attempts: 1}\n"
        "  ghost: {command: [/nonexistent/summarizer, x], max_attempts: 3}\n"
        "  hang: {command: [sleep, '30'], timeout_s: 1, max_attempts: 1}\n"
        "  linker: {command: [ln, -s, /etc/passwd, '{out:x.txt}'], max_attempts: 3}\n"
        "hosts:\n"
        "  w1: {transport: local, max_concurrent_tasks: 4,"
        " enabled_tasks: [echoargs, ghost, hang, linker]}\n",
        storage=True,
    )
    hostile = 'a "quoted" $(touch pwned) `id`; rm -rf ~\nsecond line'
    broken = tmp_path / "broken.yaml"
    broken.write_text("task_types:\n  s:\n    command: [x, '{file:../../etc/shadow}']\n")
    checked = cli("inventory", "check", "--inventory", str(broken))
    assert checked.returncode == 2 and checked.stdout == ""
    assert checked.stderr.startswith(f"contentctl: error: {broken}:3: task_types.s.command.1: ")
    assert len(checked.stderr.splitlines()) == 1, checked.stderr
    refused = cli("enqueue", "nosuch")
    assert refused.returncode == 2
    assert "unknown task type 'nosuch'" in refused.stderr and "echoargs" in refused.stderr
    ids = {}
    for name, payload in (
        ("echoargs", {"text": hostile, "out_dir": "scratch/e"}),
        ("ghost", {}),
        ("hang", {}),
        ("linker", {"out_dir": "scratch/l"}),
    ):
        done = cli("enqueue", name, "--payload", json.dumps(payload), "--json")
        assert done.returncode == 0, done.stderr
        ids[name] = json.loads(done.stdout)[0]["id"]
    spawn_agent("--host", "w1")

    async def all_ended() -> bool:
        rows = [await fetch_task(conn, i) for i in ids.values()]
        return all(r["state"] in ("succeeded", "failed") for r in rows)

    await wait_for(all_ended, timeout_s=60, interval_s=0.3)
    rows = {name: await fetch_task(conn, i) for name, i in ids.items()}
    assert rows["echoargs"]["state"] == "succeeded", rows["echoargs"]
    argv = json.loads((storage / "scratch/e/argv.json").read_text())
    assert argv == [hostile, f"--title={hostile}", str(ids["echoargs"])]
    assert not list(storage.rglob("pwned")) and not list(tmp_path.rglob("pwned"))

    ghost = rows["ghost"]
    assert ghost["state"] == "failed" and ghost["attempts"] == 1  # not retried
    assert "/nonexistent/summarizer: command not found on host w1" in ghost["error_message"]
    hang = rows["hang"]
    assert hang["state"] == "failed" and "timed out after 1 s" in hang["error_message"]
    linker = rows["linker"]
    assert linker["state"] == "failed" and linker["attempts"] == 1
    assert "refused" in linker["error_message"]
    assert not (storage / "scratch/l/x.txt").exists()  # nothing published
    assert not [p for p in (storage / "scratch").rglob("*") if p.is_symlink()]
    # the hung command died with its task process
    alive = subprocess.run(["pgrep", "-f", "^sleep 30$"], capture_output=True, text=True)
    assert alive.stdout.strip() == "", alive.stdout
    assert os.path.exists(storage)
