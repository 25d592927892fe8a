"""The base class of every error a user can fix (bad input, configuration, a missing model).

It lives in ``features`` because every package may import ``features``: each package's own
error classes derive from it, and the command line catches it in one place, printing the
message as one line and exiting 2. Anything else (a bug) keeps its traceback.
"""

from __future__ import annotations


class RiskgradeError(Exception):
    """A problem the user can fix; the message names what is wrong and, where useful, how."""
