"""The embedded server: one per state dir however many commands start at once; `db serve`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from control.head.embedded import EmbeddedServer
from tui.launcher import main

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh_home(
    tmp_path: Path, own_pg_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A state dir of its own; whatever server starts in it is stopped by pid afterwards."""
    home = own_pg_home
    monkeypatch.setenv("CONTENTCTL_HOME", str(home))
    monkeypatch.delenv("CONTENTCTL_DATABASE_URL", raising=False)
    monkeypatch.setenv("CONTENTCTL_INVENTORY", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("hosts: {}\n")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # the test keyring's file
    # named on purpose: a plaintext file keyring is never picked by itself
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    try:
        yield home
    finally:
        for proc in _postmasters(home):
            with contextlib.suppress(psutil.NoSuchProcess):
                os.kill(proc.pid, signal.SIGKILL)


def _postmasters(home: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(home / "pgdata") in cmd:
            found.append(proc)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_commands_at_once_start_one_server(fresh_home: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from control.head.embedded import EmbeddedServer;"
        "print(EmbeddedServer(Path(sys.argv[1])).ensure_running())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(fresh_home)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    uris = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(uris) == 1
    assert len(_postmasters(fresh_home)) == 1
    with psycopg.connect(uris.pop()) as c:
        assert c.execute("SELECT current_database()").fetchone() == ("contentctl",)


def test_db_serve_listens_with_scram_and_keeps_the_password_secret(
    fresh_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    assert main(["status"]) == 0  # first use: server started, schema created
    assert main(["db", "serve", "--listen", "127.0.0.1", "--port", str(port)]) == 0
    out = capsys.readouterr().out
    assert "***" in out

    assert main(["db", "url"]) == 0
    redacted = capsys.readouterr().out.strip()
    assert redacted.startswith(f"postgresql://contentctl:***@127.0.0.1:{port}/contentctl")
    assert main(["db", "url", "--show-password"]) == 0
    url = capsys.readouterr().out.strip()
    password = url.split(":")[2].split("@")[0]
    assert len(password) >= 24

    # The agent role works over TCP with the password: reads and writes the queue.
    with psycopg.connect(url, connect_timeout=5) as c:
        c.execute("INSERT INTO tasks (type) VALUES ('noop')")
        assert c.execute("SELECT count(*) FROM tasks").fetchone() == (1,)
    # Nobody gets in over TCP without it, not even the superuser on loopback.
    for bad in (
        f"postgresql://contentctl:wrong@127.0.0.1:{port}/contentctl",
        f"postgresql://postgres@127.0.0.1:{port}/contentctl",
    ):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(bad, connect_timeout=5)

    # A restart keeps serving (serve.json), and the password never reached a log.
    server = EmbeddedServer(fresh_home)
    assert server.stop()
    server.ensure_running()
    with psycopg.connect(url, connect_timeout=5) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    for log in (fresh_home / "pgdata" / "log", fresh_home / "pg_ctl.log"):
        if log.exists():
            assert password not in log.read_text(errors="replace")
    assert password not in (fresh_home / "serve.json").read_text()


def test_db_url_before_serve_says_what_to_do(
    fresh_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "url"]) == 1
    assert "run `contentctl db serve`" in capsys.readouterr().err


def test_db_serve_on_a_taken_port_fails_clearly_and_keeps_the_server_up(
    fresh_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status"]) == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["db", "serve", "--listen", "127.0.0.1", "--port", str(port)])
        err = capsys.readouterr().err
    assert code == 2
    assert "pg_ctl start" in err and len(err.strip().splitlines()) == 1
    assert not (fresh_home / "serve.json").exists()  # the old (socket-only) config stands
    assert main(["status"]) == 0  # and the server is back up


def test_the_embedded_server_allows_connections_for_a_fleet(fresh_home: Path) -> None:
    port = _free_port()
    assert main(["db", "serve", "--listen", "127.0.0.1", "--port", str(port)]) == 0
    url = EmbeddedServer(fresh_home).ensure_running()
    with psycopg.connect(url) as c:
        assert c.execute("SHOW max_connections").fetchone() == ("500",)
