"""Is a TCP port free to serve on, and if not, which process holds it (Linux ``/proc``)."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from pathlib import Path

_LISTEN = "0A"
"""TCP state LISTEN in ``/proc/net/tcp``."""


class PortUnavailableError(ValueError):
    """The service cannot listen on the requested host and port."""


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == _LISTEN
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    return inodes


def _command(pid: str, proc: Path) -> str:
    try:
        raw = (proc / pid / "cmdline").read_bytes()
    except OSError:
        return "?"
    words = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    if words:
        words[0] = os.path.basename(words[0])
    text = " ".join(" ".join(words).split()) or "?"
    return text if len(text) <= 80 else text[:77] + "..."


def port_holders(port: int, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """(pid, command line) of every process with a socket listening on ``port``, by pid.

    Only processes this user may inspect are found (all of them when run as root); empty
    where ``/proc`` does not exist.
    """
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port, proc)}
    holders: list[tuple[int, str]] = []
    if not targets:
        return holders
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        links = set()
        for fd in fds:
            with contextlib.suppress(OSError):  # closed meanwhile
                links.add(os.readlink(fd))
        if links & targets:
            holders.append((int(entry.name), _command(entry.name, proc)))
    return sorted(holders)


def check_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` once (as the server will, with SO_REUSEADDR) and release it.

    Raises:
        PortUnavailableError: one line: the host is not an IP address of this machine, or the
            port is taken (naming the processes that listen on it), or binding is refused.
    """
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        raise PortUnavailableError(f"--host {host!r} is not an IP address") from None
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise PortUnavailableError(
                    f"cannot listen on {host}:{port}: {error.strerror}"
                ) from None
            holders = port_holders(port)
            who = (
                ", ".join(f"process {pid} ({command})" for pid, command in holders)
                if holders
                else "another process (not visible to this user)"
            )
            raise PortUnavailableError(
                f"port {port} on {host} is already in use by {who}; stop it or choose --port"
            ) from None
