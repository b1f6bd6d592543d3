"""One copy on disk (issue 31): 30 lab hosts with the same 100+ MB image.

The image is built offline and deterministically from this machine's Debian
files: busybox (the lab hosts' own base layer), a layer of shared libraries
from /usr/lib/x86_64-linux-gnu (those python3 needs first, then the rest in
name order up to LIBS_MB) and a layer with python3 and its standard library;
`docker run IMAGE python3 -c ...` works in it.

Two ways to give 30 lab hosts that image, each measured from 30 lab hosts
already made and waiting in a warm pool (as a room's are):

- the old way: each claimed lab host `docker load`s its own copy (as each
  would pull its own), all 30 at once;
- shared: `layers.build` makes a bundle once (timed: it is done before the
  room arrives), the pool fills after it, each claimed lab host runs the
  image from the one shared copy.

Disk: what the state dir grew by on the machine's disk (du) plus what every
lab host's docker data tmpfs holds (df inside it, the lab host's memory),
against one copy of the image (its layers, unpacked, as du counts them).
Time: from the first claim until all 30 have run `python3 -c` in the image;
also for the shared way without a warm pool (each lab host made as it is
claimed, all 30 at once).

Run as root on an otherwise idle machine:  .venv/bin/python bench/images.py [N]
Prints one line per measurement, and as its last line one JSON object.
Uses its own state dir (/var/lib/labnb-images-bench), removed at the end.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time

from webapp import executor
from webapp.config import Settings
from webapp.labhost import image, layers, reaper, statedir
from webapp.labhost.pool import Pool
from webapp.labhost.sandbox import build_seed

NAME = "bench/python:3.11"
LIBS = "/usr/lib/x86_64-linux-gnu"
LIBS_MB = 64
PYTHON = "/usr/bin/python3.11"
RUN = f"docker run --rm {NAME} python3 -c 'import json, sqlite3; print(\"ok\")'"


def _normal(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname = image.EPOCH, 0, 0, "", ""
    return info


def _layer(files: list[str], trees: list[str] = (), links: list[tuple[str, str]] = ()) -> bytes:
    """A layer tar of these machine paths (files and symlinks, whole trees), at the same paths, and of
    symlinks (name, target); deterministic: sorted, fixed times and owners, the dirs above each made."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made = set()
        for path in sorted({os.path.dirname(p) for p in files} | {os.path.dirname(t) for t in trees}
                           | {"/" + os.path.dirname(n) for n, _ in links} - {"/"}):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                name = "/".join(parts[:i])
                if name and name not in made:
                    made.add(name)
                    info = tarfile.TarInfo(name)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(_normal(info))
        for p in sorted(files):
            tar.add(p, p.lstrip("/"), recursive=False, filter=_normal)
        for t in trees:
            for root, subdirs, names in os.walk(t):
                subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
                tar.add(root, root.lstrip("/"), recursive=False, filter=_normal)
                for n in sorted(names):
                    tar.add(os.path.join(root, n), os.path.join(root, n).lstrip("/"), recursive=False,
                            filter=_normal)
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(_normal(info))
    return buf.getvalue()


def _needed_libs() -> list[str]:
    """What python3 and its sqlite3 module load, under /usr/lib (the links naming them and their files)."""
    sqlite = [os.path.join(root, n) for root, _, names in os.walk("/usr/lib/python3.11/lib-dynload")
              for n in names if n.startswith("_sqlite3")]
    found = set()
    for program in [PYTHON, *sqlite]:
        out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
        for path in re.findall(r"(/\S+) \(0x", out):
            named = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
            found |= {named, os.path.realpath(path)}
    return sorted(found)


def build_image(dest: str) -> int:
    """Write the bench's image archive; return its layers' bytes (one copy, uncompressed)."""
    libs = _needed_libs()
    size = sum(os.path.getsize(p) for p in libs)
    for name in sorted(os.listdir(LIBS)):
        path = os.path.join(LIBS, name)
        more = 0 if os.path.islink(path) else os.path.getsize(path) if os.path.isfile(path) else -1
        if path not in libs and more >= 0 and size + more <= LIBS_MB << 20:
            libs.append(path)
            size += more
    loader = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    parts = [image._layer(image.BUSYBOX),
             _layer(libs, links=[("lib", "usr/lib"), ("lib64/ld-linux-x86-64.so.2", loader)]),
             _layer([PYTHON], ["/usr/lib/python3.11"], links=[("usr/bin/python3", "python3.11")])]
    image.write(dest, parts, NAME, ["python3"], "labnb bench: Debian's python3 and libraries")
    return sum(len(p) for p in parts)


