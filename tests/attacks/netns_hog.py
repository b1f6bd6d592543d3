"""Runs inside a lab host: hold as many network namespaces as the kernel lets it, under many uids.

    python3 - CEILING UIDS

Each network namespace may hold conntrack entries, fragments and the like in
kernel memory that no memory cgroup is charged for. The kernel counts
namespaces per uid of each user namespace, up to that user namespace's
``user.max_net_namespaces``, which its root may raise: so the hog first sets
its own to the most, then, as each of UIDS uids in turn (0 and others of the
lab host's, keeping its capabilities), makes namespaces until the kernel
refuses one, holding each by a descriptor. It prints one line
``HOG {"held": N, "by_uid": {...}, "stopped_by": ERRNO or "ceiling"}`` and
lets them all go.
"""
import ctypes
import errno
import json
import os
import sys

CLONE_NEWNET, PR_SET_KEEPCAPS = 0x40000000, 8
libc = ctypes.CDLL(None, use_errno=True)


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def become(uid):
    """This uid, with the capabilities root had (effective again after the change of ids)."""
    if libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_KEEPCAPS")
    os.setresuid(uid, uid, uid)
    header, data = CapHeader(0x20080522, 0), (CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    for half in data:
        half.effective = half.permitted
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def hold(ceiling, report):
    """Make namespaces until refused; report how many and why it stopped; keep them until told."""
    held, stopped_by = [], "ceiling"
    while len(held) < ceiling:
        if libc.unshare(CLONE_NEWNET) != 0:
            stopped_by = errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
            break
        held.append(os.open("/proc/self/ns/net", os.O_RDONLY))
    os.write(report, json.dumps([len(held), stopped_by]).encode())


def main():
    ceiling, uids = int(sys.argv[1]), int(sys.argv[2])
    try:
        with open("/proc/sys/user/max_net_namespaces", "w") as f:
            f.write(str(2**31 - 1))   # this user namespace's own limit: the lab host's root may write it
    except OSError:
        pass
    by_uid, stopped_by, children = {}, "ceiling", []
    for uid in [0] + [1000 * n for n in range(1, uids)]:
        left = ceiling - sum(by_uid.values())
        if left <= 0:
            break
        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(report_r)
            for _, earlier in children + [(child, go_w)]:   # only the hog's end of each keeps them held
                os.close(earlier)
            try:
                if uid:
                    become(uid)
                hold(left, report_w)
            except OSError as e:
                os.write(report_w, json.dumps([0, f"{e}"]).encode())
            os.read(go_r, 1)   # held until the hog ends
            os._exit(0)
        os.close(report_w)
        os.close(go_r)
        children.append((child, go_w))
        made, stopped_by = json.loads(os.read(report_r, 4096))
        os.close(report_r)
        by_uid[uid] = made
    print("HOG " + json.dumps({"held": sum(by_uid.values()), "by_uid": by_uid, "stopped_by": stopped_by}),
          flush=True)
    for child, go_w in children:
        os.close(go_w)
        os.waitpid(child, 0)


if __name__ == "__main__":
    main()
