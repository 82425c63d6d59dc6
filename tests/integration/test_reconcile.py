"""`contentctl reconcile`: database versus storage, reported, then repaired with --fix."""

from __future__ import annotations

import json
from pathlib import Path

from psycopg.types.json import Jsonb

from control.core import db
from control.core.queue import Queue, TaskSpec
from tests.helpers import contentctl, fetch_task


async def test_reconcile_reports_then_fixes(
    agent_env: dict[str, str], queue: Queue, conn: db.AsyncConn
) -> None:
    storage = Path(agent_env["CONTENTCTL_HOME"]) / "storage"
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(f"storage_root: {storage}\n")
    # a running task whose agent vanished
    [stuck] = await queue.enqueue([TaskSpec("noop")])
    await queue.claim("gone-host", ["noop"], limit=1, lease_s=30)
    await conn.execute(
        "UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = %s",
        (stuck.id,),
    )
    # item 1: stitched, but its transcript files were deleted
    # item 2: a translation on disk that the database does not list
    outputs1 = {
        "source": "media/1/source.ogg",
        "audio": "media/1/audio.wav",
        "chunks": [{"path": "media/1/chunks/0000.json", "start_s": 0, "end_s": 5}],
        "transcript_json": "media/1/transcript.json",
        "srt": "media/1/transcript.srt",
        "vtt": "media/1/transcript.vtt",
        "txt": "media/1/transcript.txt",
    }
    for rel in (
        "media/1/source.ogg",
        "media/1/audio.wav",
        "media/1/chunks/0000.json",
        "media/2/transcript.json",
        "media/2/transcript.de.json",
        "media/2/.transcript.he.json.x.part",
        "media/9/junk",
    ):
        (storage / rel).parent.mkdir(parents=True, exist_ok=True)
        (storage / rel).write_text("x")
    for outputs in (outputs1, {"transcript_json": "media/2/transcript.json"}):
        await conn.execute(
            "INSERT INTO media_items (kind, source, outputs, options, duration_s) "
            "VALUES ('youtube', 'http://127.0.0.1/x', %s, %s, 5)",
            (Jsonb(outputs), Jsonb({"langs": ["de"]})),
        )

    report = contentctl(agent_env, "reconcile", "--json")
    assert report.returncode == 1, report.stderr
    found = {(f["kind"], f.get("media_id")) for f in json.loads(report.stdout)}
    assert found == {
        ("expired_lease", None),
        ("missing_file", 1),
        ("unrecorded_file", 2),
        ("orphan_dir", None),
    }
    assert (await fetch_task(conn, stuck.id))["state"] == "running"  # a report changes nothing

    fixed = contentctl(agent_env, "reconcile", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "re-running from stitch" in fixed.stdout
    row = await fetch_task(conn, stuck.id)
    assert row["state"] == "queued" and row["host"] is None
    cur = await conn.execute("SELECT type, payload FROM tasks WHERE media_id = 1")
    [(task_type, payload)] = [(r["type"], r["payload"]) for r in await cur.fetchall()]
    assert task_type == "stitch" and payload["generation"] == 2
    cur = await conn.execute("SELECT outputs FROM media_items WHERE id = 2")
    outputs2 = (await cur.fetchone() or {})["outputs"]
    assert outputs2["translations"] == {"de": {"json": "media/2/transcript.de.json"}}
    assert (storage / "media/9/junk").exists()  # never deleted

    again = contentctl(agent_env, "reconcile")
    assert again.returncode == 0, again.stdout
    assert "orphan_dir" in again.stdout and "missing_file" not in again.stdout
    # no promise --fix will not keep (before: "`reconcile --fix` repairs them", then it left it)
    assert "--fix` repairs" not in again.stdout and "remove them by hand" in again.stdout
