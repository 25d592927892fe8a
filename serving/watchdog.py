"""A serving worker ends when its supervisor dies: no orphan keeps the port and answers.

BentoML's supervisor (the circus arbiter inside ``bentoml serve``, which ``riskgrade serve``
becomes) starts each worker in a session of its own, so a SIGKILL of the supervisor does not
reach the workers: they would live on with parent 1, keep the listening socket and answer.

`start_watchdog` (called in each worker) guards against that twice:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGTERM)``: the kernel sends SIGTERM the moment the
  parent dies;
- a daemon thread checks every ``interval_s`` that the supervisor is still the parent and
  alive, and sends SIGTERM itself otherwise (other platforms, or a supervisor that is not the
  direct parent).

SIGTERM is the worker's ordinary graceful stop: the server stops accepting, requests in flight
finish (their decisions were committed to the audit log before their response) and the
shutdown hooks close the audit store. If the worker is still alive ``grace_s`` later, it exits
hard: nothing acknowledged is lost, since every decision is committed before it is answered.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SUPERVISOR_ENV = "RISKGRADE_SUPERVISOR_PID"
"""The supervisor's pid, when the worker is not its direct child (default: the parent)."""
_PR_SET_PDEATHSIG = 1

logger = logging.getLogger("riskgrade.serving")


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the Linux kernel to send ``sig`` to this process when its parent dies.

    Returns:
        Whether it is in place (False on other platforms or if ``prctl`` fails).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def supervisor_pid(environ: Mapping[str, str] | None = None) -> int:
    """The supervisor to watch: the parent, or ``RISKGRADE_SUPERVISOR_PID`` when it names it.

    ``riskgrade serve`` sets the variable to its own pid (it becomes the supervisor), so a
    worker whose supervisor died before the worker started watching still knows whom it
    served: the named pid is then gone and the worker stops. A variable naming another live
    process (inherited by mistake) is ignored.
    """
    parent = os.getppid()
    value = (os.environ if environ is None else environ).get(SUPERVISOR_ENV, "")
    if not (value.isascii() and value.isdigit()) or int(value) <= 1:
        return parent
    named = int(value)
    return named if named == parent or not process_alive(named) else parent


@dataclass
class Watchdog:
    """Watches one supervisor from a daemon thread; `stop` ends the watch."""

    supervisor: int
    parent: int
    interval_s: float = 1.0
    grace_s: float = 35.0
    on_lost: Callable[[], None] | None = None
    """Called once when the supervisor is gone (default: SIGTERM to this process)."""
    _stopped: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def supervisor_gone(self) -> bool:
        """Whether this worker was re-parented or the supervisor no longer exists."""
        return os.getppid() != self.parent or not process_alive(self.supervisor)

    def start(self) -> Watchdog:
        """Start the watching thread."""
        self._thread = threading.Thread(
            target=self._run, name="riskgrade-supervisor-watchdog", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the watch (on an orderly shutdown)."""
        self._stopped.set()

    def _run(self) -> None:
        while not self.supervisor_gone():
            if self._stopped.wait(self.interval_s):
                return
        self._lost()

    def _lost(self) -> None:
        logger.warning(
            "supervisor %d is gone: stopping worker %d (in-flight requests finish)",
            self.supervisor,
            os.getpid(),
        )
        if self.on_lost is not None:
            self.on_lost()
            return
        os.kill(os.getpid(), signal.SIGTERM)
        if not self._stopped.wait(self.grace_s):
            logger.error("worker %d did not stop within %.0f s: exiting", os.getpid(), self.grace_s)
            with contextlib.suppress(Exception):
                logging.shutdown()
            os._exit(1)


def start_watchdog(
    *, interval_s: float = 1.0, grace_s: float = 35.0, environ: Mapping[str, str] | None = None
) -> Watchdog | None:
    """Make this worker end when its supervisor dies (see the module docstring).

    Args:
        interval_s: Seconds between two checks of the supervisor.
        grace_s: Seconds a graceful stop may take before the worker exits hard.
        environ: Where to read ``RISKGRADE_SUPERVISOR_PID`` (default: the environment).

    Returns:
        The running watchdog, or None when the supervisor is init (pid 1, e.g. the container's
        entry point), whose death ends everything anyway.
    """
    parent = os.getppid()
    supervisor = supervisor_pid(environ)
    if supervisor <= 1:
        return None
    if supervisor == parent:
        set_parent_death_signal(signal.SIGTERM)
    # The thread's first check also catches a supervisor that died before the signal was set.
    return Watchdog(supervisor, parent, interval_s=interval_s, grace_s=grace_s).start()
