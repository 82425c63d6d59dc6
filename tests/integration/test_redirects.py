"""A URL from outside that answers with a redirect to the cloud metadata address: the address
check holds on every hop (yt-dlp's download, a feed's poll, a playlist's listing, a webhook),
and the refusal is final, not retried.

The fetches run in a network namespace of their own with only loopback up (`unshare --net`),
so the redirect's target has no route at all: nothing leaves this machine even if a check
failed, and the test tells a refusal (ours, before connecting) from the kernel's "network is
unreachable" (what the code before did: a retryable failure after trying to connect)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import http.server, json, sys, threading
    from agent.child import ChildContext
    from agent.handlers import TaskError, resolve
    from control.head import alerts

    TARGET = "http://169.254.169.254/latest/meta-data/iam"

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", TARGET)
            self.end_headers()
        do_POST = do_GET
        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    ctx = ChildContext(1, 1, sys.stderr, {"storage_root": sys.argv[1]})
    out = {}
    for name, task_type, payload in (
        ("download", "download_podcast", {"url": base + "/talk.ogg", "out_dir": "media/1"}),
        ("feed", "poll_source", {"url": base + "/feed.xml", "source_id": 1}),
        ("playlist", "poll_source", {"url": base + "/list", "source_id": 2, "kind": "playlist"}),
    ):
        try:
            resolve(task_type)(payload, ctx)
            out[name] = {"ok": True}
        except TaskError as exc:
            out[name] = {"message": str(exc), "retryable": exc.retryable}
    try:
        alerts._post({"url": base + "/hook", "format": "json"}, {"status": "open", "rule": "r",
                      "message": "x"})
        out["webhook"] = {"ok": True}
    except Exception as exc:
        out["webhook"] = {"message": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_a_redirect_to_the_metadata_address_is_refused_on_every_hop(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            "unshare",
            "--net",
            "sh",
            "-c",
            'ip link set lo up && exec "$0" -c "$1" "$2"',
            sys.executable,
            SCRIPT,
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("cannot make a network namespace here (needs root)")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("download", "feed", "playlist"):
        assert "169.254.169.254" in out[name]["message"], out
        assert "link-local" in out[name]["message"], out
        assert out[name]["retryable"] is False, out
    assert "link-local" in out["webhook"]["message"], out
    assert not list(tmp_path.rglob("source*"))  # nothing stored