def du_kb(path: str) -> int:
    """What ``path`` takes on the machine's disk (one file system: lab hosts' tmpfs mounts are not there)."""
    return int(subprocess.run(["du", "-skx", path], capture_output=True, text=True, check=True).stdout.split()[0])


def sh(host, command: str, timeout: float = 600) -> str:
    out = []
    outcome = executor.start(host, command, on_output=out.append, timeout=timeout, window=None).wait(timeout + 10)
    text = b"".join(out).decode(errors="replace")
    if outcome is None or not outcome.ok:
        raise SystemExit(f"{command!r} failed in {host.id}: {text[-500:]}")
    return text


def tmpfs_kb(host) -> int:
    """What the lab host's docker data tmpfs holds: its own memory, not the machine's disk."""
    return int(sh(host, f"df -k {os.path.join(host.dir, 'docker')} | tail -n 1").split()[2])


def all_at_once(hosts, work) -> float:
    """Seconds until ``work(host)`` is done for every host, all started together."""
    errors = []

    def one(host):
        try:
            work(host)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(h,)) for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} of {len(hosts)} lab hosts failed: {errors[0]}")
    return time.monotonic() - t0


def room(settings: Settings, n: int, work, warm: bool = True) -> dict:
    """A warm pool of ``n`` filled (or none: each made as it is claimed), ``n`` claimed at once, ``work`` in
    each; times and each tmpfs's use. LABNB_MAX_LAB_HOSTS is ``n``: the pool makes no more while they work."""
    pool = Pool(settings, size=n if warm else 0).start()
    try:
        t0 = time.monotonic()
        if warm and not pool.wait_full(60 * n):
            raise SystemExit(f"the warm pool did not fill to {n}")
        filled = time.monotonic() - t0
        hosts = []

        def claim_and_work(_):
            host = pool.claim()
            hosts.append(host)
            work(host)

        ready = all_at_once([None] * n, claim_and_work)
        used = [tmpfs_kb(h) for h in hosts]
        return {"pool_fill_s": round(filled, 1), "all_ran_s": round(ready, 1), "tmpfs_kb": used}
    finally:
        pool.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    state = "/var/lib/labnb-images-bench"
    shutil.rmtree(state, ignore_errors=True)
    s = Settings(state_dir=state, max_lab_hosts=n, disk_mb=1024, memory_mb=1536, pids=1024)
    statedir.prepare_state_dir(s)
    image.build(statedir.image_archive(s))
    build_seed(s)
    archive = os.path.join(state, "bench-image.tar")
    try:
        one_copy = build_image(archive) >> 10
        print(f"image {NAME}: {one_copy / 1024:.0f} MiB of layers (one copy), {n} lab hosts")
        base = du_kb(state)

        def load(host):
            client = host.docker(timeout=600)   # 30 loads at once on a small machine take minutes
            try:
                with open(archive, "rb") as f:
                    client.api.load_image(f)
            finally:
                client.close()

        def load_and_run(host):
            load(host)
            sh(host, RUN)

        old = room(s, n, load_and_run)
        old_disk = sum(old["tmpfs_kb"])
        print(f"old way (each loads its own): all {n} ran it {old['all_ran_s']} s after the claims; "
              f"tmpfs {old_disk / 1024:.0f} MiB in all = {old_disk / one_copy:.1f} copies")

        t0 = time.monotonic()
        bundle = layers.build(s, [NAME], load)
        built = time.monotonic() - t0
        grew = du_kb(state) - base
        print(f"bundle built in {built:.1f} s: the state dir grew {grew / 1024:.0f} MiB, "
              f"its per-lab-host archive {os.path.getsize(bundle.archive) >> 10} KiB")
        shared = room(s, n, lambda host: sh(host, RUN))
        cold = room(s, n, lambda host: sh(host, RUN), warm=False)
        print(f"shared, no warm pool (each made as it is claimed): all {n} ran it {cold['all_ran_s']} s "
              "after the claims")
        grew = du_kb(state) - base
        shared_disk = grew + sum(shared["tmpfs_kb"])
        print(f"shared (warm pool after the bundle): all {n} ran it {shared['all_ran_s']} s after the claims; "
              f"state dir +{grew / 1024:.0f} MiB, tmpfs {sum(shared['tmpfs_kb']) / 1024:.0f} MiB in all "
              f"(at most {max(shared['tmpfs_kb'])} KiB each): {shared_disk / one_copy:.2f} copies")
        print(json.dumps({"n": n, "one_copy_kb": one_copy, "old": old, "old_total_kb": old_disk,
                          "bundle_build_s": round(built, 1), "bundle_archive_kb": os.path.getsize(bundle.archive) >> 10,
                          "shared": shared, "shared_no_pool": cold, "shared_state_dir_kb": grew, "shared_total_kb": shared_disk}))
    finally:
        reaper.gc(s, everything=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
