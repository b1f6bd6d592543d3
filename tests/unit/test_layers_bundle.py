"""The bundle's bookkeeping (webapp/labhost/layers.py) on a state dir of files: layers move once to the
shared store and leave symlinks, bundles stay while current or named by a lab host's record, names from a
lab host's store are refused unless they are digests. No root, no lab host."""
from __future__ import annotations

import json
import os
import time

import pytest

from webapp.config import Settings
from webapp.labhost import layers, records, statedir
from webapp.labhost.base import LabHostError

CHAIN_A, CHAIN_B = "a" * 64, "b" * 64


@pytest.fixture
def settings(tmp_path):
    s = Settings(state_dir=str(tmp_path / "state"))
    for sub in ("images", "layers", records.HOSTS):
        os.makedirs(os.path.join(s.state_dir, sub))
    return s


def _staging(tmp_path, name: str, chains: dict[str, str]) -> str:
    """A reference lab host's image store as it is unpacked: layerdb chain -> cache id -> overlay2 diff."""
    staging = tmp_path / name
    for chain, cache in chains.items():
        (staging / layers.LAYERDB / chain).mkdir(parents=True)
        (staging / layers.LAYERDB / chain / "cache-id").write_text(cache)
        (staging / "overlay2" / cache / "diff" / "etc").mkdir(parents=True)
        (staging / "overlay2" / cache / "diff" / "etc" / "f").write_text(chain)
    return str(staging)


def _bundle(settings, bundle_id: str, chains: list[str], current: bool = False) -> None:
    images = os.path.join(settings.state_dir, "images")
    with open(os.path.join(images, f"bundle-{bundle_id}.json"), "w") as f:
        json.dump({"images": ["busybox:latest"], "chains": chains, "created": 0}, f)
    open(os.path.join(images, f"bundle-{bundle_id}.tar"), "w").close()
    os.utime(os.path.join(images, f"bundle-{bundle_id}.json"), (0, 0))   # replaced long ago, if not current
    if current:
        link = statedir.bundle_link(settings)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(f"bundle-{bundle_id}", link)


def test_layers_move_to_the_store_once_and_leave_symlinks(settings, tmp_path):
    first = _staging(tmp_path, "one", {CHAIN_A: "c1" * 32})
    assert layers.share(settings, first) == [CHAIN_A]
    diff = os.path.join(first, "overlay2", "c1" * 32, "diff")
    assert os.readlink(diff) == f"{layers.SHARED_LAYERS}/{CHAIN_A}"
    store = statedir.shared_store(settings)
    assert open(os.path.join(store, CHAIN_A, "etc", "f")).read() == CHAIN_A
    # a second bundle with the same chain (another cache id) adds no copy
    second = _staging(tmp_path, "two", {CHAIN_A: "c2" * 32, CHAIN_B: "c3" * 32})
    assert layers.share(settings, second) == [CHAIN_A, CHAIN_B]
    assert sorted(os.listdir(store)) == [CHAIN_A, CHAIN_B]
    assert os.path.islink(os.path.join(second, "overlay2", "c2" * 32, "diff"))


@pytest.mark.parametrize("bad", ["../../etc", "sha256:" + "A" * 64, "a" * 63, "a" * 64 + "/x"])
def test_names_from_a_lab_hosts_store_must_be_digests(settings, tmp_path, bad):
    staging = _staging(tmp_path, "bad", {CHAIN_A: "c1" * 32})
    with open(os.path.join(staging, layers.LAYERDB, CHAIN_A, "cache-id"), "w") as f:
        f.write(bad)
    with pytest.raises(LabHostError, match="names a layer"):
        layers.share(settings, staging)


