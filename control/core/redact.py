"""Keep secrets out of what people and logs see: one place that knows what a secret looks like
(URL passwords and token parameters, `Authorization` headers, `password=`-style values in
conninfo, logs and JSON), and one way to turn an exception into a line fit to show."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)
# ...?token=...&sig=...: query parameters that carry credentials
_URL_PARAM = re.compile(
    r"([?&](?:access_token|token|api[_-]?key|key|sig|signature|secret|password|auth)=)"
    r"[^&#\s\"']+",
    re.IGNORECASE,
)
# Authorization: Bearer xyz / Basic xyz / DeepL-Auth-Key xyz (header values, curl -H lines)
_AUTH_SCHEME = re.compile(
    r"\b(Bearer|Basic|Token|DeepL-Auth-Key)(\s+)[A-Za-z0-9._~+/=:-]{4,}", re.IGNORECASE
)
# password=..., "api_key": "...", deepl_token: ..., client_secret=...: the key names a secret
# (`unique_key`, `session_key` and `*_KEYRING_*` name no secret: a task's de-duplication key,
# an agent's lock, and the keyring setting whose name a hint must show)
_SECRET_NAME = (
    r"[A-Za-z0-9_-]*(?:password|passwd|pwd|secret|token|api[_-]?key|"
    r"(?<!unique)(?<!session)_key(?!ring)|authorization)"
    r"[A-Za-z0-9_-]*"
)
_KEY_VALUE = re.compile(
    rf"(?P<q>[\"']?)\b(?P<key>{_SECRET_NAME})(?P=q)(?P<sep>\s*[=:]\s*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s,;&\"'}\]]+)",
    re.IGNORECASE,
)
MASK = "***"
# Every pattern above needs one of these: a cheap test first keeps plain lines cheap.
_MAYBE = re.compile(r"[=:]|bearer|basic|token|deepl", re.IGNORECASE)


def _mask_value(m: re.Match[str]) -> str:
    value = m.group("value")
    masked = value[0] + MASK + value[0] if value[:1] in "\"'" else MASK
    return f"{m.group('q')}{m.group('key')}{m.group('q')}{m.group('sep')}{masked}"


def scrub(text: str, extra: tuple[str, ...] = ()) -> str:
    """`text` with URL passwords and token parameters, authorization values, secret-named
    values and any `extra` secret masked. A JSON text stays valid JSON."""
    if not extra and not _MAYBE.search(text):
        return text  # the common log line: nothing a secret could hide in (no =, :, auth words)
    text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    text = _URL_PARAM.sub(rf"\1{MASK}", text)
    text = _AUTH_SCHEME.sub(rf"\1\2{MASK}", text)
    text = _KEY_VALUE.sub(_mask_value, text)
    for secret in extra:
        if secret:
            text = text.replace(secret, MASK)
    return text


def scrub_value(value: Any) -> Any:
    """A JSON-able value with every string scrubbed and secret-named keys masked, before it is
    encoded (so the result is still valid JSON and nothing leaks through a key's value)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {
            k: (
                MASK
                if isinstance(v, str) and re.fullmatch(_SECRET_NAME, str(k), re.IGNORECASE)
                else scrub_value(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value


# C0 controls but tab and newline, DEL, C1, and the bidirectional overrides: what lets text
# move the cursor, clear the screen, set the clipboard (OSC 52), retitle the terminal, hide what
# follows or reorder what is shown. Titles, errors, names and log lines come from workers, feeds
# and websites.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown_text(text: str) -> str:
    """Text leaving the process for a person: secrets masked, control characters visible."""
    return visible(scrub(text))


def visible(text: str) -> str:
    """`text` with its control characters made visible (ESC as `\\x1b`): shown, it moves
    nothing on the terminal and hides nothing. Tabs and newlines stay."""
    if text.isprintable():
        return text
    return _CONTROL.sub(_escape, text)


def shown(value: Any) -> Any:
    """`value` (rows from the database: dicts, lists, strings) with every string, keys too,
    made `visible` and scrubbed, and secret-named values masked: what a screen may draw.

    The dashboard passes every read through this, about once a second (500 hosts' beats are
    ~27,000 strings): strings found clean are remembered (`_CLEAN`, bounded) and a key's
    verdict too (`_KEYS`), so a refresh costs a set lookup per string, not four regex passes
    (33 ms -> a few ms a refresh). Only strings that needed nothing are remembered: no secret
    is kept by the memo."""
    kind = type(value)
    if kind is str:
        return _shown_str(value)
    if kind is dict:
        out: dict[Any, Any] = {}
        keys = _KEYS
        for k, v in value.items():
            known = keys.get(k)
            if known is None:
                known = _shown_key(k) if isinstance(k, str) else (k, False)
            vk = type(v)
            if vk is str:
                out[known[0]] = MASK if known[1] else _shown_str(v)
            elif vk in _PLAIN:
                out[known[0]] = v
            else:
                out[known[0]] = shown(v)
        return out
    if kind in _PLAIN:
        return value
    if isinstance(value, str):  # a subclass
        return _shown_str(value)
    if isinstance(value, dict):
        return shown(dict(value))
    if isinstance(value, list | tuple):
        return type(value)([shown(v) for v in value])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _shown_model(value)
    if isinstance(value, Mapping):  # a read-only one (a read model's empty mapping, say)
        return shown(dict(value)) if value else value
    return value


_FIELDS: dict[type, tuple[str, ...]] = {}


def _shown_model(value: Any) -> Any:
    """A frozen read model (control/core/readmodels.py) with its fields `shown`: the same
    object when none needed anything (a reader may tell an unchanged host by identity)."""
    kind = type(value)
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(value))
    changed = {}
    for name in names:
        v = getattr(value, name)
        if type(v) in _PLAIN:
            continue
        s = shown(v)
        if s is not v and s != v:
            changed[name] = s
    return dataclasses.replace(value, **changed) if changed else value


# values `shown` passes as they are: nothing in them is drawn as text of its own
_PLAIN = frozenset({int, float, bool, type(None), datetime.datetime, datetime.date, uuid.UUID})
_SECRET_KEY = re.compile(_SECRET_NAME, re.IGNORECASE)
_CLEAN: set[str] = set()  # strings `shown` left as they were (no secret, no control)
_CLEAN_MAX = 50_000  # then forgotten at once: timestamps and figures churn
_CLEAN_LEN = 256  # longer strings (log lines, errors) are not remembered
_KEYS: dict[str, tuple[str, bool]] = {}  # key -> (shown, names a secret)


def _shown_str(text: str) -> str:
    if text in _CLEAN:
        return text
    out = scrub(str(text))
    if not out.isprintable():
        out = _CONTROL.sub(_escape, out)
    if out == text and len(text) <= _CLEAN_LEN:
        if len(_CLEAN) >= _CLEAN_MAX:
            _CLEAN.clear()
        _CLEAN.add(text)
    return out


def _shown_key(key: str) -> tuple[str, bool]:
    known = _KEYS.get(key)
    if known is None:
        known = (_shown_str(key), _SECRET_KEY.fullmatch(key) is not None)
        if known[0] == key and len(_KEYS) < _CLEAN_MAX:  # only keys that needed nothing
            _KEYS[key] = known
    return known


def first_line(exc: BaseException) -> str:
    """An exception as one line fit to show: its first line, scrubbed, or its type's name."""
    lines = str(exc).strip().splitlines()
    return visible(scrub(lines[0])) if lines and lines[0].strip() else type(exc).__name__


class RedactingFormatter(logging.Formatter):
    """A formatter that masks secrets in the message and in any traceback it prints."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))
