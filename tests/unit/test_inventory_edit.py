"""Editing a host in inventory.yaml keeps the operator's comments and order."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.core.errors import UsageError
from control.core.inventory import load
from control.head.inventory_edit import set_host

TEXT = """\
# the fleet
defaults:
  max_concurrent_tasks: 1   # one at a time unless said otherwise
hosts:
  mac-1:
    address: 10.0.0.1
    enabled_tasks: [transcribe]   # the GPU box
  mac-2:   # downloads only
    address: 10.0.0.2
"""


def test_set_host_keeps_comments_and_order(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(TEXT)
    set_host(path, "mac-1", enabled_tasks=["transcribe", "stitch"], max_concurrent_tasks=3)
    set_host(path, "mac-2", max_concurrent_tasks=2)
    text = path.read_text()
    assert "# the fleet" in text and "# one at a time unless said otherwise" in text
    assert "# the GPU box" in text and "# downloads only" in text
    assert "enabled_tasks: [transcribe, stitch]" in text
    assert text.index("mac-1") < text.index("mac-2")
    inv = load(path)
    assert inv.hosts["mac-1"].enabled_tasks == ("transcribe", "stitch")
    assert inv.hosts["mac-1"].max_concurrent_tasks == 3
    assert inv.hosts["mac-2"].max_concurrent_tasks == 2


def test_an_invalid_change_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(TEXT)
    with pytest.raises(UsageError, match="unknown task type"):
        set_host(path, "mac-1", enabled_tasks=["make_coffee"])
    assert path.read_text() == TEXT
