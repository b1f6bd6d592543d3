"""``labnb doctor``: can this machine make lab hosts? Each problem comes with what to do."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile

from ..config import Settings
from ..guard.limits import lab_hosts_that_fit, mem_total_mb
from ..labhost import cgroups, image, inside, ptyguard, records, subids
from ..labhost.statedir import SCRIPTS, image_archive

BINARIES = {
    "dockerd": "docker.io", "docker": "docker-cli (docker.io before Debian 13)", "tini": "tini", "unshare": "util-linux",
    "setsid": "util-linux", "mountpoint": "util-linux",
    "ip": "iproute2", "iptables": "iptables", "brctl": "bridge-utils", "ping": "iputils-ping",
    "busybox": "busybox-static", "bash": "bash", "cat": "coreutils", "tar": "tar",
    "/usr/bin/python3": "python3",   # the spawner and confine.py run on the machine's python3 inside a lab host
}


@dataclasses.dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    todo: str = ""
    warn: bool = False   # works, but weaker than it should be: said with its todo, not a failure


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


def check_root() -> Finding:
    ok = os.geteuid() == 0
    return Finding("root", ok, "running as root" if ok else f"running as uid {os.geteuid()}",
                   "" if ok else "Run labnb as root (sudo), or LABNB_BACKEND=plain on a disposable VM")


def check_binaries() -> Finding:
    missing = sorted({pkg for b, pkg in BINARIES.items() if shutil.which(b) is None})
    return Finding("binaries", not missing, "all found" if not missing else "missing packages: " + ", ".join(missing),
                   "" if not missing else "apt-get install -y " + " ".join(missing))


def check_confinement() -> Finding:
    """The seccomp filter loads (libseccomp2) and openat2 resolves inside a root (Linux >= 5.6)."""
    r = _run(["/usr/bin/python3", "-I", "-S", os.path.join(SCRIPTS, "confine.py"), "true"])
    if r.returncode != 0:
        return Finding("confinement", False, f"confine.py failed: {r.stderr.strip()[-300:]}",
                       "apt-get install -y libseccomp2 (lab hosts run under its seccomp filter)")
    try:
        os.close(inside.open_in(os.getpid(), "/", inside.O_PATH, owner=0))
    except OSError as e:
        return Finding("confinement", False, f"openat2 with RESOLVE_IN_ROOT: {e.strerror}",
                       "Needs Linux >= 5.6: the server opens lab host files with it; upgrade the kernel")
    return Finding("confinement", True, "seccomp filter and openat2 work")


def check_userns() -> Finding:
    r = _run(["unshare", "--user", "--map-root-user", "true"])
    ok = r.returncode == 0
    return Finding("user namespaces", ok, "can be made" if ok else r.stderr.strip(),
                   "" if ok else "Enable user namespaces: sysctl -w user.max_user_namespaces=15000 "
                                 "(and kernel.unprivileged_userns_clone=1 where it exists)")


def check_overlay_in_userns() -> Finding:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        for sub in ("l", "u", "w", "m"):
            os.mkdir(os.path.join(d, sub))
        r = _run(["unshare", "--user", "--map-root-user", "--mount", "mount", "-t", "overlay", "overlay",
                  "-o", f"lowerdir={d}/l,upperdir={d}/u,workdir={d}/w", f"{d}/m"])
    ok = r.returncode == 0
    return Finding("overlay in a user namespace", ok, "works" if ok else r.stderr.strip(),
                   "" if ok else "Needs Linux >= 5.11 for dockerd's overlay2 storage in a lab host; upgrade the kernel")


def check_subids(settings: Settings) -> Finding:
    """Lab hosts map their ids without /etc/subuid (the machine's root writes the maps), but root's entry
    there keeps other tools (useradd, rootless containers) from giving another user ids of a lab host's
    range, and says how many ranges lab hosts may use (``records.machine_ranges``): a lab host past them
    is refused. As many as the memory allows lab hosts, or more."""
    fits = lab_hosts_that_fit(settings, mem_total_mb())
    said, missing, ranges = [], [], None
    for path in subids.FILES:
        n, source = records.machine_ranges(settings.uid_base, path)
        said.append(source if path == subids.FILES[0] else f"{path} gives {n}")
        ranges = n if ranges is None else min(ranges, n)
        if "no entry of root's" in source:
            missing.append(path)
    detail = (f"{ranges} uid ranges for lab hosts ({'; '.join(said)}); the memory allows {fits} lab hosts of "
              f"{settings.memory_mb} MiB (LABNB_MEMORY_MB)")
    todo = ("Run `labnb lab-hosts ranges --write` (scripts/setup.sh does): root gets as many ranges as this "
            "machine's memory holds, in /etc/subuid and /etc/subgid")
    if ranges < fits:
        return Finding("subordinate ids", True, f"{detail}: fewer ranges than lab hosts, so a lab host past "
                       f"{ranges} is refused", todo, warn=True)
    if missing:
        return Finding("subordinate ids", True, f"{detail}; but no entry of root's holds LABNB_UID_BASE in "
                       f"{' and '.join(missing)}: useradd may give another user's containers ids of a lab host's "
                       f"range", todo, warn=True)
    return Finding("subordinate ids", True, detail)


def check_cgroups(settings: Settings) -> Finding:
    try:
        version = cgroups.version()
        points = cgroups.hierarchies()
    except cgroups.CgroupError as e:
        return Finding("cgroups", False, str(e), "Mount cgroups under /sys/fs/cgroup")
    if version == 1:
        missing = [c for c in ("memory", "pids", "cpu", "cpuset")
                   if not any(c in key.split(",") for key in points)]
        ok = not missing
        return Finding("cgroups", ok, "v1, delegation by chown" if ok else "v1 without " + ", ".join(missing),
                       "" if ok else "Enable the missing cgroup v1 controllers (kernel config / boot options)")
    above = cgroups.parent()
    where = os.path.join(cgroups.ROOT, above)
    available = set(open(os.path.join(where, "cgroup.controllers")).read().split())
    missing = [c for c in cgroups.V2_CONTROLLERS if c not in available]
    writable = os.access(os.path.join(where, "cgroup.subtree_control"), os.W_OK)
    ok = not missing and writable
    if not ok:
        return Finding("cgroups", False, f"v2 without the controllers {', '.join(missing)} at {where}" if missing
                       else f"v2, but {where}/cgroup.subtree_control is not writable",
                       "Run labnb as its systemd service (`labnb service install`: Delegate=yes), "
                       "or from a cgroup whose controllers you may enable")
    disks = cgroups.disks(settings.state_dir)
    io = ("; io not limited (LABNB_IO_MBPS and LABNB_IO_IOPS are 0)" if not (settings.io_mbps or settings.io_iops)
          else f"; io limits on disk {', '.join(disks)}" if "io" in available and disks
          else "; no io limits (no io controller)" if disks else "; no io limits (no disk under /usr, /etc, state dir)")
    if above:
        return Finding("cgroups", True, f"v2, delegated by systemd: lab hosts go below /{above}{io}")
    own = cgroups.own_cgroup()
    systemd = os.path.isdir("/run/systemd/system")
    return Finding("cgroups", True,
                   f"v2, not delegated: lab hosts go below {cgroups.ROOT}/{cgroups.TOP}, beside systemd's own "
                   f"tree (this process is in /{own}){io}" if systemd else f"v2, lab hosts go below the root{io}",
                   "Run labnb as its systemd service (`labnb service install`, Delegate=yes) so systemd "
                   "knows labnb manages that subtree, or under `systemd-run --scope -p Delegate=yes`"
                   if systemd else "", warn=systemd)


def check_delegation(settings: Settings) -> Finding:
    """Make a throwaway subtree as for a lab host and create a cgroup in it as the
    mapped root of a new user namespace, made as a lab host's is (owned by the
    first uid of its range: ``labroot.py userns``), as a lab host's dockerd will."""
    subtree = cgroups.Subtree(f"doctor-{os.getpid()}")
    uid = settings.uid_base
    try:
        subtree.create(uid, uid, cgroups.Limits(256 << 20, 64, 100))
        probes = " ".join(os.path.join(point, subtree.rel, "lab", "probe")
                          for key, point in subtree.points.items() if cgroups.delegates(key))
        r = _run(["/usr/bin/python3", "-I", "-S", "-B", os.path.join(SCRIPTS, "labroot.py"), "userns", str(uid),
                  str(settings.pids), "--", "sh", "-c", f"mkdir {probes}"])   # -B: no __pycache__ among the scripts
        ok, detail = r.returncode == 0, r.stderr.strip()
    except (cgroups.CgroupError, OSError) as e:
        ok, detail = False, str(e)
    finally:
        try:
            subtree.remove()
        except cgroups.CgroupError:
            pass
    if "labroot userns:" in detail:
        return Finding("cgroup delegation", False, detail,
                       f"Lab hosts cannot be made: the machine refused a user namespace made by uid {uid}; check "
                       "`sysctl user.max_user_namespaces` and the machine's LSM policy (SELinux, AppArmor)")
    return Finding("cgroup delegation", ok, "a lab host's root can manage its own subtree" if ok else detail,
                   "" if ok else "Lab hosts could not run containers: see the cgroups line, and "
                                 "docs/lab-hosts.md on delegation")


