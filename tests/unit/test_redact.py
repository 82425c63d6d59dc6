from __future__ import annotations

import logging

from control.db import redact
from control.redact import RedactingFormatter, scrub


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
