"""The isolated lab host: new user, net, mount, uts, ipc and pid namespaces
with root inside mapped to a private range of 65536 ids outside, a cgroup
subtree with limits, and a dockerd of its own.

How it is made (see ``scripts/init.sh`` for the inside):

1. reserve a slot (uid range), make its dir and cgroup subtree;
2. start ``sh -c 'read; exec unshare ... tini -- sh init.sh'`` and put that
   process in the subtree before it execs, so everything below inherits it;
3. ``unshare`` maps root to the slot's range with newuidmap/newgidmap (root
   needs /etc/subuid and /etc/subgid entries for it: ``labnb doctor`` checks),
   becomes that root *before* exec'ing (after an exec as an unmapped uid the
   process would have no capabilities left), and runs ``init.sh`` under
   tini as PID 1; init.sh mounts the lab host's own /run, /sys, /tmp,
   HOME and /etc/docker, brings up lo and ens33 and starts dockerd;
4. ready when dockerd answers on its socket and the busybox image is loaded.
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time

from .base import Health, LabHost, LabHostError
from . import cgroups, image, records
from ..config import Settings

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")
UNSHARE = ["unshare", "--user", "--net", "--mount", "--uts", "--ipc", "--pid",
           "--fork", "--mount-proc", "--kill-child"]
PATH = "/run/labnb/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
RANGE = 65536


def lib_dir(settings: Settings) -> str:
    return os.path.join(settings.state_dir, "lib")


def image_archive(settings: Settings) -> str:
    return os.path.join(settings.state_dir, "images", "busybox.tar")


def seed_archive(settings: Settings) -> str | None:
    """The docker data dir seeded with the current busybox image, if one was made."""
    image_id = image.image_id(image_archive(settings))
    path = os.path.join(settings.state_dir, "images", f"docker-data-{image_id[:12]}.tar") if image_id else None
    return path if path and os.path.exists(path) else None


def build_seed(settings: Settings) -> str:
    """Make a lab host, load the image, stop its dockerd and keep its image store as a tar.

    Lab hosts made afterwards unpack it instead of running ``docker load``.
    """
    image_id = image.image_id(image_archive(settings))
    dest = os.path.join(settings.state_dir, "images", f"docker-data-{image_id[:12]}.tar")
    host = SandboxLabHost(settings, seeded=False)
    host.start()
    try:
        host.wait_ready()
        data = os.path.join(host.dir, "docker")
        script = ('kill "$(cat /run/docker.pid)"; while [ -e /run/docker.pid ]; do sleep 0.05; done; '
                  f'tar -C {data} -cf - image overlay2')
        result = subprocess.run(host.command_argv(["sh", "-c", script]), env=host.command_env(),
                                capture_output=True, timeout=60)
        if result.returncode != 0:
            raise LabHostError(f"cannot save the seeded image store: {result.stderr.decode(errors='replace')}")
    finally:
        host.destroy()
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(result.stdout)
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)
    return dest


def prepare_state_dir(settings: Settings) -> None:
    """Lay out the state dir and copy the in-lab-host scripts where a lab host can read them.

    The state dir is 0711: a lab host's mapped root may pass through it to its
    own dir but list nothing (other lab hosts' dirs are 0700 and not its own).
    The scripts are copied because the package may live under a dir, like
    /root, that a lab host cannot read.
    """
    masked = ("/tmp", "/root", "/run", "/var/run", "/etc/docker", "/dev/shm")
    state = os.path.realpath(settings.state_dir)
    if any(state == m or state.startswith(m + "/") for m in masked):
        raise LabHostError(f"the state dir {state} is under a path every lab host hides ({', '.join(masked)})",
                           "Set LABNB_STATE_DIR to a dir elsewhere, e.g. /var/lib/labnb")
    os.makedirs(settings.state_dir, exist_ok=True)
    os.chmod(settings.state_dir, 0o711)
    for sub, mode in ((records.HOSTS, 0o711), (records.SLOTS, 0o700), ("lib", 0o755), ("images", 0o755)):
        path = os.path.join(settings.state_dir, sub)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
    for name in os.listdir(SCRIPTS):
        src, dst = os.path.join(SCRIPTS, name), os.path.join(lib_dir(settings), name)
        with open(src, "rb") as f:
            data = f.read()
        try:
            with open(dst, "rb") as f:
                if f.read() == data:
                    continue
        except FileNotFoundError:
            pass
        tmp = dst + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dst)


class SandboxLabHost(LabHost):
    kind = "sandbox"

    def __init__(self, settings: Settings, lab_host_id: str | None = None, seeded: bool = True):
        super().__init__(lab_host_id or records.new_id(settings.state_dir))
        self.settings = settings
        self.seed = seed_archive(settings) if seeded else None
        self.slot: int | None = None
        self.pid: int | None = None        # the lab host's PID 1, as the server sees it
        self.pid_start: int | None = None  # its start time: a reused pid is not it
        self.starter: subprocess.Popen | None = None
        self.subtree = cgroups.Subtree(self.id)
        self.dir = records.host_dir(settings.state_dir, self.id)
        self._destroyed = False

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
        archive = image_archive(s)
        if not os.path.exists(archive):
            raise LabHostError(f"the busybox image archive {archive} is missing",
                               "Run `labnb image build` (scripts/setup.sh does it)")
        try:
            self.slot = records.reserve_slot(s.state_dir, self.id, s.max_lab_hosts, lambda n: s.uid_base + n * RANGE)
        except RuntimeError as e:
            raise LabHostError(f"cannot make another lab host: {e}",
                               "Destroy idle lab hosts (`labnb lab-hosts gc`) or raise LABNB_MAX_LAB_HOSTS") from None
        os.mkdir(self.dir, 0o700)
        data = os.path.join(self.dir, "docker")
        os.mkdir(data, 0o700)
        for d in (self.dir, data):
            os.chown(d, self.uid, self.uid)
        self._record()
        try:
            self.subtree.create(self.uid, self.uid, cgroups.Limits(
                s.memory_mb * 1024 * 1024, s.pids, s.cpu_weight))
        except (cgroups.CgroupError, OSError) as e:
            raise LabHostError(f"cannot give lab host {self.id} a cgroup subtree: {e}",
                               "Run `labnb doctor` to see what the host lacks") from None
        lib = lib_dir(s)
        ids = f"{self.uid},0,{RANGE}"
        argv = ["sh", "-c", 'read -r _ && exec "$@"', "labnb-start", *UNSHARE,
                f"--map-users={ids}", f"--map-groups={ids}", "--setuid=0", "--setgid=0", "--",
                "tini", "--", "sh", os.path.join(lib, "init.sh"),
                s.hostname, data, self.subtree.docker_parent, s.address, lib, str(s.disk_mb), self.seed or ""]
        log = open(os.path.join(self.dir, "init.log"), "wb")
        try:
            self.starter = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd="/",
                env={"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root"},
                start_new_session=True, close_fds=True)
        finally:
            log.close()
        pid = self.starter.pid
        # Into the subtree before exec'ing unshare, so that all it starts inherits it.
        for procs in self.subtree.procs_files():
            with open(procs, "w") as f:
                f.write(str(pid))
        self.starter.stdin.write(b"go\n")
        self.starter.stdin.close()
        self._poll(lambda: self._child_of(pid), "the lab host's PID 1 to start")
        self.pid = self._child_of(pid)
        self.pid_start = _start_time(self.pid)
        self._record()

    def _poll(self, predicate, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
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
                raise LabHostError(f"lab host {self.id}: timed out waiting for {what}")
            time.sleep(0.001)

    @staticmethod
    def _child_of(pid: int) -> int | None:
        """The child of ``unshare`` that is PID 1 of the new pid namespace.

        Its other child, briefly, runs newuidmap in the server's pid namespace.
        """
        own = os.stat("/proc/self/ns/pid").st_ino
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                if os.stat(f"/proc/{child}/ns/pid").st_ino != own:
                    return int(child)
        return None

    def _record(self) -> None:
        records.write(self.settings.state_dir, {
            "id": self.id, "kind": self.kind, "slot": self.slot, "pid": self.pid,
            "pid_start": self.pid_start, "created": self.created,
            "owner": os.getpid(), "owner_start": _start_time(os.getpid())})

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "init.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace").strip() or "(no output)"
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout: float | None = None) -> None:
        timeout = timeout or self.settings.ready_timeout
        deadline = time.monotonic() + timeout
        sock = self._socket_path()
        ready = f"/proc/{self.pid}/root/run/labnb/ready"   # init.sh is done
        while not (os.path.exists(ready) and self._ping(sock)):
            if self.starter and self.starter.poll() is not None or not self.alive():
                raise LabHostError(f"lab host {self.id} died while starting: {self._log_tail()}",
                                   "Run `labnb doctor`; the lab host's log is above")
            if time.monotonic() > deadline:
                raise LabHostError(f"lab host {self.id}: dockerd did not answer within {timeout:.0f} s: "
                                   f"{self._dockerd_log()}", "Check `labnb doctor` and the machine's load")
            time.sleep(0.005)
        if os.path.exists(f"/proc/{self.pid}/root/run/labnb/seeded"):
            return   # init.sh unpacked the seeded image store: busybox is there
        client = self.docker()
        try:
            with open(image_archive(self.settings), "rb") as f:
                client.api.load_image(f.read())
        finally:
            client.close()

    def _socket_path(self) -> str:
        return f"/proc/{self.pid}/root/run/docker.sock"

    @staticmethod
    def _ping(path: str) -> bool:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(2)
            s.connect(path)
        except OSError:
            return False
        try:
            conn = http.client.HTTPConnection("lab-host")
            conn.sock = s
            conn.request("GET", "/_ping")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            s.close()

    def _dockerd_log(self) -> str:
        try:
            with open(f"/proc/{self.pid}/root/run/labnb/dockerd.log", "rb") as f:
                return f.read()[-1500:].decode(errors="replace").strip() or "(empty dockerd log)"
        except OSError as e:
            return f"(dockerd log unreadable: {e.strerror})"

    def alive(self) -> bool:
        return not self._destroyed and records.process_alive(self.pid, self.pid_start)

    def command_argv(self, argv: list[str]) -> list[str]:
        """Join the lab host's cgroup (so its limits hold), then enter its namespaces.

        The tiny shell writes its own pid into ``lab/init`` in every hierarchy
        before exec'ing nsenter, so the command and all it forks are counted
        against the lab host, never against the server.
        """
        if self.pid is None:
            raise LabHostError(f"lab host {self.id} is not started")
        join = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
        return ["sh", "-c", join, "labnb-join", *self.subtree.procs_files(), "--",
                "nsenter", "-t", str(self.pid), "-U", "-n", "-m", "-u", "-i", "-p", "--",
                "env", "--chdir=/root", *argv]

    def command_env(self) -> dict[str, str]:
        return {"PATH": PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash",
                "TERM": "xterm-256color", "LANG": "C.UTF-8", "INPUTRC": "/run/labnb/inputrc"}

    def shell_rc(self) -> str:
        return "/run/labnb/bashrc"

    def docker_url(self) -> str:
        return "unix://" + self._socket_path()

    def netns_path(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def health(self) -> Health:
        if not self.alive():
            return Health(False, f"lab host {self.id} is gone: its PID 1 ({self.pid}) has exited")
        if not self._ping(self._socket_path()):
            return Health(False, f"lab host {self.id} runs, but its dockerd does not answer "
                                 "(restart it with `restart-docker` in the lab host, or reset the lab host)")
        return Health(True, "ready")

    def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        teardown(self.settings, self.id, self.pid, self.slot)
        if self.starter:
            self.starter.wait()


def teardown(settings: Settings, lab_host_id: str, pid: int | None, slot: int | None) -> None:
    """Remove a lab host completely: processes, cgroups, files, slot.

    Killing PID 1 of the pid namespace kills everything in it (killing the
    ``unshare`` above it would not); mounts, veths and netns names go with
    the namespaces once no process holds them. Used by destroy and the reaper.
    """
    subtree = cgroups.Subtree(lab_host_id)
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        # let ``unshare`` reap its child before anything kills ``unshare`` too:
        # else PID 1 is left a zombie for the machine's init to reap
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.005)
    try:
        subtree.kill_all()
        subtree.remove()
    except cgroups.CgroupError as e:
        raise LabHostError(f"lab host {lab_host_id} could not be removed completely: {e}",
                           "Run `labnb lab-hosts gc` again; see `labnb doctor`") from None
    shutil.rmtree(records.host_dir(settings.state_dir, lab_host_id), ignore_errors=True)
    if slot is not None:
        records.release_slot(settings.state_dir, slot, settings.uid_base + slot * RANGE)


def _start_time(pid: int | None) -> int | None:
    try:
        return records.process_start_time(pid) if pid else None
    except OSError:
        return None
