"""Run the ``riskgrade`` console entry point in process, as a user's shell would."""

from __future__ import annotations

import contextlib
import io
import sys


def run_main(*args: str) -> tuple[int, str, str]:
    """``riskgrade ARGS`` through ``riskgrade.cli.main``: exit code, stdout, stderr.

    Unlike ``CliRunner.invoke(app)``, this goes through the entry point's error handling, so a
    user-fixable error shows as the user sees it. An uncaught exception (a bug) propagates.
    """
    from riskgrade.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["riskgrade", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()