def test_collect_keeps_the_current_bundle_and_those_lab_hosts_use(settings, tmp_path):
    layers.share(settings, _staging(tmp_path, "s", {CHAIN_A: "c1" * 32, CHAIN_B: "c2" * 32}))
    _bundle(settings, "old", [CHAIN_A])
    _bundle(settings, "used", [CHAIN_B])
    _bundle(settings, "now", [CHAIN_A], current=True)
    os.makedirs(records.host_dir(settings.state_dir, "lh-x"))
    records.write(settings.state_dir, {"id": "lh-x", "bundle": "used"})
    assert layers.collect(settings) == ["old"]
    assert sorted(os.listdir(statedir.shared_store(settings))) == [CHAIN_A, CHAIN_B]
    os.remove(os.path.join(records.host_dir(settings.state_dir, "lh-x"), "meta.json"))
    os.rmdir(records.host_dir(settings.state_dir, "lh-x"))   # that lab host is gone
    assert layers.collect(settings) == ["used"]
    assert os.listdir(statedir.shared_store(settings)) == [CHAIN_A]
    assert layers.current(settings).id == "now"


def test_a_bundle_replaced_just_now_is_kept_for_lab_hosts_that_read_it_then(settings, tmp_path):
    layers.share(settings, _staging(tmp_path, "s", {CHAIN_A: "c1" * 32}))
    _bundle(settings, "old", [CHAIN_A])
    _bundle(settings, "now", [], current=True)
    os.utime(os.path.join(settings.state_dir, "images", "bundle-old.json"))   # what a switch does
    assert layers.collect(settings) == []
    assert os.listdir(statedir.shared_store(settings)) == [CHAIN_A]
    past = time.time() - settings.ready_timeout - 1
    os.utime(os.path.join(settings.state_dir, "images", "bundle-old.json"), (past, past))
    assert layers.collect(settings) == ["old"]
    assert os.listdir(statedir.shared_store(settings)) == []


def test_current_is_none_without_a_bundle_or_its_archive(settings):
    assert layers.current(settings) is None
    _bundle(settings, "now", [CHAIN_A], current=True)
    assert layers.current(settings).images == ["busybox:latest"]
    os.remove(os.path.join(settings.state_dir, "images", "bundle-now.tar"))
    assert layers.current(settings) is None


def test_ensure_builds_only_for_images_the_current_bundle_lacks(settings, monkeypatch):
    _bundle(settings, "now", [CHAIN_A], current=True)
    built = []
    monkeypatch.setattr(layers, "build", lambda s, images, fill: built.append(images) or "new")
    assert layers.ensure(settings, ["busybox:latest"], fill=None).id == "now"
    assert layers.ensure(settings, ["nginx:1.27"], fill=None) == "new"
    assert built == [["busybox:latest", "nginx:1.27"]]


@pytest.mark.parametrize("name, listed", [("nginx:1.27", "nginx:1.27"), ("docker.io/library/nginx:1.27", "nginx:1.27"),
                                          ("library/nginx", "nginx"), ("team/tool:2", "team/tool:2"),
                                          ("registry.example/team/tool:2", "registry.example/team/tool:2")])
def test_names_as_dockerd_lists_them(name, listed):
    assert layers._short(name) == listed


def test_a_bundle_no_lab_host_can_use_is_removed_saying_what_it_needs(settings, monkeypatch):
    class Refused:
        def __init__(self, settings, bundle):
            self.bundle = bundle

        def start(self):
            raise LabHostError("lab host x failed: labroot build: an idmapped mount of ... (Linux 5.19 or later)",
                               "Run `labnb doctor`")

        def destroy(self):
            pass

    _bundle(settings, "new", [CHAIN_A])
    monkeypatch.setattr(layers, "SandboxLabHost", Refused)
    with pytest.raises(LabHostError, match="cannot use the shared image layers.*Linux 5.19") as e:
        layers._try(settings, "new", os.path.join(settings.state_dir, "images", "bundle-new.tar"), [])
    assert "idmapped mounts" in e.value.todo
    assert not [n for n in os.listdir(os.path.join(settings.state_dir, "images")) if n.startswith("bundle-new")]
    assert layers.current(settings) is None
