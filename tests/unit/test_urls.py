"""Which URLs are added and fetched: the probes, each refused or allowed."""

from __future__ import annotations

import pytest

from control.core.errors import UsageError
from control.core.urls import Refused, check_added, check_fetch


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/x.mp3",
        "https://user:hunter2@example.org/feed.xml",
        "javascript:alert(1)",
        "http://[::1/x",
    ],
)
def test_added_urls_must_be_plain_web_addresses(url: str) -> None:
    with pytest.raises(UsageError):
        check_added(url)
    # and nothing in the message repeats a password
    try:
        check_added(url)
    except UsageError as exc:
        assert "hunter2" not in str(exc)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/x",
        "http://10.0.0.5/x.mp3",
        "http://192.168.1.10/x.mp3",
        "http://100.64.0.1/x.mp3",
        "http://0.0.0.0:5432/",
    ],
)
def test_workers_refuse_file_link_local_and_private_targets(url: str) -> None:
    with pytest.raises(Refused):
        check_fetch(url)


def test_loopback_and_allowed_private_targets_are_fetched() -> None:
    check_fetch("http://127.0.0.1:8000/talk.ogg")
    check_fetch("http://10.0.0.5/x.mp3", allow_private=True)
    with pytest.raises(Refused):  # the metadata service stays refused even then
        check_fetch("http://169.254.169.254/", allow_private=True)
