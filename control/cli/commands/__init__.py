"""The implementations of `contentctl` commands, grouped by what they act on; the parser
and `main` are in control/cli.py."""
