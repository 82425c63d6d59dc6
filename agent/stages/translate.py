"""`translate`: a stitched transcript into another language, segment by segment, so the
translated subtitles keep the original timing.

Backends: DeepL's API (`backend: deepl`) and any OpenAI-compatible chat completions API
(`backend: openai`, which also covers local servers). The API key comes from the keychain
(`keyring`, service `contentctl`, entry `key_name`), never from the inventory or a payload.
HTTP 429 is a retryable failure that tells the queue when to come back (Retry-After); other
client errors are not retryable. `rate_per_min` spaces this process's requests.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from agent.handlers import Context, TaskError
from agent.stages import out_dir, path, rel
from agent.stages.formats import write_all

BATCH = 40  # segments per request
DEFAULT_KEYS = {"deepl": "deepl_api_key", "openai": "openai_api_key"}
DEFAULT_URLS = {"deepl": "https://api-free.deepl.com", "openai": "https://api.openai.com/v1"}

_last_request = 0.0
_lock = threading.Lock()


def _pace(rate_per_min: float | None) -> None:
    global _last_request
    if not rate_per_min:
        return
    with _lock:
        wait = _last_request + 60.0 / rate_per_min - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        _last_request = time.monotonic()


def _api_key(backend: str, config: dict[str, Any]) -> str | None:
    from control.core.errors import ContentctlError
    from control.core.secrets import get_secret

    name = str(config.get("key_name") or DEFAULT_KEYS[backend])
    try:
        return get_secret(name)
    except ContentctlError as exc:
        raise TaskError(f"translate: {exc}", retryable=False) from None


def _retry_after(err: urllib.error.HTTPError) -> float | None:
    raw = err.headers.get("Retry-After") if err.headers else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _post(url: str, body: dict[str, Any], headers: dict[str, str], timeout: float) -> Any:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode())
    except urllib.error.HTTPError as err:
        where = url.split("?")[0]
        if err.code == 429:
            after = _retry_after(err)
            hint = f"; retry after {after:g} s" if after is not None else ""
            raise TaskError(
                f"translate: {where} is rate limiting (HTTP 429){hint}",
                retryable=True,
                retry_after_s=after,
            ) from None
        retryable = err.code >= 500
        raise TaskError(
            f"translate: {where} answered HTTP {err.code} {err.reason}", retryable=retryable
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise TaskError(f"translate: cannot reach {url}: {reason}", retryable=True) from None
    except ValueError:
        raise TaskError(f"translate: {url} did not answer JSON", retryable=True) from None


def _deepl(texts: list[str], lang: str, config: dict[str, Any], key: str | None) -> list[str]:
    if not key:
        raise TaskError(
            "translate: no DeepL API key in the keychain: store it with "
            "`uv run python -m keyring set contentctl deepl_api_key`",
            retryable=False,
        )
    base = str(config.get("url") or DEFAULT_URLS["deepl"]).rstrip("/")
    target = "EN-US" if lang.lower() == "en" else lang.upper()
    answer = _post(
        f"{base}/v2/translate",
        {"text": texts, "target_lang": target},
        {"Authorization": f"DeepL-Auth-Key {key}"},
        float(config.get("timeout_s") or 60),
    )
    out = [t.get("text", "") for t in (answer or {}).get("translations", [])]
    if len(out) != len(texts):
        raise TaskError(
            f"translate: DeepL returned {len(out)} texts for {len(texts)}", retryable=True
        )
    return out


def _openai(texts: list[str], lang: str, config: dict[str, Any], key: str | None) -> list[str]:
    base = str(config.get("url") or DEFAULT_URLS["openai"]).rstrip("/")
    prompt = (
        f"Translate each string of this JSON array into the language with code '{lang}'. "
        "Answer with only a JSON array of the same length, in the same order.\n"
        + json.dumps(texts, ensure_ascii=False)
    )
    answer = _post(
        f"{base}/chat/completions",
        {
            "model": config.get("model") or "gpt-4o-mini",
            "temperature": 0,
            "messages": [
                {"role": "system", "content": "You translate subtitles faithfully."},
                {"role": "user", "content": prompt},
            ],
        },
        {"Authorization": f"Bearer {key}"} if key else {},
        float(config.get("timeout_s") or 120),
    )
    try:
        content = answer["choices"][0]["message"]["content"].strip()
        if content.startswith("```"):
            content = content.strip("`").removeprefix("json").strip()
        out = json.loads(content)
    except (KeyError, IndexError, TypeError, ValueError):
        raise TaskError(
            "translate: the chat API's answer is not a JSON array", retryable=True
        ) from None
    if not isinstance(out, list) or len(out) != len(texts):
        raise TaskError(
            f"translate: the chat API returned {len(out) if isinstance(out, list) else 'no'} "
            f"texts for {len(texts)}",
            retryable=True,
        )
    return [str(t) for t in out]


BACKENDS = {"deepl": _deepl, "openai": _openai}


def translate(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    lang = str(payload.get("lang") or "")
    if not lang.isalpha():
        raise TaskError(f"translate: not a language code: {lang!r}", retryable=False)
    source = json.loads(path(ctx, payload, "transcript").read_text())
    segments = source.get("segments") or []
    config = dict(ctx.settings.get("translate") or {})
    if (source.get("language") or "").lower() == lang.lower():
        translated = [s["text"] for s in segments]  # already in that language
    else:
        backend = str(config.get("backend") or "deepl")
        if backend not in BACKENDS:
            raise TaskError(
                f"translate: unknown backend {backend!r}: use deepl or openai", retryable=False
            )
        key = _api_key(backend, config)
        translated = []
        for i in range(0, len(segments), BATCH):
            _pace(config.get("rate_per_min"))
            batch = [s["text"] for s in segments[i : i + BATCH]]
            translated += BACKENDS[backend](batch, lang, config, key)
            ctx.progress(min(0.99, (i + len(batch)) / max(len(segments), 1)), "translating")
    out_segs = []
    for seg, text in zip(segments, translated, strict=True):
        item = {"start": seg["start"], "end": seg["end"], "text": text}
        if seg.get("speaker"):
            item["speaker"] = seg["speaker"]
        out_segs.append(item)
    paths = write_all(
        out_dir(ctx, payload), f"transcript.{lang}", {"language": lang, "segments": out_segs}
    )
    return {"lang": lang, "segments": len(out_segs), **{k: rel(ctx, p) for k, p in paths.items()}}
