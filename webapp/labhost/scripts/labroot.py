"""Build a new lab host's root, in two halves, then exec the next program.

    labroot.py build ROOT DATA UID DISK_MB TMPFS_MB PTS_FD PIDS -- COMMAND...
    labroot.py userns UID PIDS -- COMMAND...
    labroot.py finish ROOT DATA SCRIPTS CGROUPS SEED -- COMMAND...

``build`` runs as the machine's root, in a mount namespace of its own,
*before* the lab host's user namespace exists: every mount it makes is locked
once the user namespace copies that mount namespace. The binds of the
machine's /usr, /etc, /lib* stay read-only, nosuid and nodev; the lab host's
root cannot remount, unmount or grow the tmpfs mounts, whose superblocks
belong to the machine's root, so their sizes are real bounds. It then
becomes the lab host's root in a user namespace of its own (``userns`` alone
does only this: ``labnb doctor`` tries it), where COMMAND makes the other
namespaces.

``finish`` runs as PID 1 of the new namespaces, as the lab host's root, before
any other process of it exists: its own /proc, /sys and cgroup tree, the
seeded image store, ``pivot_root``, then ``confine.py``'s confinement, and
exec tini. Mount system calls made here, not a ``mount`` process each: a lab
host's start waits for all of this before its dockerd can start.

Standard library only, run by the machine's python3 (``-I -S``).
"""
import ctypes
import os
import resource
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import confine  # noqa: E402

RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC = 1, 2, 4, 8, 32, 4096, 16384
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155 if os.uname().machine == "x86_64" else 41
SYS_MOVE_MOUNT, MOVE_MOUNT_F_EMPTY_PATH, AT_FDCWD = 429, 4, -100
CLONE_NEWUSER, PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP = 0x10000000, 28, 1 << 2
RANGE = 65536   # ids a lab host maps: root inside is the first
# What the kernel counts per user and bounds by rlimits is charged, level by
# level, to each user namespace's creator, up to the creator's rlimits when it
# made it (kernel/ucount.c): these are a lab host's own, for all its uids
# together, and each of its processes' too. Linux's own defaults for a user:
MSGQUEUE = 819200   # bytes of POSIX message queues (MQ_BYTES_MAX)
MEMLOCK = 8 << 20   # SHM_LOCK and mlock (MLOCK_LIMIT since 5.16)
LIBC = ctypes.CDLL(None, use_errno=True)
PROGRAMS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def mount(source, target, fstype=None, flags=0, data=None):
    enc = (lambda s: s.encode() if s is not None else None)
    if LIBC.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or source} on {target}: {os.strerror(err)}")


def build(root, data, uid, disk_mb, tmpfs_mb, pts_fd):
    own = f"uid={uid},gid={uid}"

    def tmpfs(size, mode, path, flags=NOSUID | NODEV):
        mount("tmpfs", path, "tmpfs", flags, f"size={size},mode={mode},{own}")

    tmpfs("16m", "755", root)
    for d in PROGRAMS:
        src, dst = "/" + d, os.path.join(root, d)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            os.mkdir(dst)
            mount(src, dst, None, BIND)
            mount(None, dst, None, BIND | REMOUNT | RDONLY | NOSUID | NODEV)
    for d in ("proc", "sys", "run", "root", "tmp", "home", "mnt", "var/tmp", "var/lib", "var/log", "dev",
              "oldroot", data.lstrip("/")):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.symlink("/run", os.path.join(root, "var/run"))
    os.symlink("/run/lock", os.path.join(root, "var/lock"))
    # HOME, /run (netns names, the docker socket), the world-writable dirs,
    # /etc/docker (daemon.json) and dockerd's data: the lab host's own, in
    # memory, each bounded ("no space left" in this lab host only)
    for mode, path in (("755", "run"), ("700", "root"), ("1777", "tmp"), ("1777", "var/tmp")):
        tmpfs(f"{tmpfs_mb}m", mode, os.path.join(root, path))
    tmpfs("1m", "755", os.path.join(root, "etc/docker"))
    tmpfs(f"{disk_mb}m", "700", root + data)
    own_names(root, int(uid))
    # A /dev of its own: the harmless devices of the machine, and a devpts
    # instance of its own (made by the server: ``devpts.py``), so its PTYs
    # count against its own cap, not the machine's.
    dev = os.path.join(root, "dev")
    tmpfs("64k", "755", dev, NOSUID)
    for name in DEVICES:
        open(os.path.join(dev, name), "w").close()
        mount("/dev/" + name, os.path.join(dev, name), None, BIND)
    for d in ("pts", "shm", "mqueue"):
        os.mkdir(os.path.join(dev, d))
    pts = os.path.join(dev, "pts")
    if LIBC.syscall(SYS_MOVE_MOUNT, int(pts_fd), b"", AT_FDCWD, pts.encode(), MOVE_MOUNT_F_EMPTY_PATH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"move_mount devpts on {pts}: {os.strerror(err)}")
    os.close(int(pts_fd))
    for name, target in (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, name))
    tmpfs(f"{tmpfs_mb}m", "1777", os.path.join(dev, "shm"))


