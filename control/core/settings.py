"""Where things live: the state dir, the inventory, the database (docs/contract.md, Environment)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from control.core.errors import UsageError

ENV_HOME = "CONTENTCTL_HOME"
ENV_INVENTORY = "CONTENTCTL_INVENTORY"
ENV_DATABASE_URL = "CONTENTCTL_DATABASE_URL"


def default_state_dir() -> Path:
    """Where the state lives without CONTENTCTL_HOME: an existing ~/.local/share/contentctl is
    kept (earlier installs); else macOS's Application Support, else $XDG_DATA_HOME/contentctl
    (default ~/.local/share)."""
    legacy = Path.home() / ".local" / "share" / "contentctl"
    if legacy.is_dir():
        return legacy
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "contentctl"
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else None
    return (base or Path.home() / ".local" / "share") / "contentctl"


def state_dir() -> Path:
    """`$CONTENTCTL_HOME`, else `default_state_dir()`; created on first use, private (0700)
    when we create it; an existing directory's mode is left as its owner set it."""
    raw = os.environ.get(ENV_HOME)
    home = Path(raw).expanduser() if raw else default_state_dir()
    if not home.is_dir():
        home.parent.mkdir(parents=True, exist_ok=True)
        home.mkdir(mode=0o700, exist_ok=True)
    return home.resolve()


def inventory_path(explicit: str | None = None) -> Path | None:
    """The inventory file to read, or None when there is none anywhere."""
    if explicit:
        return Path(explicit).expanduser()
    raw = os.environ.get(ENV_INVENTORY)
    if raw:
        return Path(raw).expanduser()
    local = Path("inventory.yaml")
    if local.is_file():
        return local.resolve()
    home_inv = state_dir() / "inventory.yaml"
    return home_inv if home_inv.is_file() else None


@dataclass(frozen=True)
class DatabaseTarget:
    """An external server (url set) or the embedded one in the state dir (url None)."""

    url: str | None

    @property
    def embedded(self) -> bool:
        return self.url is None


def database_target(
    explicit: str | None = None, inventory_url: str | None = None
) -> DatabaseTarget:
    """`--db` beats `CONTENTCTL_DATABASE_URL` beats the inventory's `database:`; else embedded."""
    url = explicit or os.environ.get(ENV_DATABASE_URL) or inventory_url
    if url:
        _check_url(url)
    return DatabaseTarget(url=url or None)


def _check_url(url: str) -> None:
    """A database URL that cannot even be parsed is a usage error, said in one line."""

    if "://" not in url:
        return  # a conninfo string ("host=... dbname=..."): libpq judges it
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError as exc:
        raise UsageError(
            f"the database URL is malformed ({exc}): give postgresql://USER@HOST:PORT/DB "
            "(IPv6 hosts in brackets: [::1])"
        ) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise UsageError(f"the database URL must start with postgresql://, not {parts.scheme}://")


def storage_root(configured: str | None) -> Path:
    """The inventory's `storage_root`, else `$CONTENTCTL_HOME/storage`. The default is ours and
    created on first use; a configured root is a mount point (the NAS) and never created here:
    making it would hide that the NAS is gone."""
    if not configured:
        root = state_dir() / "storage"
        root.mkdir(parents=True, exist_ok=True)
        return root.resolve()
    root = Path(configured).expanduser()
    return root.resolve() if root.exists() else root.absolute()
