"""`inventory import`: the old fleet's config.yaml becomes a valid, short inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.core.errors import UsageError
from control.core.inventory import parse
from control.head import legacy

OLD = """
processing:
  distributed:
    worker_limits:
      transcribe: {tasks_per_run: 12, cooldown: 60}
    workers:
      10.0.0.209:
        name: s4-head
        enabled: true
        enabled_tasks: [download_youtube, transcribe]
        max_concurrent_tasks: 1
      10.0.0.210:
        enabled: true
        enabled_tasks: [transcribe, make_coffee]
        max_concurrent_tasks: 1
        cooldown: {transcribe: 120}
        tasks_per_run: {download_youtube: 50}
"""


def test_import_keeps_the_fleet_and_says_what_it_cannot_carry(tmp_path: Path) -> None:
    src = tmp_path / "config.yaml"
    src.write_text(OLD)
    data, notes = legacy.convert(src)
    inv = parse(legacy.render(data, src), tmp_path / "inventory.yaml")
    assert set(inv.hosts) == {"s4-head", "worker-10-0-0-210"}
    head = inv.hosts["s4-head"]
    assert head.address == "10.0.0.209" and head.max_concurrent_tasks == 1
    assert inv.hosts["worker-10-0-0-210"].enabled_tasks == ("transcribe",)
    assert data["defaults"] == {"enabled": True, "max_concurrent_tasks": 1}  # kept short
    assert inv.worker_limits["transcribe"] == {"tasks_per_run": 12, "cooldown": 60}
    assert inv.worker_limits["download_youtube"] == {"tasks_per_run": 50}
    assert any("make_coffee" in n for n in notes)
    assert any("cooldown.transcribe: 120 differs" in n for n in notes)


def test_not_a_fleet_config_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "other.yaml"
    src.write_text("foo: 1\n")
    with pytest.raises(UsageError, match=r"no processing\.workers or processing\.distributed"):
        legacy.convert(src)


# The old fleet's real layout: workers beside `distributed`, named in comments, some as lists.
REAL = """
processing:
  distributed:
    worker_limits:
      transcribe: {tasks_per_run: 12, cooldown: 60}
  workers:
    10.0.0.209:  # s4-head
      enabled: true
      enabled_tasks: [download_youtube, transcribe]
      max_concurrent_tasks: 1
    10.0.0.210:
      enabled: true     # not a name: a comment on a setting
      enabled_tasks: [transcribe]
      max_concurrent_tasks: 2
    10.0.0.211: [transcribe, stitch]   # mac-mini-3 (the one in the closet)
"""


def test_workers_beside_distributed_named_from_comments_lists_accepted(tmp_path: Path) -> None:
    src = tmp_path / "config.yaml"
    src.write_text(REAL)
    data, _ = legacy.convert(src)
    inv = parse(legacy.render(data, src), tmp_path / "inventory.yaml")
    assert set(inv.hosts) == {"s4-head", "worker-10-0-0-210", "mac-mini-3"}
    assert inv.hosts["s4-head"].address == "10.0.0.209"
    assert inv.hosts["mac-mini-3"].enabled_tasks == ("transcribe", "stitch")
    assert inv.hosts["worker-10-0-0-210"].max_concurrent_tasks == 2
    assert inv.worker_limits["transcribe"] == {"tasks_per_run": 12, "cooldown": 60}


def test_an_import_that_finds_no_workers_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "config.yaml"
    src.write_text("processing:\n  distributed:\n    worker_limits: {}\n")
    with pytest.raises(UsageError, match="no workers"):
        legacy.convert(src)
    src.write_text("processing:\n  workers:\n    10.0.0.1: 42\n")
    with pytest.raises(UsageError, match=r"workers\.10\.0\.0\.1: 42 is not"):
        legacy.convert(src)


LAUGHS = "a: &a ['x','x','x','x','x','x','x','x','x']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
    f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
    for i in range(8)
)


@pytest.mark.parametrize(
    "text",
    [LAUGHS, "[" * 20_000 + "]" * 20_000, "processing: " + "[" * 70 + "]" * 70],
    ids=["billion-laughs", "20000-levels", "70-levels"],
)
def test_hostile_yaml_is_refused_before_it_is_built(tmp_path: Path, text: str) -> None:
    """Before: a 378-byte file of aliases took 13 s and 957 MB; 20,000 levels ended in
    RecursionError (exit 1). Refused now from the parser's events, at once, one line."""
    from control.core import inventory
    from control.core.errors import UsageError
    from control.head import legacy

    path = tmp_path / "config.yaml"
    path.write_text(text)
    for read in (legacy.convert, lambda p: inventory.parse(p.read_text(), p)):
        with pytest.raises(UsageError) as refused:
            read(path)
        assert "\n" not in str(refused.value)
        assert "aliases" in str(refused.value) or "deeper than" in str(refused.value)
