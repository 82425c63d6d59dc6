"""Errors that reach the operator as one line and an exit code (see docs/contract.md)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class ContentctlError(Exception):
    """An error whose message is fit for the operator: one line, naming the thing and the fix."""

    exit_code = EXIT_FAILED


class UsageError(ContentctlError):
    """Bad usage or bad input (exit 2)."""

    exit_code = EXIT_USAGE


class DatabaseUnavailable(ContentctlError):
    """The database cannot be reached (exit 2)."""

    exit_code = EXIT_USAGE


class SchemaMismatch(ContentctlError):
    """The database schema is not the one this code knows (exit 2)."""

    exit_code = EXIT_USAGE


class SchemaBehind(SchemaMismatch):
    """The database schema is older than this code's: `contentctl db migrate` brings it up."""
