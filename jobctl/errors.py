"""Domain errors, each carrying the exit code of SPEC 3.

Raise these anywhere below the CLI; the CLI turns them into one line on stderr and the code.
Nothing here prints.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3
EXIT_NOT_FOUND = 4


class JobctlError(Exception):
    """Base class: str(error) is the one line shown to the user."""

    exit_code = EXIT_FAILED


class UsageError(JobctlError):
    """Bad usage or bad input: invalid expression, zone, duration, name, option value."""

    exit_code = EXIT_USAGE


class ConflictError(JobctlError):
    """The name exists, a runner holds the store, a policy refuses the request."""

    exit_code = EXIT_CONFLICT


class NotFoundError(JobctlError):
    """No such job or run."""

    exit_code = EXIT_NOT_FOUND


class StoreError(JobctlError):
    """The store failed at run time (unreachable, disk full, newer schema)."""

    exit_code = EXIT_FAILED


class StoreDataError(StoreError):
    """The store refused this write's data (a value it cannot hold, a broken constraint):
    not an outage, so retrying the same write cannot succeed."""


class FencedError(JobctlError):
    """A runner's write refused because its lease on the run has gone (it expired, and the
    run was or will be taken over by another runner): SPEC 8's fencing. Not a StoreError:
    retrying the same write can never succeed."""

    exit_code = EXIT_FAILED
