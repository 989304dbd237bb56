"""Local ports and child processes, for every server the project starts (``mkrich serve``,
the console, the test doubles). Imports nothing else of the project, so any layer may use it."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` cannot be bound now (asked before a server starts, so that a taken
    port is a one-line error rather than a traceback from deep inside the server)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop a server started as a subprocess: SIGTERM, and SIGKILL if it has not exited after
    ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
