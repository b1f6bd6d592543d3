"""Runs inside a lab host: make as many cgroups as the kernel lets it, where each takes a machine-wide id.

    python3 - CEILING

Every cgroup of the memory controller takes one of the machine's 65,535
memory cgroup ids. The targets are the cgroup2 trees the lab host sees (the
memory controller's on v2) and, on v1, the memory hierarchy: the one mounted
in the lab host, or else one it mounts itself, as any root in a user
namespace may (at its cgroup namespace's root). In each it makes cgroups
side by side (up to CEILING), then a chain of nested ones, removes them all
and prints one line ``HOG {json}``: for each target, whether it has the
memory controller, how many it made, how deep it went and the errno that
stopped each.
"""
import errno
import json
import os
import subprocess
import sys

CEILING = int(sys.argv[1])
OWN = "/tmp/labnb-memory-cgroup"


def mounts():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            fstype, _src, opts = right.split()[:3]
            yield fstype, left.split()[4], opts.split(",")


def targets():
    found = {point: fstype for fstype, point, opts in mounts()
             if fstype == "cgroup2" or (fstype == "cgroup" and "memory" in opts)}
    if not any(fstype == "cgroup2" and point == "/sys/fs/cgroup" for fstype, point, _ in mounts()) \
            and "cgroup" not in found.values():
        os.makedirs(OWN, exist_ok=True)
        mounted = subprocess.run(["mount", "-t", "cgroup", "-o", "memory", "none", OWN],
                                 capture_output=True, text=True)
        found[OWN] = "cgroup" if mounted.returncode == 0 else f"unmountable: {mounted.stderr.strip()}"
    return found


def hog(top):
    made, stopped_by = [], "ceiling"
    while len(made) < CEILING:
        d = os.path.join(top, f"labnb-hog-{len(made)}")
        try:
            os.mkdir(d)
        except OSError as e:
            stopped_by = errno.errorcode.get(e.errno, str(e.errno))
            break
        made.append(d)
    for d in made:
        os.rmdir(d)
    chain, deep_stop = top, "ceiling"
    while chain.count("/labnb-deep") < 64:
        try:
            os.mkdir(os.path.join(chain, "labnb-deep"))
        except OSError as e:
            deep_stop = errno.errorcode.get(e.errno, str(e.errno))
            break
        chain = os.path.join(chain, "labnb-deep")
    depth = chain.count("/labnb-deep")
    while chain != top:
        os.rmdir(chain)
        chain = os.path.dirname(chain)
    return {"made": len(made), "stopped_by": stopped_by, "depth": depth, "depth_stopped_by": deep_stop}


def has_memory(point, fstype):
    if fstype == "cgroup":
        return True
    try:
        with open(os.path.join(point, "cgroup.controllers")) as f:
            return "memory" in f.read().split()
    except OSError:
        return False


report = {}
for point, fstype in targets().items():
    report[point] = {"fstype": fstype, "memory": has_memory(point, fstype),
                     **(hog(point) if fstype in ("cgroup", "cgroup2") else {})}
if report.get(OWN, {}).get("fstype") == "cgroup":
    subprocess.run(["umount", OWN])
print("HOG " + json.dumps(report), flush=True)