def own_names(root, uid):
    """/etc/hosts and /etc/hostname of the lab host's own, writable by its root (its hostname, the hosts of
    its set by name: labnet.py), not the machine's: files in its /run bound over the read-only /etc's, so
    locked there (a learner may write them, not unmount them). Where the machine has no such file there is
    nothing to bind over: the read-only /etc has no room for a new one."""
    own = os.path.join(root, "run/names")
    os.mkdir(own, 0o755)
    for name, text in (("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
                       ("hostname", "localhost\n")):
        path, target = os.path.join(own, name), os.path.join(root, "etc", name)
        with open(path, "w") as f:
            f.write(text)
        os.chown(path, uid, uid)
        if os.path.isfile(target):
            mount(path, target, None, BIND)
            mount(None, target, None, BIND | REMOUNT | NOSUID | NODEV | NOEXEC)
    os.chown(own, uid, uid)


def user_namespace(uid, pids):
    """Become root of a new user namespace that the lab host's first uid
    creates, so owns: what the kernel counts per user (namespaces, inotify,
    message queues, pending signals, locked memory, processes) is charged to
    that uid, the lab host's own, never to the machine's root whom every lab
    host and the machine share.

    A child, still root where this process was (the machine's root, the
    first time), writes the maps (root inside is ``uid`` there, for RANGE
    ids), as that root may for any user namespace made below it; it never
    enters one. This process keeps its capabilities across the change of ids
    (SECBIT_NO_SETUID_FIXUP) only until the user namespace exists, which
    takes them all outside it and clears the securebits: so that a machine
    that refuses user namespaces to unprivileged users (Debian's
    ``kernel.unprivileged_userns_clone``, Ubuntu's AppArmor) still lets it.
    Processes are bounded by the pids cgroup too; pending signals as many,
    as Linux gives a user as many as processes.
    """
    for limit, most in ((resource.RLIMIT_NPROC, pids), (resource.RLIMIT_SIGPENDING, pids),
                        (resource.RLIMIT_MSGQUEUE, MSGQUEUE), (resource.RLIMIT_MEMLOCK, MEMLOCK)):
        hard = resource.getrlimit(limit)[1]
        most = most if hard == resource.RLIM_INFINITY else min(most, hard)
        resource.setrlimit(limit, (most, most))
    proc = os.open(f"/proc/{os.getpid()}", os.O_RDONLY | os.O_DIRECTORY)   # this process, never a reused pid
    ready_r, ready_w = os.pipe()
    writer = os.fork()
    if writer == 0:
        os.close(ready_w)
        try:
            if os.read(ready_r, 1) == b"1":
                for name in ("uid_map", "gid_map"):
                    fd = os.open(name, os.O_WRONLY, dir_fd=proc)
                    try:
                        os.write(fd, f"0 {uid} {RANGE}\n".encode())
                    finally:
                        os.close(fd)
                os._exit(0)
        except OSError as e:
            print(f"labroot: cannot map the lab host's ids: {e}", file=sys.stderr)
        os._exit(1)
    os.close(ready_r)
    os.close(proc)
    try:
        if LIBC.prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "keep the capabilities across setresuid")
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if LIBC.unshare(CLONE_NEWUSER) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"a user namespace as uid {uid}: {os.strerror(err)}")
        os.write(ready_w, b"1")
    finally:
        os.close(ready_w)
        _, status = os.waitpid(writer, 0)
    if status != 0:
        raise OSError(f"the ids of uid {uid}'s user namespace were not mapped")


