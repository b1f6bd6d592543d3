"""A served lab that names images: the server runs the machine's cache (and only then), each lab host
gets its forwarder from the pool, and a learner's lab has its images before its first step (one pulled
through the cache from a stand-in upstream, one imported under another registry's name)."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import time

import pytest

from registry_support import Upstream, build_image
from web_support import LABNB, Server, Tab, _state_dir, serving

pytestmark = pytest.mark.slow

LAB = """---
title: Images in the browser
summary: For the images tests - a lab that names two images.
images: [labnbtest/web:1, registry.example/team/webtool:2]
---
# Images in the browser

## Run them {#run}

```sh
docker run --rm labnbtest/web:1
docker run --rm registry.example/team/webtool:2
```
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("images-web")
    labs = work / "labs"
    labs.mkdir()
    (labs / "images.md").write_text(LAB)
    state = _state_dir("images-web")
    up = Upstream(state + "-upstream")
    up.push("labnbtest/web:1", build_image(str(work / "web.tar"), "from the upstream, in the browser"))
    s = Server(state, uid_slot=64, pool_size=1, env={"LABNB_LABS_DIR": str(labs), "LABNB_IMAGE_UPSTREAM": up.url,
                                                     "LABNB_MAX_LAB_HOSTS": "4"})
    try:
        s.prepare()
        archive = build_image(str(work / "tool.tar"), "the imported tool", tag="registry.example/team/webtool:2")
        done = subprocess.run([LABNB, "image", "import", archive], env=s.env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        yield from serving(s)
    finally:
        up.close()
        subprocess.run(["rm", "-rf", state + "-upstream"])


def test_a_learner_runs_the_labs_images(server):
    registries = [p for p in os.listdir("/proc") if p.isdigit() and _is_registry_of(p, server.state_dir)]
    assert len(registries) == 2, "the server runs the import store and the pull-through cache"
    http = server.learner()
    server.open_lab(http, "images")
    tab = Tab(server, http, lab="images")
    try:
        end = tab.wait_end(tab.run("run"), timeout=240)
        text = tab.text(end["run"])
        assert end["status"] == "done", text
        assert "from the upstream, in the browser" in text and "the imported tool" in text
    finally:
        tab.close()


def test_the_pools_lab_hosts_share_the_labs_images(server):
    """The server puts the labs' images in one shared copy (``layers.ensure``) before its warm pool fills:
    every lab host made after that has them from the bundle, without a pull (one that a learner claimed
    before, made there and then, pulled its own)."""
    link = os.path.join(server.state_dir, "images", "bundle")
    _wait(lambda: os.path.islink(link), "the bundle of the labs' images")
    bundle = os.readlink(link)
    with open(os.path.join(server.state_dir, "images", bundle + ".json")) as f:
        meta = json.load(f)
    assert {"labnbtest/web:1", "registry.example/team/webtool:2"} <= set(meta["images"])

    def after() -> list:
        made = []
        for path in glob.glob(os.path.join(server.state_dir, "hosts", "*", "meta.json")):
            with open(path) as f:
                record = json.load(f)
            if record.get("created", 0) > meta["created"]:
                made.append(record.get("bundle"))
        return made

    _wait(after, "a lab host of the warm pool made after the bundle")
    assert all("bundle-" + b == bundle for b in after()), after()


def _wait(predicate, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.2)


def _is_registry_of(pid: str, state_dir: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return argv[0].endswith(b"docker-registry") and any(a.startswith(state_dir.encode() + b"/") for a in argv)
