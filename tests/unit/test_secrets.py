"""A secret goes into a plaintext file only when someone named that backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = (
    "from control.core.errors import ContentctlError\n"
    "from control.core.secrets import get_secret\n"
    "try:\n    print('value', get_secret('nas_password'))\n"
    "except ContentctlError as exc:\n    print('refused', exc)\n"
)


def _run(tmp_path: Path, **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_DATA_HOME=str(tmp_path / "data"))
    env.update(extra)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout


def test_the_plaintext_file_keyring_is_not_chosen_silently(tmp_path: Path) -> None:
    said = _run(tmp_path)
    if said.startswith("value"):  # a real Secret Service answered: nothing to refuse
        return
    assert said.startswith("refused") and "name it on purpose" in said, said
    named = _run(tmp_path, PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring")
    assert named.strip() == "value None"


def test_the_state_dir_follows_xdg_and_keeps_an_existing_one(tmp_path: Path) -> None:
    probe = "from control.core.settings import state_dir; print(state_dir())"
    base = {k: v for k, v in os.environ.items() if k != "CONTENTCTL_HOME"}

    def where(**extra: str) -> str:
        env = {**base, "HOME": str(tmp_path / "home"), **extra}
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    xdg = tmp_path / "xdg"
    got = Path(where(XDG_DATA_HOME=str(xdg)))
    assert got == xdg / "contentctl"
    assert got.stat().st_mode & 0o777 == 0o700  # created private
    legacy = tmp_path / "home" / ".local" / "share" / "contentctl"
    legacy.mkdir(parents=True)
    assert Path(where(XDG_DATA_HOME=str(xdg))) == legacy  # an existing install stays put
