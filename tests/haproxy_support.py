"""A real HAProxy for the tests: Debian's haproxy, in the foreground (``-db``), with a config that
webapp/cluster/haproxy.py writes for the given nodes, on a free loopback port, its runtime API on a socket
in a tmp dir of its own; stopped and removed after. Installed by scripts/setup.sh test."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from web_support import free_port, wait_for
from webapp.cluster.haproxy import COOKIE, Front, Node, render


class HAProxy:
    """HAProxy in front of ``nodes``; ``front`` says what differs from a test's defaults (loopback, a free
    port, checks every 300 ms so that tests wait little for HAProxy to see a change)."""

    def __init__(self, nodes: list[Node], **front):
        self.dir = Path(tempfile.mkdtemp(prefix="labnb-haproxy-"))
        self.front = Front(**{"bind": "127.0.0.1", "port": free_port(), "check_every": "300ms",
                              "admin_socket": str(self.dir / "admin.sock"), **front})
        self.port = self.front.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = self.dir / "haproxy.cfg"
        self.config.write_text(render(nodes, self.front))
        self.log = self.dir / "haproxy.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "HAProxy":
        checked = subprocess.run(["haproxy", "-c", "-f", str(self.config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(self.config)], stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

        def listening():
            assert self.proc.poll() is None, f"haproxy exited with {self.proc.returncode}:\n{self.log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
            return os.path.exists(self.front.admin_socket)
        wait_for(listening, 30, 0.05, "haproxy to listen")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "HAProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- its runtime API -----------------------------------------------------------------------------
    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.front.admin_socket)
            s.sendall(line.encode() + b"\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """The backend ``labnb``'s servers as ``show stat`` gives them, by name: status, weight, stot..."""
        rows = [line.split(",") for line in self.command("show stat").splitlines() if line]
        head = [h.lstrip("# ") for h in rows[0]]
        return {row[1]: dict(zip(head, row)) for row in rows[1:] if row[0] == "labnb" and len(row) > 5}

    def wait_server(self, name: str, what: str, condition, timeout: float = 60) -> dict:
        """Wait until ``condition`` holds of server ``name``'s stats; those stats."""
        return wait_for(lambda: (lambda s: condition(s) and s)(self.stats().get(name, {})), timeout, 0.1,
                        f"haproxy's server {name} to be {what} (now {self.stats().get(name)})")


def placed(http) -> str:
    """The node HAProxy pinned this browser to (its cookie: the node's name, ``-full`` for the backup, then
    ``|`` and the date it renews by)."""
    return http.cookies.get(COOKIE).partition("|")[0].removesuffix("-full")
