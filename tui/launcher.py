"""The `contentctl` console script: the dashboard with no command, the CLI otherwise.

It lives in tui/ so that control/ never imports the dashboard (import contracts)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from control import cli


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    commands = {a for a in args if not a.startswith("-")}
    if not commands and not {"-h", "--help", "--version"} & set(args):
        print(
            "contentctl: the dashboard is not built yet (issue 6); meanwhile use "
            "`contentctl status`, `contentctl tasks` and `contentctl --help`",
            file=sys.stderr,
        )
        return 1
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
