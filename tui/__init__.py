# What a worker's install (the base package, no `head` extra) says when asked for the dashboard.
HEAD_HINT = (
    "the dashboard is not installed here (a worker's install): install the head extra, "
    "`pip install 'contentctl[head]'` (or `uv sync` in a checkout)"
)
