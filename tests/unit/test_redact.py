from __future__ import annotations

import logging

from control.core.db import redact
from control.core.redact import RedactingFormatter, scrub


def test_scrub_masks_url_passwords_and_key_values() -> None:
    text = "connect postgresql://agent:s3cr3t@head:5432/db failed; password=hunter2 api_key: abc123"
    out = scrub(text)
    for secret in ("s3cr3t", "hunter2", "abc123"):
        assert secret not in out
    assert "postgresql://agent:***@head:5432/db" in out


def test_redact_keeps_everything_but_the_password() -> None:
    assert redact("postgresql://u:p%40ss@h:5/d?sslmode=require") == (
        "postgresql://u:***@h:5/d?sslmode=require"
    )
    assert redact("postgresql://u@/d?host=/tmp") == "postgresql://u@/d?host=/tmp"


def test_the_log_formatter_masks_messages_and_tracebacks() -> None:
    fmt = RedactingFormatter("%(message)s")
    try:
        raise RuntimeError("postgresql://a:topsecret@h/d")
    except RuntimeError:
        import sys

        rec = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "token=%s", ("zzz999",), sys.exc_info()
        )
    out = fmt.format(rec)
    assert "topsecret" not in out and "zzz999" not in out and "RuntimeError" in out


def test_scrub_knows_every_shape_of_secret_we_meet() -> None:
    probes = {
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig": "eyJhbGciOiJIUzI1NiJ9",
        "Authorization: DeepL-Auth-Key 0a1b2c3d-4e5f:fx": "0a1b2c3d",
        "curl -H 'Authorization: Basic dXNlcjpwYXNz' https://x": "dXNlcjpwYXNz",
        "host=db user=agent password=hunter22 dbname=c": "hunter22",
        '{"deepl_api_key": "k-123456", "n": 1}': "k-123456",
        '{"client_secret":"cs-98765"}': "cs-98765",
        "openai_token=tok-55555 next": "tok-55555",
        "GET https://feeds.example/rss?user=a&token=tk-77777&x=1": "tk-77777",
        "https://cdn.example/a.mp3?sig=sg-424242": "sg-424242",
        "postgresql://agent:pa55word@head:5432/c": "pa55word",
    }
    for text, secret in probes.items():
        out = scrub(text)
        assert secret not in out, (text, out)
        assert "***" in out, out
    assert scrub("user=agent host=head") == "user=agent host=head"  # no secret, no change


def test_a_scrubbed_json_log_line_is_still_json() -> None:
    import json

    from control.core.redact import scrub_value

    doc = {"message": 'auth "password=x y"', "api_key": "zzz", "nested": [{"token": "t"}]}
    line = json.dumps(scrub_value(doc))
    back = json.loads(line)
    assert back["api_key"] == "***" and back["nested"][0]["token"] == "***"
    assert "x y" not in line or "password=***" in back["message"]
    assert json.loads(scrub(json.dumps({"password": 'p\\"q'})))["password"] == "***"


def test_shown_remembers_only_what_needed_nothing() -> None:
    """The dashboard's memo of clean strings never keeps a secret, and a string shown twice
    is masked and escaped the same way both times."""
    from control.core import redact

    row = {
        "title": "Evil \x1b]52;c;SGVsbG8=\x07 title",
        "url": "https://user:hunter2@example.org/feed?token=abc123",
        "api_key": "sk-live-123",
        "nested": {"password": "pw1", "plain": "online", "items": ["ok", "x\x1b[2J"]},
        "postgresql://u:pw9@h/db": "a key that holds a secret",
    }
    first = redact.shown(row)
    second = redact.shown(row)
    assert first == second
    text = repr(first)
    for secret in ("hunter2", "abc123", "sk-live-123", "pw1", "pw9", "\x1b"):
        assert secret not in text
    remembered = " ".join(redact._CLEAN) + " ".join(redact._KEYS)
    for secret in ("hunter2", "abc123", "sk-live-123", "pw1", "pw9", "\x1b"):
        assert secret not in remembered
    assert "online" in redact._CLEAN
