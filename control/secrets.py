"""Secrets in the OS keychain through `keyring`: never in files, argv, environment or logs."""

from __future__ import annotations

import keyring
import keyring.errors

from control.errors import ContentctlError

SERVICE = "contentctl"
_NO_BACKEND = (
    "no usable keychain on this machine ({reason}): install a Secret Service (gnome-keyring) "
    "or set PYTHON_KEYRING_BACKEND to a keyring backend such as keyrings.alt.file.EncryptedKeyring"
)


def _backend_ok() -> None:
    backend = keyring.get_keyring()
    if "fail" in type(backend).__module__ or getattr(backend, "priority", 1) <= 0:
        raise ContentctlError(_NO_BACKEND.format(reason=type(backend).__name__))


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