def finish(root, data, scripts, cgroups, seed):
    """Returns whether the seeded image store was unpacked."""
    labnb = os.path.join(root, "run/labnb")
    os.makedirs(os.path.join(root, "run/netns"))
    os.makedirs(os.path.join(labnb, "bin"))
    for name in ("start-docker", "restart-docker"):
        shutil.copy(os.path.join(scripts, name), os.path.join(labnb, "bin"))
    for name in ("init.sh", "inputrc", "bashrc", "spawner.py"):
        shutil.copy(os.path.join(scripts, name), labnb)
    # pivot_root refuses a locked mount as the new root: a bind of it made
    # here is not locked itself, and keeps every mount below it locked.
    mount(root, root, None, BIND | REC)
    # Its own /proc (its pid namespace) and /sys (its network namespace, so
    # brctl and /sys/class/net show its devices); a second view of the same
    # sysfs that `ip netns exec` does not unmount: the kernel lets a user
    # namespace mount a sysfs (the netns's own) only while one is visible.
    mount("proc", os.path.join(root, "proc"), "proc", NOSUID | NODEV | NOEXEC)
    mount("sysfs", os.path.join(root, "sys"), "sysfs", NOSUID | NODEV | NOEXEC)
    os.mkdir(os.path.join(labnb, "sysfs"))
    mount("sysfs", os.path.join(labnb, "sysfs"), "sysfs", NOSUID | NODEV | NOEXEC)
    mount_cgroups(os.path.join(root, "sys/fs/cgroup"), cgroups)
    seeded = False
    if seed and os.access(seed, os.R_OK):
        # milliseconds, where `docker load` takes a fifth of a second
        seeded = subprocess.run(["tar", "-C", root + data, "-xf", seed]).returncode == 0
        if not seeded:
            print(f"labroot: the seed {seed} is unusable; the image will be loaded", file=sys.stderr)
    # dockerd runs some 70 iptables commands as it starts; the legacy backend
    # answers each a third faster than nft. dockerd and the learner both find
    # `iptables` here first, so they see the same rules.
    if subprocess.run(["iptables-legacy", "-w", "-t", "nat", "-n", "-L"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode == 0:
        for tool in ("iptables", "iptables-save", "iptables-restore"):
            os.symlink("/usr/sbin/xtables-legacy-multi", os.path.join(labnb, "bin", tool))
    os.chdir(root)
    if LIBC.syscall(SYS_PIVOT_ROOT, b".", b"oldroot") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root")
    os.chdir("/")
    if LIBC.umount2(b"/oldroot", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "umount /oldroot")
    os.rmdir("/oldroot")
    return seeded


def mount_cgroups(cg, specs):
    """The machine's hierarchies ("DIR:TYPE:OPTIONS", DIR "" on v2), mounted in the
    lab host's cgroup namespace, whose root is its delegated `lab`: other lab
    hosts' cgroups are not there. Its processes go to lab/init; containers to
    lab/docker (dockerd's --cgroup-parent)."""
    dirs = []
    for spec in specs.split():
        d, fstype, opts = spec.split(":", 2)
        if not d:
            mount("cgroup2", cg, "cgroup2", NOSUID | NODEV | NOEXEC)
        else:
            if not dirs:
                mount("tmpfs", cg, "tmpfs", NOSUID | NODEV | NOEXEC, "mode=755,size=64k")
            os.mkdir(os.path.join(cg, d))
            mount("cgroup", os.path.join(cg, d), fstype, NOSUID | NODEV | NOEXEC, opts or None)
        dirs.append(os.path.join(cg, d) if d else cg)
    for d in dirs:
        with open(os.path.join(d, "init", "cgroup.procs"), "w") as f:
            f.write("0")   # this process: PID 1, soon tini
    v2 = os.path.join(cg, "cgroup.subtree_control")
    if os.path.exists(v2):
        # controllers for lab/docker, once the server has moved the starter (a
        # process of the machine's) out of `lab`: a cgroup with processes of
        # its own cannot hand controllers down
        with open(os.path.join(cg, "cgroup.controllers")) as f:
            want = " ".join("+" + c for c in f.read().split())
        deadline = time.monotonic() + 5
        while True:
            try:
                with open(v2, "w") as f:
                    f.write(want)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.002)


def main():
    what, args = sys.argv[1], sys.argv[2:]
    split = args.index("--")
    args, command = args[:split], args[split + 1:]
    try:
        if what == "build":
            build(*args[:6])
            user_namespace(int(args[2]), int(args[6]))
            confine.bound_namespaces()
            user_namespace(0, int(args[6]))   # the lab host's own, inside the one that bounds it
        elif what == "userns":
            user_namespace(int(args[0]), int(args[1]))
        else:
            if finish(*args):
                command.append("--seeded")
            confine.confine()
    except OSError as e:
        sys.exit(f"labroot {what}: {e}")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
