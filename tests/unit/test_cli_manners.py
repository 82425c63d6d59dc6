"""The CLI's manners: help on every flag, examples on every command, the environment and exit
codes in `--help`, and nothing that points outside the repository."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from control.cli.parser import build_parser


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def test_every_flag_has_help_and_every_command_an_example() -> None:
    parser = build_parser()
    missing = []
    for path, sub in _commands(parser):
        if "examples:" not in (sub.epilog or ""):
            missing.append(f"{' '.join(path)}: no examples")
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if not action.help:
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_main_help_names_the_environment_and_exit_codes_not_shared() -> None:
    text = build_parser().format_help()
    for name in ("CONTENTCTL_HOME", "CONTENTCTL_INVENTORY", "CONTENTCTL_DATABASE_URL", "exit"):
        assert name in text
    assert "shared/" not in text and "CONTRACT.md" not in text


def test_every_reporting_command_takes_json() -> None:
    parser = build_parser()
    wanted = {
        ("status",), ("tasks",), ("task",), ("retry",), ("cancel",), ("logs",), ("add",),
        ("media",), ("reconcile",), ("provision",), ("rollout",), ("enqueue",),
        ("inventory", "check"), ("agent", "drain"), ("agent", "undrain"), ("agent", "stop"),
        ("agent", "restart"), ("agent", "start"),
    }  # fmt: skip
    have = {
        path
        for path, sub in _commands(parser)
        if any("--json" in a.option_strings for a in sub._actions)
    }
    assert wanted <= have, wanted - have
