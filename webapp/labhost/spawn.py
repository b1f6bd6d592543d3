"""The server's end of a lab host's spawner (``scripts/spawner.py``).

Every command of a lab host is started by the spawner inside it, so no
process of the machine's root ever enters the lab host (docs/security.md).
What comes back over the socket is the lab host's word, and the lab host's
root may have replaced the spawner: every message is size-bounded and
checked, a descriptor that is not what was asked for is closed and refused.
And the lab host may be frozen (its root may freeze its own cgroup) or
hostile: every wait on it has a deadline, and sending never blocks.
"""
from __future__ import annotations

import array
import json
import math
import os
import select
import socket
import stat
import subprocess
import threading
import time

from .errors import LabHostError

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "spawner.py")
MAX_REPLY = 4096
SEND_BUFFER = 4 << 20     # a request carries a whole step's script (up to 128 KiB an argument)
SPAWN_TIMEOUT = 30       # seconds for the spawner to take a request, and to start the command and answer
PTMX = os.makedev(5, 2)   # a PTY master, from any devpts instance


def pair() -> tuple[socket.socket, socket.socket]:
    """The control socket pair: the server keeps the first, the spawner gets the second as stdin."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        ours.setsockopt(socket.SOL_SOCKET, 32, SEND_BUFFER)   # SO_SNDBUFFORCE: past wmem_max, as root
    except OSError:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    return ours, theirs


def receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict, list[int]]:
    """One message and the descriptors sent with it; {} when the peer has hung up."""
    fds = array.array("i")
    data, anc, flags, _ = sock.recvmsg(MAX_REPLY, socket.CMSG_SPACE(max(max_fds, 1) * fds.itemsize),
                                       socket.MSG_CMSG_CLOEXEC)
    for level, kind, blob in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(blob[:len(blob) - len(blob) % fds.itemsize])
    got = list(fds)
    try:
        if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC) or len(got) > max_fds:
            raise ValueError("an oversized message")
        msg = json.loads(data) if data else {}
        if not isinstance(msg, dict):
            raise ValueError("not an object")
    except ValueError:
        _close_all(got)
        raise LabHostError("the lab host's spawner sent a malformed message",
                           "Reset the lab host") from None
    return msg, got


class Child:
    """A command started by the spawner: its PTY master (or output pipes), signals, exit status."""

    def __init__(self, channel: socket.socket, pid: int, fds: list[int]):
        self.channel, self.pid = channel, pid
        self.master = fds[0] if len(fds) == 1 else -1
        self.stdout, self.stderr = (fds[0], fds[1]) if len(fds) == 2 else (-1, -1)
        self.returncode: int | None = None
        self._lock = threading.Lock()   # the channel is not closed under a signal or an abandon

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the command's process group (nothing, once it has ended), never waiting:
        a spawner that does not read its channel (a frozen lab host) does not get it."""
        with self._lock:
            if self.returncode is None and self.channel.fileno() >= 0:
                try:
                    self.channel.send(json.dumps({"signal": int(sig)}).encode(), socket.MSG_DONTWAIT)
                except OSError:
                    pass

    def wait(self, timeout: float | None = None) -> int | None:
        """The command's return code as Popen gives it (-N: signal N) once it has ended; None if it did not
        within ``timeout`` seconds (None: wait until it ends, or until ``abandon``).

        A spawner that vanishes without a word counts as the command killed (-9).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            if deadline is not None and not _readable(self.channel, deadline - time.monotonic()):
                return None
            try:
                msg, _ = receive(self.channel)
            except (OSError, LabHostError):
                msg = {}
            rc = msg.get("exit") if msg else -9
            if isinstance(rc, int) and -64 < rc < 256:
                self.returncode = rc
        with self._lock:
            self.channel.close()
        return self.returncode

    def abandon(self) -> None:
        """Stop waiting for a command whose lab host does not answer: a ``wait`` ends at once, the command
        counted as killed. The spawner, should it run again, kills the command when it sees the channel shut."""
        with self._lock:
            if self.channel.fileno() >= 0:
                try:
                    self.channel.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close_fds(self) -> None:
        _close_all([fd for fd in (self.master, self.stdout, self.stderr) if fd >= 0])
        self.master = self.stdout = self.stderr = -1


class Spawned:
    """The signals, the wait and the abandon of the ``Child`` held as ``child``: what a terminal's handle
    and a job made of one share."""

    child: Child

    def signal(self, sig: int) -> None:
        self.child.signal(sig)

    def wait(self, timeout: float | None = None) -> int | None:
        return self.child.wait(timeout)

    def abandon(self) -> None:
        self.child.abandon()


class Spawner:
    """Asks one lab host's spawner to start commands; thread-safe."""

    def __init__(self, control: socket.socket):
        self.control = control
        self._lock = threading.Lock()

    def hello(self, timeout: float = SPAWN_TIMEOUT) -> dict:
        """The spawner's first message, sent once the lab host is set up."""
        if not _readable(self.control, timeout):
            raise LabHostError(f"the lab host's spawner did not start within {timeout:.0f} s", "Reset the lab host")
        msg, _ = receive(self.control)
        if "hello" not in msg:
            raise LabHostError("the lab host's spawner did not start", "Reset the lab host")
        return msg

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str, *, tty: bool = True,
              rows: int = 24, cols: int = 80) -> Child:
        request = json.dumps({"argv": argv, "env": env, "cwd": cwd, "tty": tty,
                              "rows": rows, "cols": cols}).encode()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._send(request, theirs.fileno(), time.monotonic() + SPAWN_TIMEOUT)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        want = 1 if tty else 2
        ours.settimeout(SPAWN_TIMEOUT)
        try:
            msg, fds = receive(ours, max_fds=want)
        except TimeoutError:
            ours.close()
            raise LabHostError(f"the lab host's spawner did not answer within {SPAWN_TIMEOUT} s",
                               "The lab host is frozen, overloaded or broken: reset it") from None
        except BaseException:
            ours.close()
            raise
        ours.settimeout(None)
        pid = msg.get("pid")
        if not isinstance(pid, int) or len(fds) != want or not all(_expected(fd, tty) for fd in fds):
            _close_all(fds)
            ours.close()
            error = msg.get("error") if isinstance(msg.get("error"), str) else "no answer"
            raise LabHostError(f"the lab host could not start {argv[0]}: {error[:500]}",
                               "Check the command; if the lab host is broken, reset it")
        return Child(ours, pid, fds)

    def _send(self, request: bytes, channel: int, deadline: float) -> None:
        """One request and its channel, by ``deadline``: a spawner that takes no requests (a frozen lab
        host: its socket's queue is full) fails the spawn, never blocks it, nor the next one."""
        unanswered = LabHostError(f"the lab host's spawner did not take a request within {SPAWN_TIMEOUT} s",
                                  "The lab host is frozen, overloaded or broken: reset it")
        if not self._lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
            raise unanswered
        try:
            pause = 0.001
            while True:
                try:
                    self.control.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                      array.array("i", [channel]))], socket.MSG_DONTWAIT)
                    return
                except BlockingIOError:
                    if time.monotonic() + pause > deadline:
                        raise unanswered from None
                    time.sleep(pause)   # not poll: that reports writable only once 3/4 of the queue is read
                    pause = min(pause * 2, 0.1)
                except OSError as e:
                    raise LabHostError(f"cannot reach the lab host's spawner: {e.strerror}",
                                       "Reset the lab host") from None
        finally:
            self._lock.release()


def start_local(env: dict[str, str], cwd: str) -> tuple[Spawner, subprocess.Popen]:
    """A spawner on this machine itself, for the plain backend."""
    ours, theirs = pair()
    proc = subprocess.Popen(["python3", "-I", "-S", SCRIPT], stdin=theirs, env=env, cwd=cwd,
                            start_new_session=True, close_fds=True)
    theirs.close()
    spawner = Spawner(ours)
    spawner.hello()
    return spawner, proc


def _expected(fd: int, tty: bool) -> bool:
    """A PTY master for a terminal, pipes otherwise: never a file the server would then write to."""
    st = os.fstat(fd)
    return (stat.S_ISCHR(st.st_mode) and st.st_rdev == PTMX) if tty else stat.S_ISFIFO(st.st_mode)


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Whether ``sock`` has a message (or has hung up) within ``timeout`` seconds."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(max(0, math.ceil(timeout * 1000))))


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
