"""The isolated lab host: new user, cgroup, net, mount, uts, ipc and pid
namespaces with root inside mapped to a private range of 65536 ids outside,
a cgroup subtree with limits, a seccomp filter, and a dockerd of its own.

How it is made (docs/lab-hosts.md; the scripts are in ``scripts/``):

1. reserve a slot (uid range), make its dir and cgroup subtree;
2. a starter joins the subtree's ``lab`` cgroup and, as the machine's root in
   a mount namespace of its own, builds the lab host's root (``labroot.py
   build``): read-only binds of the machine's programs, sized tmpfs mounts, a
   /dev and devpts of its own, all locked once the user namespace exists;
   then it becomes the lab host's root in a user namespace that the slot's
   first uid creates, so owns: the kernel's per-user counts are charged there
   (``labroot.py``, ``user_namespace``);
3. ``unshare``, as that root, makes the other namespaces (owned by that user
   namespace); its child, PID 1, finishes the root and pivots into it
   (``labroot.py finish``), confines itself (``confine.py``: seccomp,
   no_new_privs, rlimits) and execs tini with ``init.sh``, which starts
   dockerd and becomes the spawner;
4. the server moves the starter (``unshare``, outside the pid namespace) out
   of ``lab`` into a root-owned leaf; ready when the spawner says hello and
   dockerd answers.

No process of the machine's ever enters a running lab host: commands are
started by its spawner (``spawn.py``), files and sockets are opened with
``inside.py`` so that they resolve inside it.
"""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import time

import docker

from .base import DOCKER_API, Health, LabHostError
from .local import LocalLabHost
from . import cgroups, devpts, image, inside, nsfs, ptyguard, records, spawn, statedir
from .records import RANGE
from ..config import Settings

NAMESPACES = ["unshare", "--cgroup", "--net", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child"]
PATH = "/run/labnb/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
HOME = "/root"
LOG_LIMIT = 64 << 10    # what the server keeps of a lab host's start-up messages
PING_TIMEOUT = 5.0      # seconds dockerd may take to answer a health check: a loaded machine is slow, not broken
# The starter writes itself into the lab host's `lab` cgroups, then execs the
# rest: all it starts inherits them.
JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


def build_seed(settings: Settings) -> str:
    """Make a lab host, load the image, stop its dockerd and keep its image store as a tar.

    Lab hosts made afterwards unpack it instead of running ``docker load``.
    """
    dest = statedir.seed_path(settings, image.image_id(statedir.image_archive(settings)))
    tmp = dest + ".tmp"
    host = SandboxLabHost(settings, seeded=False)
    host.start()
    try:
        host.wait_ready()
        data = os.path.join(host.dir, "docker")
        script = ('kill "$(cat /run/docker.pid)"; while [ -e /run/docker.pid ]; do sleep 0.05; done; '
                  f'tar -C {data} -cf - image overlay2')
        with open(tmp, "wb") as f:
            def save(chunk: bytes) -> None:   # no larger than the lab host's disk could hold
                if f.tell() + len(chunk) > settings.disk_mb << 20:
                    raise LabHostError(f"the seeded image store is larger than LABNB_DISK_MB={settings.disk_mb}")
                f.write(chunk)
            rc, _out, err = host.capture(["/bin/sh", "-c", script], timeout=60, stdout=save)
        if rc != 0:
            raise LabHostError(f"cannot save the seeded image store: {err.decode(errors='replace')}")
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        host.destroy()
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)
    return dest


