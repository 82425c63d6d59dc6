"""The command line: parser, commands, output. The top layer, beside the dashboard (tui/)."""
