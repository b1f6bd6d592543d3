"""Runs inside a lab host: freeze the cgroup this process is in (and so itself).

cgroup v1: writes FROZEN to freezer.state of its freezer cgroup; v2:
1 to cgroup.freeze. The dir is found from /proc/self/cgroup and the cgroup
mounts in /proc/self/mountinfo. If its own cgroup refuses, it tries the
ancestors it can see. Prints ``FREEZING <file>`` before the write (which
freezes the writer), ``REFUSED ...`` and exits 1 if no write was allowed.
"""
import os
import sys

mounts = []   # (fstype, root, mount point, super options)
with open("/proc/self/mountinfo") as f:
    for line in f:
        left, _, right = line.rstrip("\n").partition(" - ")
        fields = left.split()
        fstype, _src, opts = right.split()[:3]
        if fstype in ("cgroup", "cgroup2"):
            mounts.append((fstype, fields[3], fields[4], opts.split(",")))
targets = []
with open("/proc/self/cgroup") as f:
    lines = [line.rstrip("\n").split(":", 2) for line in f]
v1 = [(ctrls, path) for _hid, ctrls, path in lines if "freezer" in ctrls.split(",")]
if v1:
    path = v1[0][1]
    for fstype, root, point, opts in mounts:
        if fstype == "cgroup" and "freezer" in opts and (path + "/").startswith(root.rstrip("/") + "/"):
            rel = path[len(root.rstrip("/")):]
            targets = [(os.path.join(point, rel.lstrip("/")), "freezer.state", "FROZEN")]
            break
else:
    path = next(p for hid, _c, p in lines if hid == "0")
    for fstype, root, point, opts in mounts:
        if fstype == "cgroup2" and (path + "/").startswith(root.rstrip("/") + "/"):
            rel = path[len(root.rstrip("/")):]
            targets = [(os.path.join(point, rel.lstrip("/")), "cgroup.freeze", "1")]
            break
if not targets:
    print("REFUSED no freezer cgroup found", lines, mounts, flush=True)
    sys.exit(1)
d, name, value = targets[0]
errors = []
while True:
    target = os.path.join(d, name)
    try:
        fd = os.open(target, os.O_WRONLY)
    except OSError as e:
        errors.append(f"{target}: {e.strerror}")
        parent = os.path.dirname(d)
        if parent == d or not os.path.exists(os.path.join(parent, name)):
            break
        d = parent
        continue
    print("FREEZING " + target, flush=True)
    os.write(fd, value.encode())
    print("STILL-RUNNING " + target, flush=True)   # v1 freezes the writer on its way back to user space
    sys.exit(0)
print("REFUSED " + "; ".join(errors), flush=True)
sys.exit(1)
