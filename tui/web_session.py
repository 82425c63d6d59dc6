"""`python -m tui.web_session [--read-only] [--inventory PATH]`: one browser tab's dashboard.

`contentctl web` starts one of these per browser connection, with textual-serve's web driver
(stdin and stdout are the browser's pipe, not a terminal), the browser's address in
CONTENTCTL_WEB_CLIENT (each action's audit row names it) and the database URL in the
environment, never in argv. Not a command for people: `contentctl` is the terminal's.
"""

from __future__ import annotations

import os
import sys

from tui.launcher import _plane


def main() -> int:
    from tui.app import main as run

    client = os.environ.get("CONTENTCTL_WEB_CLIENT") or "unknown"
    return run(_plane(sys.argv[1:], client=client))


if __name__ == "__main__":
    sys.exit(main())
