"""Shared image layers (webapp/labhost/layers.py): two real lab hosts run one bundled image from one copy on
disk; a learner's writes and `docker rmi` stay in their own lab host; the shared store cannot be written,
remounted, unmounted or remapped from inside."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tarfile

import pytest

from conftest import sh
from webapp.labhost import image, layers, reaper, statedir
from webapp.labhost.pool import create

IMAGE = "labnb-test/shared:1"
BIG = 16 << 20   # a file big enough that a second copy would show in any measure


def _layer(entries) -> bytes:
    """A layer tar: (name, kind, data) with kind 'dir', 'file' or 'whiteout' (an overlay `.wh.` entry)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = image.EPOCH, 0o755 if kind == "dir" else 0o644
            info.type = tarfile.DIRTYPE if kind == "dir" else tarfile.REGTYPE
            info.size = len(data) if kind != "dir" else 0
            tar.addfile(info, io.BytesIO(data) if kind != "dir" else None)
    return buf.getvalue()


def _big() -> bytes:
    block = hashlib.sha256(b"labnb").digest() * 2048   # 64 KiB, not all zeros: tmpfs keeps every byte
    return block * (BIG // len(block))


def _archive(dest: str) -> None:
    base = image._layer(image.BUSYBOX)
    data = _layer([("data", "dir", b""), ("data/a", "file", b"a\n"), ("data/keep", "file", b"original\n"),
                   ("data/big", "file", _big()), ("opq", "dir", b""), ("opq/old", "file", b"old\n")])
    # a file deleted and a dir made opaque by the layer above: whiteouts in the shared store
    top = _layer([("data", "dir", b""), ("data/.wh.a", "file", b""), ("opq", "dir", b""),
                  ("opq/.wh..wh..opq", "file", b""), ("opq/new", "file", b"new\n")])
    image.write(dest, [base, data, top], IMAGE, ["sh"], "labnb test: shared layers")


def _loader(*archives: str):
    """A bundle's ``fill``: `docker load` of each archive into the reference lab host."""
    def fill(host):
        client = host.docker()
        try:
            for archive in archives:
                with open(archive, "rb") as f:
                    client.api.load_image(f.read())
        finally:
            client.close()
    return fill


@pytest.fixture(scope="module")
def shared(settings):
    """A state dir of its own (the session's keeps the busybox seed) with a bundle of IMAGE."""
    s = dataclasses.replace(settings, state_dir=settings.state_dir + "-layers", disk_mb=256)
    statedir.prepare_state_dir(s)
    image.build(statedir.image_archive(s))
    archive = os.path.join(s.state_dir, "test-image.tar")
    _archive(archive)

    bundle = layers.build(s, [IMAGE], _loader(archive))
    yield s, bundle
    reaper.gc(s, everything=True)
    shutil.rmtree(s.state_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def two(shared):
    s, _bundle = shared
    first, second = create(s), create(s)
    yield first, second
    first.destroy()
    second.destroy()


def _ok(host, command: str) -> str:
    outcome, out = sh(host, command, timeout=120)
    assert outcome.ok, out
    return out


def _used_kb(host) -> int:
    """What the lab host's docker data tmpfs holds (its own memory)."""
    data = os.path.join(host.dir, "docker")
    return int(_ok(host, f"df -k {data} | tail -n 1").split()[2])


def _store_file(s, bundle, path: str) -> str:
    for chain in bundle.chains:
        candidate = os.path.join(statedir.shared_store(s), chain.removeprefix("sha256:"), path)
        if os.path.isfile(candidate):
            return candidate
    raise AssertionError(f"{path} is in no shared layer")


@pytest.mark.slow
def test_two_lab_hosts_run_the_bundled_image_with_its_whiteouts(shared, two):
    _s, bundle = shared
    assert IMAGE in bundle.images and "busybox:latest" in bundle.images
    for host in two:
        out = _ok(host, f"docker run --rm {IMAGE} sh -c 'cat /data/keep; ls /data; echo opq: $(ls /opq)'")
        assert "original" in out and "opq: new" in out, out
        assert "a\n" not in out.replace("\r", "") and "big" in out, out
        assert "hi" in _ok(host, "docker run --rm busybox echo hi")


@pytest.mark.slow
def test_the_second_lab_host_costs_metadata_only(shared, two):
    s, bundle = shared
    store_kb = int(os.popen(f"du -sk {statedir.shared_store(s)}").read().split()[0])
    assert store_kb >= BIG >> 10   # the one copy
    for host in two:
        _ok(host, f"docker run --rm {IMAGE} true")
        used = _used_kb(host)
        assert used < (BIG >> 10) // 4, f"{host.id} holds {used} KiB of its own: the layers were copied"
    # nothing of a lab host's is on the machine's disk: its data dir is a tmpfs of its own
    assert os.path.getsize(bundle.archive) < 1 << 20


@pytest.mark.slow
def test_files_show_root_owned_inside(shared, two):
    first, _ = two
    out = _ok(first, f"stat -c '%u:%g' {layers.SHARED_LAYERS}; docker run --rm {IMAGE} stat -c '%u:%g %n' /data/keep /opq/new")
    assert "65534" not in out and out.count("0:0") == 3, out


@pytest.mark.slow
def test_a_learners_writes_stay_in_their_lab_host(shared, two):
    s, bundle = shared
    first, second = two
    before = _used_kb(first)
    _ok(first, f"docker run --name writer {IMAGE} sh -c 'echo mine >> /data/keep; echo x >> /data/big; rm /opq/new'")
    assert _used_kb(first) - before >= (BIG >> 10) // 2   # copied up into its own tmpfs
    assert "mine" in _ok(first, "docker cp writer:/data/keep - | tar -xOf -")
    assert "mine" not in _ok(second, f"docker run --rm {IMAGE} cat /data/keep")
    assert "new" in _ok(second, f"docker run --rm {IMAGE} ls /opq")
    with open(_store_file(s, bundle, "data/keep")) as f:
        assert f.read() == "original\n"
    _ok(first, "docker rm writer")


@pytest.mark.slow
def test_rmi_in_one_lab_host_does_not_affect_another(shared, two):
    s, bundle = shared
    first, second = two
    _ok(first, f"docker rmi {IMAGE}")
    assert IMAGE not in _ok(first, "docker image ls --format '{{.Repository}}:{{.Tag}}'")
    assert "original" in _ok(second, f"docker run --rm {IMAGE} cat /data/keep")
    assert os.path.isfile(_store_file(s, bundle, "data/keep"))


@pytest.mark.slow
def test_a_new_bundle_reaches_new_lab_hosts_and_an_old_one_stays_while_used(shared, two):
    s, first = shared
    archive = os.path.join(s.state_dir, "test-image.tar")
    only = os.path.join(s.state_dir, "only.tar")
    image.write(only, [image._layer(image.BUSYBOX), _layer([("only", "file", b"in bundle two alone\n")])],
                "labnb-test/only:2", ["cat", "/only"],
                "labnb test: a layer of one bundle")
    assert layers.ensure(s, [IMAGE], _loader(archive)).id == first.id   # it has them: nothing built
    second = layers.ensure(s, ["labnb-test/only:2"], _loader(archive, only))
    assert layers.current(s).id == second.id and set(second.images) >= {IMAGE, "busybox:latest", "labnb-test/only:2"}
    only_chain = (set(second.chains) - set(first.chains)).pop().removeprefix("sha256:")
    newer = create(s)
    try:
        assert "bundle two alone" in _ok(newer, "docker run --rm labnb-test/only:2")
        assert "original" in _ok(two[1], f"docker run --rm {IMAGE} cat /data/keep")   # made with the first
        third = layers.build(s, [IMAGE], _loader(archive))   # without only:2
        kept = {b.removeprefix("bundle-").removesuffix(".json") for b in os.listdir(os.path.join(s.state_dir, "images"))
                if b.startswith("bundle-") and b.endswith(".json")}
        assert kept == {first.id, second.id, third.id}   # each named by a lab host's record, or current
        assert "bundle two alone" in _ok(newer, "docker run --rm labnb-test/only:2")
    finally:
        newer.destroy()
    assert second.id not in layers.collect(s)   # replaced just now: a lab host may have read it as current
    os.utime(second.archive.removesuffix(".tar") + ".json", (0, 0))
    assert second.id in layers.collect(s)
    assert not os.path.exists(second.archive)
    assert not os.path.exists(os.path.join(statedir.shared_store(s), only_chain))
    assert first.id not in layers.collect(s)   # the module's two lab hosts still use it


ATTACKS = {
    "remount rw": f"mount -o remount,rw {layers.SHARED_LAYERS}",
    "remount rw, bind": f"mount -o remount,bind,rw {layers.SHARED_LAYERS}",
    "unmount": f"umount {layers.SHARED_LAYERS}",
    "lazy unmount": f"umount -l {layers.SHARED_LAYERS}",
    "a writable bind of it": f"mkdir -p /mnt/b && mount --bind {layers.SHARED_LAYERS} /mnt/b && "
                             "mount -o remount,bind,rw /mnt/b && touch /mnt/b/x",
    "write a file": "echo evil > {layer}/data/keep",
    "a new file": "touch {layer}/evil",
    "mknod": "mknod {layer}/evil c 1 3",
    "chown through the bind": "chown 1000 {layer}/data/keep",
    "chmod": "chmod 777 {layer}/data/keep",
    "setuid": "chmod u+s {layer}/data/keep",
    "rm": "rm -rf {layer}/data",
    "xattr": "python3 -c \"import os; os.setxattr('{layer}/data/keep', 'user.evil', b'1')\"",
    "via /proc/pid/root": "echo evil > /proc/1/root{layer}/data/keep",
    "via a container's /proc/pid/root": f"docker run -d --name held -v {layers.SHARED_LAYERS}:/s busybox sleep 60 "
                                        ">/dev/null && echo evil > /proc/$(docker inspect -f '{{{{.State.Pid}}}}' "
                                        "held)/root/s/{chain}/data/keep",
    "a privileged container": f"docker run --rm --privileged -v {layers.SHARED_LAYERS}:/s busybox "
                              "sh -c 'mount -o remount,rw /s && touch /s/evil'",
    "remap with mount_setattr": "python3 -c \"" + "import ctypes,os;L=ctypes.CDLL(None,use_errno=True);"
                                "t=L.syscall(428,-100,b'" + "{SHARED}" + "',1|0o2000000);assert t>=0,t;"
                                "a=(ctypes.c_uint64*4)(0,1,0,0);"   # clear MOUNT_ATTR_RDONLY on a clone
                                "assert L.syscall(442,t,b'',0x1000,a,32)==0,os.strerror(ctypes.get_errno());"
                                "assert L.syscall(429,t,b'',-100,b'/mnt',4)==0;open('/mnt/evil','w')\"",
}


@pytest.mark.slow
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_shared_store_cannot_be_changed_from_inside(shared, two, attack):
    s, bundle = shared
    first, _ = two
    keep = _store_file(s, bundle, "data/keep")
    layer = os.path.join(layers.SHARED_LAYERS, os.path.relpath(keep, statedir.shared_store(s)))[:-len("/data/keep")]
    command = ATTACKS[attack].replace("{SHARED}", layers.SHARED_LAYERS).format(layer=layer,
                                                                             chain=os.path.basename(layer))
    outcome, out = sh(first, command, timeout=120)
    sh(first, "docker rm -f held >/dev/null 2>&1; umount /mnt/b /mnt 2>/dev/null; true")
    assert not outcome.ok, f"{attack} was let through: {out}"
    # EROFS, EPERM, EACCES; EINVAL from umount of a locked mount (util-linux says "not mounted")
    refusals = ("read-only file system", "operation not permitted", "permission denied", "not mounted")
    assert any(r in out.lower() for r in refusals), f"{attack} failed for another reason: {out}"
    assert layers.SHARED_LAYERS in _ok(first, f"grep -F ' {layers.SHARED_LAYERS} ' /proc/self/mountinfo | grep -F ro,nosuid,nodev")
    with open(keep) as f:
        assert f.read() == "original\n"
    st = os.stat(keep)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o644)
    assert not any(os.path.lexists(os.path.join(statedir.shared_store(s), c.removeprefix("sha256:"), "evil"))
                   for c in bundle.chains)
