"""The command line, one module a command group: each `configure(commands)` declares its
commands (parser, handler, audit) with control/cli/declare.py."""
