"""A hostile or mistyped inventory is refused at load with one line naming file, line and key:
each test is the probe, then the assertion that it is refused quickly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from control.core.errors import UsageError
from control.core.inventory import MAX_BYTES, parse

P = Path("inventory.yaml")


def refused(text: str, match: str) -> UsageError:
    with pytest.raises(UsageError, match=match) as info:
        parse(text, P)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("inventory.yaml:")
    return info.value


@pytest.mark.parametrize(
    "name",
    [
        "a;touch /tmp/PWNED",
        "$(id)",
        "-oProxyCommand=x",
        "host name",
        "../etc",
        "ok\nbad",
        "[bold]x",
        "",
    ],
)
def test_host_names_that_are_not_plain_words_are_refused(name: str) -> None:
    quoted = '"' + name.replace("\\", "\\\\").replace("\n", "\\n") + '"'
    refused(f"hosts:\n  {quoted}:\n    address: 127.0.0.5\n", "host name")


def test_plain_host_names_are_fine() -> None:
    inv = parse("hosts:\n  mac-1.lab_2:\n    address: 127.0.0.5\n", P)
    assert list(inv.hosts) == ["mac-1.lab_2"]


def test_an_alias_bomb_is_refused_at_once() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 20):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        bomb += f"{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    t0 = time.monotonic()
    refused(bomb, "anchors and aliases")
    assert time.monotonic() - t0 < 1.0


def test_an_anchor_alone_is_refused_too() -> None:
    refused("defaults: &d {enabled: true}\nhosts: {}\n", "anchors and aliases")


def test_a_duplicate_key_is_refused_not_overwritten() -> None:
    text = "hosts:\n  a:\n    address: 127.0.0.5\nhosts:\n  b:\n    address: 127.0.0.6\n"
    err = refused(text, "duplicate key")
    assert str(err).startswith("inventory.yaml:4:")
    refused("hosts:\n  a: {address: 127.0.0.5, address: 127.0.0.6}\n", "duplicate key")


@pytest.mark.parametrize(
    ("snippet", "match"),
    [
        ("hosts: {a: {port: 0}}", "port"),
        ("hosts: {a: {port: 70000}}", "port"),
        ("hosts: {a: {max_concurrent_tasks: 100000}}", "max_concurrent_tasks"),
        ("worker_limits: {noop: {cooldown: -1}}", "cooldown"),
        ("worker_limits: {noop: {cooldown: .nan}}", "cooldown"),
        ("worker_limits: {noop: {cooldown: .inf}}", "cooldown"),
        ("worker_limits: {noop: {tasks_per_run: -3}}", "tasks_per_run"),
        ("worker_limits: {noop: {daily_limit: -1}}", "daily_limit"),
        ("worker_limits: {noop: {window: {start: '25:00', end: '21:00'}}}", "HH:MM"),
        ("worker_limits: {noop: {window: {start: '7', end: '21:00'}}}", "HH:MM"),
        ("worker_limits: {noop: {window: {start: '07:00'}}}", "window"),
        ("worker_limits: {noop: {window: {start: '07:00', end: '09:00', jiter: 5}}}", "jiter"),
        ("worker_limits: {noop: {delay: {min_s: 5, mx_s: 9}}}", "mx_s"),
        ("worker_limits: {noop: {delay: {min_s: 9, max_s: 5}}}", "max_s"),
        ("worker_limits: {noop: {delay: {min_s: -1}}}", "min_s"),
        ("task_types: {noop: {max_attempts: 0}}", "max_attempts"),
        ("task_types: {noop: {timeout_s: -5}}", "timeout_s"),
        ("pipeline: {chunk_s: .inf}", "chunk_s"),
    ],
)
def test_numbers_out_of_range_are_refused(snippet: str, match: str) -> None:
    refused(snippet + "\n", match)


def test_a_huge_inventory_is_refused_before_parsing() -> None:
    text = "# " + "x" * MAX_BYTES + "\nhosts: {}\n"
    refused(text, "larger than")


def test_a_good_window_and_delay_load() -> None:
    inv = parse(
        "worker_limits:\n  noop:\n    window: {start: '07:00', end: '21:30', "
        "end_jitter_minutes: 60}\n    delay: {min_s: 1, max_s: 2}\n",
        P,
    )
    assert inv.worker_limits["noop"]["window"]["end"] == "21:30"


@pytest.mark.parametrize(
    ("snippet", "match"),
    [
        ("nas: {user: signal4}", "the NAS needs url"),
        ("nas: {url: 'smb://nas.local/content'}", "the NAS needs user"),
        ("nas: {url: 'http://nas/x', user: a}", "smb://server/share"),
        ("nas: {url: 'smb://nas.local/c', user: a, mount_point: mnt/nas}", "absolute path"),
        ("nas: {url: 'smb://n/c', user: a, mount_point: {darwin: /V, windows: /x}}", "windows"),
        ("hosts: {a: {storage_root: relative/path}}", "absolute path"),
    ],
)
def test_a_bad_nas_block_is_one_line_naming_the_key(snippet: str, match: str) -> None:
    refused(snippet + "\n", match)


def test_the_nas_mount_as_data_never_carries_the_password() -> None:
    from agent.nas import mount_command, mount_for

    inv = parse(
        "nas: {url: 'smb://nas.local/content', user: 'sig nal', mount_point: "
        "{darwin: /Volumes/content, linux: /mnt/content}}\n",
        P,
    )
    mac = mount_for(inv.nas, None, platform="darwin")
    assert mac is not None
    assert mount_command(mac, None) == [
        "mount_smbfs", "-N", "//sig%20nal@nas.local/content", "/Volumes/content"
    ]  # fmt: skip
    linux = mount_for(inv.nas, "/srv/nas", platform="linux")  # a host's own mount point
    assert linux is not None and str(linux.mount_point) == "/srv/nas"
    cmd = mount_command(linux, Path("/home/a/.cred"))
    assert cmd[:5] == ["mount", "-t", "cifs", "//nas.local/content", "/srv/nas"]
    assert "credentials=/home/a/.cred" in cmd[-1] and "password" not in " ".join(cmd)