def check_pty_guard(settings: Settings) -> Finding:
    """The BPF LSM bound on PTYs loads (it does on Debian's kernels); with ``auto`` its absence is a warning."""
    if settings.pty_guard == "off":
        return Finding("PTY guard", True, "off (LABNB_PTY_GUARD=off): a lab host may hold PTYs without bound "
                                          "from devpts instances it mounts itself")
    try:
        ptyguard.for_settings(settings.uid_base, settings.max_lab_hosts, settings.ptys)
    except ptyguard.GuardError as e:
        required = settings.pty_guard == "on"
        return Finding("PTY guard", not required,
                       f"{e}{'' if required else '; lab hosts run without it (LABNB_PTY_GUARD=auto)'}",
                       "Run labnb as root on a kernel with `bpf` in its LSM list (Debian's have it) that allows "
                       "BPF LSM programs; without the guard a lab host can drain the PTYs that containers "
                       "share (docs/security.md)", warn=not required)
    detail = f"BPF LSM: at most {settings.ptys} PTY files per lab host, from any devpts"
    pty_max, reserve = (int(open(f"/proc/sys/kernel/pty/{n}").read()) for n in ("max", "reserve"))
    need = settings.max_lab_hosts * settings.ptys
    if os.stat("/proc/self/ns/mnt").st_ino != os.stat("/proc/1/ns/mnt").st_ino:
        return Finding("PTY guard", True, detail + "; but labnb runs outside the machine's mount namespace, so "
                       "lab hosts' own devpts cannot use kernel.pty.reserve",
                       "Run labnb without a mount namespace of its own (no PrivateTmp=, ProtectSystem=)", warn=True)
    if need > pty_max - reserve:
        return Finding("PTY guard", True, detail + f"; {settings.max_lab_hosts} lab hosts may hold {need} PTYs, "
                       f"more than the {pty_max - reserve} kernel.pty.max leaves them",
                       f"sysctl -w kernel.pty.max={need + reserve} (a PTY costs its lab host's memory, "
                       "about 3 KB), or lower LABNB_MAX_LAB_HOSTS or LABNB_PTYS", warn=True)
    return Finding("PTY guard", True, detail)


def check_image(settings: Settings) -> Finding:
    path = image_archive(settings)
    ok = image.image_id(path) is not None
    return Finding("busybox image", ok, path if ok else f"{path} is missing or unreadable",
                   "" if ok else "Run `labnb image build` (`labnb serve` also makes it as it starts)")


def run_all(settings: Settings) -> list[Finding]:
    findings = [check_root(), check_binaries()]
    if findings[0].ok and findings[1].ok:
        findings += [check_confinement(), check_pty_guard(settings), check_userns(), check_overlay_in_userns(),
                     check_subids(settings), check_cgroups(settings)]
        if all(f.ok for f in findings):
            findings.append(check_delegation(settings))
    findings.append(check_image(settings))
    return findings
