"""The one exception type of the data layer."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(Exception):
    """A dataset could not be found, fetched, verified or decoded.

    ``str(err)`` is a single paragraph written for the person running the program: which file,
    what is wrong with it, the expected checksum when one is known, and how to fix it. Command
    line front ends print it as-is, without a traceback, so messages never rely on the traceback
    (or on the exception that caused them, which is still chained for debugging).
    """
