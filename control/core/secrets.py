"""Secrets in the OS keychain through `keyring`: never in files, argv, environment or logs."""

from __future__ import annotations

import contextlib
import os

import keyring
import keyring.core
import keyring.errors

from control.core.errors import ContentctlError

SERVICE = "contentctl"
_NO_BACKEND = (
    "no usable keychain on this machine ({reason}): install a Secret Service (gnome-keyring) "
    "or set PYTHON_KEYRING_BACKEND to a keyring backend such as keyrings.alt.file.EncryptedKeyring"
)


_FILE_BACKEND = (
    "the only keychain here is keyrings.alt's {name}, a file: name it on purpose (inventory "
    "keyring_backend for a worker, or PYTHON_KEYRING_BACKEND={module}.{name} here), or install "
    "a Secret Service"
)


def chosen_on_purpose() -> bool:
    """Did the user name the keyring backend (environment or keyring's own config file)?"""
    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        return True
    with contextlib.suppress(Exception):
        return keyring.core.load_config() is not None
    return False


def _backend_ok() -> None:
    backend = keyring.get_keyring()
    module = type(backend).__module__
    if "fail" in module or getattr(backend, "priority", 1) <= 0:
        raise ContentctlError(_NO_BACKEND.format(reason=type(backend).__name__))
    if module.startswith("keyrings.alt") and not chosen_on_purpose():
        # keyring picks keyrings.alt's files by itself when nothing better exists: a secret
        # would land in a plain file nobody chose. Only when named.
        raise ContentctlError(_FILE_BACKEND.format(name=type(backend).__name__, module=module))


def get_secret(name: str) -> str | None:
    _backend_ok()
    try:
        return keyring.get_password(SERVICE, name)
    except keyring.errors.KeyringError as exc:
        raise ContentctlError(_NO_BACKEND.format(reason=type(exc).__name__)) from exc


def set_secret(name: str, value: str) -> None:
    _backend_ok()
    try:
        keyring.set_password(SERVICE, name, value)
    except keyring.errors.KeyringError as exc:
        raise ContentctlError(_NO_BACKEND.format(reason=type(exc).__name__)) from exc
