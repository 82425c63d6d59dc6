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
from tests.helpers import free_port
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
    port = free_port()
    assert main(["status"]) == 0  # first use: server started, schema created
    assert main(["db", "serve", "--listen", "127.0.0.1", "--port", str(port)]) == 0
    out = capsys.readouterr().out
    assert f"agents connect to postgresql://127.0.0.1:{port}/contentctl as their own role" in out

    assert main(["db", "url"]) == 0  # the address alone: no shared role any more
    assert capsys.readouterr().out.strip() == f"postgresql://127.0.0.1:{port}/contentctl"
    assert main(["db", "url", "--host", "h1"]) == 0
    redacted = capsys.readouterr().out.strip()
    assert redacted.startswith(f"postgresql://agent_h1:***@127.0.0.1:{port}/contentctl")
    assert main(["db", "url", "--host", "h1", "--show-password"]) == 0
    url = capsys.readouterr().out.strip()
    password = url.split(":")[2].split("@")[0]
    assert len(password) >= 24

    # The host's role works over TCP with the password, with an agent's rights only.
    with psycopg.connect(url, connect_timeout=5) as c:
        assert c.execute("SELECT count(*) FROM tasks").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("DELETE FROM tasks")
    # Nobody gets in over TCP without it, not even the superuser on loopback.
    for bad in (
        f"postgresql://agent_h1:wrong@127.0.0.1:{port}/contentctl",
        f"postgresql://postgres@127.0.0.1:{port}/contentctl",
        f"postgresql://contentctl:{password}@127.0.0.1:{port}/contentctl",
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


def test_db_serve_retires_the_shared_all_data_role(
    fresh_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fleet set up by an earlier version: its `contentctl` role read and wrote every table,
    bypassing row-level security, and logged in over TCP. `db serve` takes that away and says
    so; nothing with write-all logs in over TCP afterwards."""
    port = free_port()
    assert main(["status"]) == 0
    admin = EmbeddedServer(fresh_home).ensure_running()
    with psycopg.connect(admin, autocommit=True) as c:  # as the old `db serve` made it
        c.execute("CREATE ROLE contentctl LOGIN PASSWORD 'old-shared-secret'")
        c.execute("GRANT pg_read_all_data, pg_write_all_data TO contentctl")
    assert main(["db", "serve", "--listen", "127.0.0.1", "--port", str(port)]) == 0
    assert "retired the shared role 'contentctl'" in capsys.readouterr().out
    admin = EmbeddedServer(fresh_home).ensure_running()  # the socket moved with the port
    with psycopg.connect(admin) as c:
        assert c.execute(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'contentctl'"
        ).fetchone() == (False,)
        writers = c.execute(
            "SELECT r.rolname FROM pg_roles AS r WHERE r.rolcanlogin AND r.rolname <> 'postgres'"
            " AND pg_has_role(r.oid, 'pg_write_all_data', 'USAGE')"
        ).fetchall()
        assert writers == []
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            f"postgresql://contentctl:old-shared-secret@127.0.0.1:{port}/contentctl",
            connect_timeout=5,
        )


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
    """On this machine alone: 500 connections; served to a fleet (`db serve`): two sessions
    for each of 500 agents and a hundred for the head (README, A fleet of hundreds)."""
    url = EmbeddedServer(fresh_home).ensure_running()
    with psycopg.connect(url) as c:
        assert c.execute("SHOW max_connections").fetchone() == ("500",)
    port = free_port()
    assert main(["db", "serve", "--listen", "127.0.0.1", "--port", str(port)]) == 0
    url = EmbeddedServer(fresh_home).ensure_running()
    with psycopg.connect(url) as c:
        assert c.execute("SHOW max_connections").fetchone() == ("1100",)


def test_a_host_s_own_role_can_work_and_cannot_hurt_the_fleet(fresh_home: Path) -> None:
    """Each attack runs as host h1's agent role over TCP against `db serve`; each is refused,
    and the work an agent does (claim, complete, beat, ship logs, read its commands) goes."""
    import asyncio

    from control.core import db, fleet
    from control.core.queue import Queue, TaskSpec
    from control.core.settings import DatabaseTarget
    from control.head import dbserve

    port = free_port()
    assert main(["status"]) == 0
    assert main(["db", "serve", "--listen", "127.0.0.1", "--port", str(port)]) == 0

    async def attacks() -> None:
        target = DatabaseTarget(None)
        url_h1 = dbserve.host_agent_url(target, "h1")
        url_h2 = dbserve.host_agent_url(target, "h2")
        assert url_h1.startswith("postgresql://agent_h1:") and f"@127.0.0.1:{port}/" in url_h1

        head = await db.open_url(EmbeddedServer(fresh_home).ensure_running())
        [queued] = await Queue(head).enqueue([TaskSpec("noop")])
        await fleet.send_command(head, "h2", "drain", {})

        # what an agent does, as h1
        agent = await db.connect(url_h1)
        q = Queue(agent)
        [claimed] = await q.claim("h1", ["noop"], limit=1)
        assert claimed.id == queued.id and await q.complete(claimed)
        await fleet.insert_logs(agent, "h1", [])
        assert await fleet.pending_commands(agent, "h2") == []  # h2's command is not h1's to see

        h2 = await db.connect(url_h2)  # h2 sees its own command
        assert len(await fleet.pending_commands(h2, "h2")) == 1

        async def refused(statement: str) -> None:
            conn = await psycopg.AsyncConnection.connect(url_h1, autocommit=True)
            try:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    await conn.execute(statement)
            finally:
                await conn.close()

        await refused("DELETE FROM tasks")
        await refused("TRUNCATE tasks")
        await refused("INSERT INTO contentctl_schema (version, name) VALUES (99, 'evil')")
        await refused("UPDATE task_stats SET count = 0")
        await refused("ALTER ROLE agent_h2 PASSWORD 'taken-over'")
        await refused("SELECT rolpassword FROM pg_authid")
        await refused("INSERT INTO agent_commands (host, command) VALUES ('h2', 'stop')")
        await refused("CREATE ROLE intruder LOGIN")
        # another host's backend
        h2_pid = (await (await h2.execute("SELECT pg_backend_pid() AS pid")).fetchone())["pid"]
        await refused(f"SELECT pg_terminate_backend({h2_pid})")
        # another host's heartbeat row: invisible, and not writable as h1
        conn = await psycopg.AsyncConnection.connect(url_h1, autocommit=True)
        try:
            cur = await conn.execute("UPDATE agent_commands SET acked_at = now() WHERE host = 'h2'")
            assert cur.rowcount == 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege):  # row-level security
                await conn.execute(
                    "INSERT INTO host_daily_counts (host, type, day, count) "
                    "VALUES ('h2', 'noop', current_date, 999)"
                )
        finally:
            await conn.close()
        assert len(await fleet.pending_commands(h2, "h2")) == 1  # untouched
        for c in (agent, h2, head):
            await c.close()

    asyncio.run(attacks())


def test_no_local_user_but_ours_reaches_the_database(own_pg_home: Path) -> None:
    """The probe: a state dir so deep the socket cannot live in it (before: a world-writable
    /tmp dir with a `trust` socket, where any local user logged in as postgres), and another
    local user (nobody) trying the socket."""
    import pwd

    deep = own_pg_home / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    server = EmbeddedServer(deep)
    try:
        uri = server.ensure_running()
        hba = (deep / "pgdata" / "pg_hba.conf").read_text()
        assert "trust" not in hba and "peer map=contentctl" in hba
        socket_dir = Path(uri.split("host=")[1].split("&")[0])
        assert socket_dir != deep / "pgdata"  # too long: our own private directory
        assert socket_dir.stat().st_mode & 0o777 == 0o700
        with psycopg.connect(uri, connect_timeout=5) as c:  # we (root) still get in
            assert c.execute("SELECT 1").fetchone() == (1,)
        if os.geteuid() == 0 and os.access("/usr/bin/python3", os.X_OK):
            # the system's interpreter: the checkout's may sit where nobody cannot enter
            # (root's home, a 0700 temporary dir), and then the probe would fail to start at
            # all instead of failing at the socket
            nobody = pwd.getpwnam("nobody")
            sock = socket_dir / f".s.PGSQL.{uri.rsplit('port=', 1)[1].split('&')[0]}"
            probe = subprocess.run(
                [
                    "/usr/bin/python3",
                    "-c",
                    "import socket, sys\n"
                    "s = socket.socket(socket.AF_UNIX)\n"
                    "try:\n"
                    f"    s.connect({str(sock)!r})\n"
                    "except OSError as e:\n"
                    "    sys.exit(f'refused: {e}')\n",
                ],
                user=nobody.pw_uid,
                group=nobody.pw_gid,
                cwd="/",
                capture_output=True,
                text=True,
            )
            assert probe.returncode != 0 and "Permission denied" in probe.stderr, probe.stderr
    finally:
        server.stop()
    assert not socket_dir.exists()  # stopping removes it: nothing left behind in /tmp


def test_what_contentctl_writes_in_the_state_dir_is_private(fresh_home: Path) -> None:
    port = free_port()
    assert main(["db", "serve", "--listen", "127.0.0.1", "--port", str(port)]) == 0
    for name in ("serve.json", "advertise.json", "pg_ctl.log"):
        mode = (fresh_home / name).stat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}"


def test_a_local_agent_follows_the_server_to_its_new_port(fresh_home: Path) -> None:
    """`db serve --port P` restarts the server with its socket named after P: a local agent
    finds it again by itself (before: it retried the old socket, offline for 10+ minutes)."""
    import asyncio

    from control.core import db
    from tests.conftest import kill_tree
    from tests.helpers import wait_for

    assert main(["status"]) == 0
    agent = subprocess.Popen(
        [sys.executable, "-m", "tui.launcher", "agent", "run", "--host", "local1",
         "--heartbeat", "0.3"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:

        async def session_of_local1() -> bool:
            conn = await db.connect(EmbeddedServer(fresh_home).ensure_running())
            try:
                cur = await conn.execute(
                    "SELECT count(*) AS n FROM host_beats WHERE name = 'local1' "
                    "AND session_key IN (SELECT contentctl_live_sessions())"
                )
                return bool((await cur.fetchone())["n"])
            finally:
                await conn.close()

        asyncio.run(wait_for(session_of_local1, 30))
        port = free_port()
        assert main(["db", "serve", "--listen", "127.0.0.1", "--port", str(port)]) == 0
        asyncio.run(wait_for(session_of_local1, 30))  # reconnected, on the new socket
        assert agent.poll() is None
    finally:
        kill_tree(agent.pid)
        agent.communicate(timeout=30)


def test_db_stop_sticks_until_db_start(
    fresh_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, a dashboard left open (or any command) started the server again within 2 s of
    `db stop`. Commands that read now say it is stopped and how to start it."""
    import asyncio

    from control.core.inventory import Inventory
    from control.core.settings import DatabaseTarget
    from control.head.api import ControlPlane, Unavailable

    assert main(["status"]) == 0
    assert main(["db", "stop"]) == 0
    capsys.readouterr()
    assert main(["status"]) == 2
    assert "contentctl db start" in capsys.readouterr().err

    async def dashboard_reads() -> None:  # what the dashboard's refresh does
        plane = ControlPlane(DatabaseTarget(None), Inventory(path=None))
        try:
            with pytest.raises(Unavailable, match="db stop"):
                await plane.fleet()
        finally:
            await plane.close()

    asyncio.run(dashboard_reads())
    assert EmbeddedServer(fresh_home).running_uri() is None  # still stopped
    assert main(["db", "start"]) == 0
    assert main(["status"]) == 0


def test_a_link_planted_at_the_socket_directory_is_never_followed(
    own_pg_home: Path, tmp_path: Path
) -> None:
    """The private socket directory's name in /tmp is predictable (a deep state dir): another
    local user planted a symlink there, and root's server start chmod/chowned its target.
    Now the start refuses it, names it, and the target keeps its mode and owner."""
    from control.core.errors import DatabaseUnavailable

    deep = own_pg_home / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    server = EmbeddedServer(deep)
    private = server._private_socket_dir()
    assert private is not None
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    os.chmod(victim, 0o755)
    private.symlink_to(victim)
    try:
        with pytest.raises(DatabaseUnavailable, match="not a directory of ours"):
            server.ensure_running()
        assert victim.stat().st_mode & 0o777 == 0o755
        assert victim.stat().st_uid == os.geteuid()
    finally:
        private.unlink()
        server.stop()


def test_the_state_dir_is_ours_alone(fresh_home: Path) -> None:
    """The README's mode: 0700, or 0711 as root (the server's own user passes through to its
    data directory; before: 0755, the wheel widened it)."""
    assert main(["status"]) == 0
    mode = fresh_home.stat().st_mode & 0o777
    assert mode == (0o711 if os.geteuid() == 0 else 0o700), oct(mode)
    for path in fresh_home.iterdir():
        assert path.stat().st_mode & 0o077 in (0, 0o011) or path.name == "storage", path