class SandboxLabHost(LocalLabHost):
    backend = "sandbox"
    home = HOME

    def __init__(self, settings: Settings, lab_host_id: str | None = None, seeded: bool = True,
                 bundle: tuple[str, str] | None = None):
        super().__init__(lab_host_id or records.new_id(settings.state_dir, settings.node))
        self.settings = settings
        # the bundle of shared image layers (layers.py: the current one, or one on trial) includes busybox;
        # else the busybox seed
        self.bundle = bundle or (statedir.current_bundle(settings) if seeded else None)
        self.seed = self.bundle[1] if self.bundle else (statedir.seed_archive(settings) if seeded else None)
        self.slot: int | None = None
        self.pid: int | None = None        # the lab host's PID 1, as the server sees it
        self.pid_start: int | None = None  # its start time: a reused pid is not it
        self.starter: subprocess.Popen | None = None
        self.subtree = cgroups.Subtree(self.id)
        self.dir = records.host_dir(settings.state_dir, self.id)
        self.seeded = False
        self._log = b""        # start-up messages, until the spawner says hello
        self._log_fd = -1
        self._destroyed = False
        self._guard: ptyguard.PtyGuard | None = None
        self._guard_generation = 0
        self._userns: tuple[int, int] | None = None   # its user namespace's identity, once asked

    @property
    def uid(self) -> int:
        return self.settings.uid_base + self.slot * RANGE

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.destroy()
            raise

    def _start(self) -> None:
        s = self.settings
        if os.geteuid() != 0:
            raise LabHostError("making a sandbox lab host needs root",
                               "Run labnb as root, or use the plain backend (LABNB_BACKEND=plain) on a disposable VM")
        archive = statedir.image_archive(s)
        if not os.path.exists(archive):
            raise LabHostError(f"the busybox image archive {archive} is missing",
                               "Run `labnb image build` (scripts/setup.sh does it)")
        self.slot = records.reserve_slot(s.state_dir, self.id, s.max_lab_hosts, s.uid_base)
        os.mkdir(self.dir, 0o711)   # the lab host's root passes through it to build its root
        root = os.path.join(self.dir, "root")
        data = os.path.join(self.dir, "docker")
        os.mkdir(root, 0o755)
        self._record()
        try:
            self.subtree.create(self.uid, self.uid, cgroups.Limits(
                s.memory_mb * 1024 * 1024, s.pids, s.cpu_weight, s.io_mbps << 20, s.io_iops,
                cgroups.disks(s.state_dir)))
        except (cgroups.CgroupError, OSError) as e:
            raise LabHostError(f"cannot give lab host {self.id} a cgroup subtree: {e}",
                               "Run `labnb doctor` to see what the host lacks") from None
        self._guard_ptys()
        try:
            pts = devpts.instance(self.uid + 5, s.ptys)   # gid 5 inside: tty
        except OSError as e:
            raise LabHostError(f"cannot give lab host {self.id} a devpts of its own: {e}",
                               "labnb needs Linux 5.2 or later (fsopen); run `labnb doctor`") from None
        lib = statedir.lib_dir(s)
        python = ["python3", "-I", "-S", os.path.join(lib, "labroot.py")]
        argv = ["sh", "-c", JOIN, "labnb-start", *self.subtree.procs_files("lab"), "--",
                "unshare", "--mount", "--propagation", "private", "--",
                *python, "build", root, data, str(self.uid), str(s.disk_mb), str(s.tmpfs_mb), str(pts), str(s.pids),
                statedir.shared_store(s) if self.bundle else "", "--", *NAMESPACES, "--",
                *python, "finish", root, data, lib, self.subtree.mount_spec(), self.seed or "", "--",
                "tini", "--", "sh", "/run/labnb/init.sh", s.hostname, s.address, data]
        control, theirs = spawn.pair()
        log_r, log_w = os.pipe()
        try:
            self.starter = subprocess.Popen(
                argv, stdin=theirs, stdout=log_w, stderr=log_w, cwd="/",
                env={"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root"},
                start_new_session=True, close_fds=True, pass_fds=(pts,))
        except BaseException:
            control.close()
            os.close(log_r)
            raise
        finally:
            theirs.close()
            os.close(log_w)
            os.close(pts)
        self.spawner = spawn.Spawner(control)
        self._log_fd = log_r
        os.set_blocking(log_r, False)
        pid = self.starter.pid
        self._poll(lambda: self._child_of(pid), "the lab host's PID 1 to start")
        self.pid = self._child_of(pid)
        self.pid_start = _start_time(self.pid)
        # The starter (unshare, the lab host's root outside its pid namespace) waits
        # on PID 1: out of the learner's delegated cgroup (which must hold no
        # process of its own on v2), into a leaf of the machine's root.
        for procs in self.subtree.procs_files("keeper"):
            with open(procs, "w") as f:
                f.write(str(pid))
        self._record()

    def _guard_ptys(self) -> None:
        """Count this lab host's PTYs from every devpts (``ptyguard.py``), as the settings ask."""
        s = self.settings
        if s.pty_guard not in ("on", "auto", "off"):
            raise LabHostError(f"LABNB_PTY_GUARD={s.pty_guard!r} is not one of on, auto, off",
                               "Set it to on (refuse lab hosts without the guard), auto or off")
        if s.pty_guard == "off":
            return
        try:
            self._guard = ptyguard.for_settings(s.uid_base, s.max_lab_hosts, s.ptys)
        except ptyguard.GuardError as e:
            if s.pty_guard == "on":
                raise LabHostError(f"lab host {self.id}: {e}",
                                   "Boot with `bpf` in the kernel's lsm= list, or set LABNB_PTY_GUARD=auto "
                                   "to run without it (docs/security.md)") from None
            ptyguard.warn_once(str(e))
            return
        try:
            self._guard_generation = self._guard.admit(self.slot, s.ptys)
        except (ptyguard.GuardError, OSError) as e:
            raise LabHostError(f"lab host {self.id}: the PTY guard cannot count it: {e}",
                               "Lower LABNB_MAX_LAB_HOSTS, or set LABNB_PTY_GUARD=off (docs/security.md)") from None

    def _poll(self, predicate, what: str) -> None:
        """Wait for ``predicate`` as long as a lab host may take to get ready
        (a loaded machine refilling a pool may need far more than usual)."""
        deadline = time.monotonic() + self.settings.ready_timeout
        while True:
            try:
                if predicate():
                    return
            except OSError:
                pass
            if self.starter.poll() is not None:
                raise LabHostError(f"lab host {self.id} failed while waiting for {what}: {self._log_tail()}",
                                   "Run `labnb doctor` to check the host")
            if time.monotonic() > deadline:
                raise LabHostError(f"lab host {self.id}: timed out waiting for {what}: {self._log_tail()}",
                                   f"Check the machine's load; LABNB_READY_TIMEOUT is {self.settings.ready_timeout:.0f} s")
            time.sleep(0.001)

    @staticmethod
    def _child_of(pid: int) -> int | None:
        """The child of ``unshare`` that is PID 1 of the new pid namespace.

        The same process, as ``labroot.py``, had another child, in the server's
        pid namespace: the writer of its user namespace's maps.
        """
        own = os.stat("/proc/self/ns/pid").st_ino
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                if os.stat(f"/proc/{child}/ns/pid").st_ino != own:
                    return int(child)
        return None

    def _record(self) -> None:
        records.write(self.settings.state_dir, {
            "id": self.id, "backend": self.backend, "slot": self.slot,
            "uid": self.uid if self.slot is not None else None, "cgroup_parent": self.subtree.parent,
            "pid": self.pid,
            "pid_start": self.pid_start, "created": self.created, "bundle": self.bundle and self.bundle[0],
            "owner": os.getpid(), "owner_start": _start_time(os.getpid())})

    def _read_log(self) -> None:
        while self._log_fd >= 0:
            try:
                chunk = os.read(self._log_fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                self._close_log()
                return
            self._log = (self._log + chunk)[-LOG_LIMIT:]

    def _close_log(self) -> None:
        if self._log_fd >= 0:
            os.close(self._log_fd)
            self._log_fd = -1

    def _log_tail(self) -> str:
        self._read_log()
        return self._log[-2000:].decode(errors="replace").strip() or "(no output)"

    def wait_ready(self, timeout: float | None = None) -> None:
        timeout = timeout or self.settings.ready_timeout
        deadline = time.monotonic() + timeout
        control = self.spawner.control.fileno()
        while True:   # the spawner's hello: init.sh is done
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabHostError(f"lab host {self.id} did not finish setting up within {timeout:.0f} s: "
                                   f"{self._log_tail()}", "Check `labnb doctor` and the machine's load")
            watched = [control] + ([self._log_fd] if self._log_fd >= 0 else [])
            readable, _, _ = select.select(watched, [], [], min(left, 0.5))
            if self._log_fd in readable:
                self._read_log()
            if control in readable:
                break
            if self.starter.poll() is not None:
                raise LabHostError(f"lab host {self.id} died while starting: {self._log_tail()}",
                                   "Run `labnb doctor`; the lab host's log is above")
        try:
            self.seeded = bool(self.spawner.hello().get("seeded"))
        except LabHostError:
            raise LabHostError(f"lab host {self.id} failed while setting up: {self._log_tail()}",
                               "Run `labnb doctor`; the lab host's log is above") from None
        self._close_log()   # from here on the lab host logs to its own /run/labnb
        while not self._ping():
            if not self.alive():
                raise LabHostError(f"lab host {self.id} died while starting its dockerd: {self._dockerd_log()}",
                                   "Run `labnb doctor`")
            if time.monotonic() > deadline:
                raise LabHostError(f"lab host {self.id}: dockerd did not answer within {timeout:.0f} s: "
                                   f"{self._dockerd_log()}", "Check `labnb doctor` and the machine's load")
            time.sleep(0.005)
        if self.seeded:
            return   # labroot.py unpacked the seeded image store: busybox is there
        client = self.docker()
        try:
            with open(statedir.image_archive(self.settings), "rb") as f:
                client.api.load_image(f.read())
        finally:
            client.close()

    def _ping(self) -> bool:
        try:
            s = inside.connect_unix(self.pid, "/run/docker.sock", self.uid, PING_TIMEOUT, self.pid_start)
        except OSError:
            return False
        try:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: lab-host\r\nConnection: close\r\n\r\n")
            return s.recv(64).split(b"\r\n", 1)[0].split()[1:2] == [b"200"]
        except OSError:
            return False
        finally:
            s.close()

    def _dockerd_log(self) -> str:
        try:
            tail = inside.read_tail(self.pid, "/run/labnb/dockerd.log", 1500, self.pid_start, owner=self.uid)
            return tail.decode(errors="replace").strip() or "(empty dockerd log)"
        except OSError as e:
            return f"(dockerd log unreadable: {e.strerror or e})"

    def alive(self) -> bool:
        return not self._destroyed and records.process_alive(self.pid, self.pid_start)

    def command_env(self) -> dict[str, str]:
        return {"PATH": PATH, "HOME": HOME, "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash",
                "TERM": "xterm-256color", "LANG": "C.UTF-8", "INPUTRC": "/run/labnb/inputrc"}

    def shell_rc(self) -> str:
        return "/run/labnb/bashrc"

    def docker(self, timeout: int = 30) -> docker.DockerClient:
        """A client of the lab host's dockerd, by the socket's inode, found inside the lab host."""
        if not self.alive():
            raise LabHostError(f"lab host {self.id} is gone", "Reset the lab host")
        try:
            fd = inside.socket_fd(self.pid, "/run/docker.sock", self.uid, self.pid_start)
        except OSError as e:
            raise LabHostError(f"lab host {self.id} has no docker socket: {e}",
                               "Start its dockerd again (`restart-docker` in the lab host) or reset it") from None
        return _DockerClient(fd, timeout)

    def docker_socket(self, timeout: float):
        """By the socket's inode, found inside the lab host (``inside.connect_unix``)."""
        if not self.alive():
            raise LabHostError(f"lab host {self.id} is gone", "Reset the lab host")
        try:
            return inside.connect_unix(self.pid, "/run/docker.sock", self.uid, timeout, self.pid_start)
        except OSError as e:
            raise LabHostError(f"lab host {self.id}: its dockerd does not answer: {e}",
                               "Start its dockerd again (`restart-docker` in the lab host) or reset it") from None

    def namespace_fd(self, kind: str) -> int:
        """Through a descriptor of PID 1's /proc dir whose start time was checked: a pid reused by another
        process after the lab host died leads nowhere (the old dir refuses), never to that process."""
        try:
            proc = os.open(f"/proc/{self.pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (OSError, TypeError):
            raise LabHostError(f"lab host {self.id} is gone", "Reset the lab host") from None
        try:
            if records.start_time_in(proc) != self.pid_start:
                raise LabHostError(f"lab host {self.id} is gone", "Reset the lab host")
            return os.open(f"ns/{kind}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
        except OSError:
            raise LabHostError(f"lab host {self.id} is gone", "Reset the lab host") from None
        finally:
            os.close(proc)

    def open_inside(self, path: str, flags: int) -> int:
        if not self.alive():
            raise LabHostError(f"lab host {self.id} is gone", "Reset the lab host")
        return inside.open_in(self.pid, path, flags, self.pid_start, owner=self.uid)

    def owns_namespace(self, fd: int) -> bool:
        if self._userns is None:
            user = self.namespace_fd("user")
            try:
                self._userns = nsfs.identity(user)
            finally:
                os.close(user)
        return nsfs.owned_by(fd, self._userns)

    def health(self) -> Health:
        if not self.alive():
            return Health(False, f"lab host {self.id} is gone: its PID 1 ({self.pid}) has exited")
        if not self._ping():
            return Health(False, f"lab host {self.id} runs, but its dockerd does not answer "
                                 "(restart it with `restart-docker` in the lab host, or reset the lab host)")
        return Health(True, "ready")

    def pause(self, paused: bool) -> None:
        try:
            self.subtree.freeze(paused)
        except cgroups.CgroupError as e:
            raise LabHostError(f"cannot {'freeze' if paused else 'thaw'} lab host {self.id}: {e}",
                               "Run `labnb doctor` to check the cgroups") from e

    def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        if self.spawner:
            self.spawner.control.close()
        self._close_log()
        teardown(self.settings, self.id, self.pid, self.pid_start, self.slot,
                 self.uid if self.slot is not None else None, self.subtree.parent)
        if self._guard is not None:   # after the kill: a lab host is counted while any of it runs
            self._guard.release(self.slot, self._guard_generation)
        if self.starter:
            self.starter.wait()


class _DockerClient(docker.DockerClient):
    """Connects through ``/proc/self/fd/N``: the socket checked once, never a path of the lab host's choosing."""

    def __init__(self, fd: int, timeout: int):
        self._socket_fd = fd
        super().__init__(base_url=f"unix:///proc/self/fd/{fd}", version=DOCKER_API, timeout=timeout)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._socket_fd >= 0:
                os.close(self._socket_fd)
                self._socket_fd = -1


def teardown(settings: Settings, lab_host_id: str, pid: int | None, pid_start: int | None,
             slot: int | None, uid: int | None = None, cgroup_parent: str | None = None) -> None:
    """Remove a lab host completely: processes, cgroups, files, slot; also a frozen, hostile one.

    PID 1 of the pid namespace dies first, so that ``unshare`` reaps it (else
    it is left a zombie for the machine's init) and the kernel kills the rest
    of the namespace; then everything left in the subtree (cgroups.py thaws a
    frozen one). Mounts, veths and netns names go with the namespaces.
    Used by destroy and the reaper.
    """
    # where it was made (another process's delegated cgroup); records from before it was kept: the root
    subtree = cgroups.Subtree(lab_host_id, cgroup_parent or "")
    # PID 1 by its start time too: a zombie waiting for `unshare` still counts
    # (it must be reaped before `unshare` dies), a reused pid does not
    first = pid if records.process_alive(pid, pid_start) else None
    try:
        subtree.kill_all(first=first)
        subtree.remove()
    except cgroups.CgroupError as e:
        raise LabHostError(f"lab host {lab_host_id} could not be removed completely: {e}",
                           "Run `labnb lab-hosts gc` again; see `labnb doctor`") from None
    shutil.rmtree(records.host_dir(settings.state_dir, lab_host_id), ignore_errors=True)
    if slot is not None:   # the uid the lab host was made with: an operator's settings may differ
        records.release_slot(settings.state_dir, slot, uid if uid is not None else settings.uid_base + slot * RANGE)


def _start_time(pid: int | None) -> int | None:
    try:
        return records.process_start_time(pid) if pid else None
    except OSError:
        return None
