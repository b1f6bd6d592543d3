"""The spawner: starts every command of a lab host, from inside it.

It runs as the lab host's own root, in all its namespaces, as the last
process ``init.sh`` becomes. The server never enters a lab host itself (an
``nsenter`` run by the machine's root is, for a moment, a process of the
machine's root inside the lab host's pid namespace that its root can ptrace:
CVE-2016-9962's class). Instead it asks this process over a socket pair it
was handed at birth (stdin, SOCK_SEQPACKET: one message is one request):

    request  {"argv": [...], "env": {...}, "cwd": "/root", "tty": true,
              "rows": 24, "cols": 120}  + one fd: the command's own channel
    channel  -> {"pid": N} + the PTY master (tty) or stdout and stderr pipes
             <- {"signal": S}            to the command's process group
             -> {"exit": RC}             then the channel is closed

A channel closed by the server kills the command's process group. The PTY
comes from the lab host's own devpts (its ``/dev/ptmx``). The server treats
everything it receives here as the lab host's word: hostile, size-bounded.

Standard library only, run by the machine's python3 (``-I -S``).
"""
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios

MAX_REQUEST = 1 << 20
# By its path, not the command's PATH, whose first dir (/run/labnb/bin) the lab host's root writes to. An
# exec of setsid costs less than a preexec_fn here (a fork instead of a vfork, python in the child: 1 ms).
SETSID = "/usr/bin/setsid"


def send(sock, obj, fds=()):
    data = json.dumps(obj).encode()
    try:
        if fds:
            sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])
        else:
            sock.send(data)
    except OSError:
        pass   # the server went away; the channel's hang-up does the rest


def start(req):
    """Start one command in a session of its own; return (its Popen, fds to hand over)."""
    argv, env, cwd = req["argv"], req["env"], req.get("cwd") or "/"
    if req.get("tty", True):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", int(req.get("rows", 24)),
                                                            int(req.get("cols", 80)), 0, 0))
        try:
            # setsid -c: a session of its own whose controlling terminal is the PTY
            proc = subprocess.Popen([SETSID, "-c", *argv], stdin=slave, stdout=slave, stderr=slave,
                                    env=env, cwd=cwd, close_fds=True)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return proc, [master]
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w,
                                env=env, cwd=cwd, close_fds=True, start_new_session=True)
    except BaseException:
        os.close(out_r), os.close(err_r)
        raise
    finally:
        os.close(out_w), os.close(err_w)
    return proc, [out_r, err_r]


def main():
    control = socket.socket(fileno=os.dup(0))
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    sel = selectors.DefaultSelector()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel.register(control, selectors.EVENT_READ, "control")
    sel.register(wake_r, selectors.EVENT_READ, "child")
    # pid -> (channel, Popen): the Popen is kept so that subprocess never
    # reaps one of these children itself (its exit status is ours to send)
    channels = {}
    send(control, {"hello": os.getpid(), "seeded": "--seeded" in sys.argv})
    while True:
        for key, _ in sel.select():
            if key.data == "control":
                try:
                    data, anc, _flags, _addr = control.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(4 * 4))
                except InterruptedError:
                    continue
                fds = [fd for level, kind, blob in anc if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
                       for fd in struct.unpack(f"{len(blob) // 4}i", blob[:len(blob) // 4 * 4])]
                if not data and not fds:   # the server is gone: so are its commands
                    for pid in channels:
                        _killpg(pid, signal.SIGKILL)
                    return
                if len(fds) != 1:
                    for fd in fds:
                        os.close(fd)
                    continue
                channel = socket.socket(fileno=fds[0])
                try:
                    proc, handed = start(json.loads(data))
                except Exception as e:   # a bad request or a program that is not there
                    send(channel, {"error": f"{type(e).__name__}: {e}"})
                    channel.close()
                    continue
                send(channel, {"pid": proc.pid}, handed)
                for fd in handed:
                    os.close(fd)
                channels[proc.pid] = channel, proc
                sel.register(channel, selectors.EVENT_READ, proc.pid)
            elif key.data == "child":
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                _reap(channels, sel)
            else:
                pid, channel = key.data, key.fileobj
                try:
                    msg = channel.recv(4096)
                except OSError:
                    msg = b""
                if not msg:   # the server abandoned it
                    _killpg(pid, signal.SIGKILL)
                    sel.unregister(channel)
                    continue
                try:
                    sig = int(json.loads(msg)["signal"])
                except (ValueError, KeyError, TypeError):
                    continue
                _killpg(pid, sig)


def _reap(channels, sel):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid not in channels:
            continue
        channel, proc = channels.pop(pid)
        rc = proc.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        send(channel, {"exit": rc})
        try:
            sel.unregister(channel)
        except (KeyError, ValueError):
            pass
        channel.close()


def _killpg(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    main()
