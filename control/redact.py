"""Keep secrets out of what people and logs see."""

from __future__ import annotations

import logging
import re

_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)
_KEY_VALUE = re.compile(
    r"\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)",
    re.IGNORECASE,
)


def scrub(text: str, extra: tuple[str, ...] = ()) -> str:
    """`text` with URL passwords, `password=...`-style values and any `extra` secret masked."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _KEY_VALUE.sub(r"\1\2***", text)
    for secret in extra:
        if secret:
            text = text.replace(secret, "***")
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter that masks secrets in the message and in any traceback it prints."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))
