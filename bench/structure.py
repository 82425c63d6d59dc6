"""The codebase's shape, as issue figures quote it: `dict[str, Any]` in the packages, the
largest class and function, literal sleeps in the tests.

    uv run python bench/structure.py [--tree DIR]

Prints the figures, then one JSON line. (Repeated code: `duplicates`; the layers:
`uv run lint-imports`.)
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

PACKAGES = ("control", "agent", "tui", "provisioning")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    root = ap.parse_args().tree
    files = [p for d in PACKAGES for p in sorted((root / d).rglob("*.py"))]
    dicts = sum(len(re.findall(r"dict\[str, Any\]", p.read_text())) for p in files)
    sizes: dict[str, list[tuple[int, str]]] = {"class": [], "function": []}
    for p in files:
        for node in ast.walk(ast.parse(p.read_text())):
            kind = "class" if isinstance(node, ast.ClassDef) else None
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                kind = "function"
            if kind and node.end_lineno is not None:
                where = f"{p.relative_to(root)}:{node.name}"  # type: ignore[attr-defined]
                sizes[kind].append((node.end_lineno - node.lineno + 1, where))  # type: ignore[attr-defined]
    sleeps = 0
    for p in (root / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            func = getattr(node, "func", None)
            if (
                isinstance(node, ast.Call)
                and isinstance(func, ast.Attribute)
                and func.attr == "sleep"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                sleeps += 1
    figures = {
        "dict_str_any": dicts,
        "largest_class": max(sizes["class"]),
        "largest_function": max(sizes["function"]),
        "test_literal_sleeps": sleeps,
    }
    for key, value in figures.items():
        print(f"{key:20} {value}", file=sys.stderr)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
