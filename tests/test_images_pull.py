"""Lab hosts get images from the machine's cache through their forwarder: pulled through the cache from
a stand-in upstream (a real docker-registry on loopback), imported with ``labnb image import``, under a
non-Hub name with ``images.ensure``; a push is refused, an image the cache cannot serve fails clearly and
at once, and a lab host flooding its forwarder slows only itself."""
from __future__ import annotations

import dataclasses
import subprocess
import time

import pytest

from conftest import LABNB, Output, labnb_env, sh
from registry_support import Upstream, build_image
from webapp import executor
from webapp.images import service
from webapp.images.ensure import ImageMissing, ensure
from webapp.labhost.pool import create

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def upstream(settings, tmp_path_factory):
    up = Upstream(f"{settings.state_dir}/upstream")
    work = tmp_path_factory.mktemp("images")
    up.push("labnbtest/hello:1", build_image(str(work / "hello.tar"), "hello from the upstream"))
    up.push("labnbtest/both:1", build_image(str(work / "both-up.tar"), "the upstream's both"))
    up.push("labnbtest/big:1", build_image(str(work / "big.tar"), "big", padding=48 << 20))
    up.push("labnbtest/unnamed:1", build_image(str(work / "unnamed.tar"), "no lab names me"))
    yield up
    up.close()


@pytest.fixture(scope="module")
def images(settings, upstream):
    """The machine's cache (labnb's own registries, the pull-through one of the stand-in upstream) and the
    forwarder, as the server makes them; ``images.settings`` for lab hosts and the CLI."""
    s = dataclasses.replace(settings, image_cache="local", image_upstream=upstream.url)
    made = service.Images(s, ["labnbtest/hello:1", "labnbtest/both:1", "labnbtest/big:1", "labnbtest/nope:1"])
    made.settings = s
    yield made
    made.close()


@pytest.fixture
def host(images):
    h = create(images.settings, prepare=images.prepare)
    yield h
    h.destroy()


def test_a_lab_host_pulls_through_the_cache_and_runs_it(host):
    outcome, out = sh(host, "docker pull labnbtest/hello:1 && docker run --rm labnbtest/hello:1", timeout=180)
    assert outcome.ok, out
    assert "hello from the upstream" in out


def cli_env(images) -> dict[str, str]:
    return {"LABNB_IMAGE_CACHE": "local", "LABNB_IMAGE_UPSTREAM": images.settings.image_upstream}


def image_command(images, *args):
    return subprocess.run([*LABNB, "image", *args], env={**labnb_env(images.settings), **cli_env(images)},
                          capture_output=True, text=True, timeout=300)


def test_an_imported_image_under_another_registrys_name_is_ensured_and_runs(images, host, tmp_path):
    archive = build_image(str(tmp_path / "tool.tar"), "the team's tool", tag="registry.example/team/tool:2")
    done = image_command(images, "import", archive)
    assert done.returncode == 0, done.stderr
    assert "imported registry.example/team/tool:2" in done.stdout
    ensure(host, ["registry.example/team/tool:2"])
    outcome, out = sh(host, "docker run --rm registry.example/team/tool:2; docker images --format '{{.Repository}}'")
    assert outcome.ok and "the team's tool" in out, out
    assert "127.0.0.1:4999" not in out   # only the lab's name is left


def test_an_imported_image_wins_over_the_upstreams(images, host, tmp_path):
    archive = build_image(str(tmp_path / "both.tar"), "the imported both", tag="labnbtest/both:1")
    assert image_command(images, "import", archive).returncode == 0
    outcome, out = sh(host, "docker pull labnbtest/both:1 && docker run --rm labnbtest/both:1", timeout=180)
    assert outcome.ok and "the imported both" in out, out


def test_an_image_named_by_tag_and_digest_is_pulled_by_digest_and_named_by_tag(upstream, host):
    """``nginx:1.27@sha256:...`` pins the image; ``docker run nginx:1.27`` must then find it."""
    _status, headers, _ = upstream.registry.manifest("labnbtest/hello", "1")
    digest = headers["docker-content-digest"]
    ensure(host, [f"labnbtest/hello:1@{digest}"])
    outcome, out = sh(host, "docker run --rm labnbtest/hello:1; docker images --digests --format '{{.Repository}}'")
    assert outcome.ok and "hello from the upstream" in out, out
    assert "127.0.0.1:4999" not in out   # only the lab's name is left


def test_a_missing_image_names_itself_and_what_to_do(host):
    with pytest.raises(ImageMissing) as missing:
        ensure(host, ["registry.example/team/nothing:9"])
    said = str(missing.value)
    assert "registry.example/team/nothing:9" in said and "labnb image pull" in said and "labnb image import" in said


def test_a_push_from_a_lab_host_is_refused(host):
    outcome, out = sh(host, "docker pull labnbtest/hello:1 && docker tag labnbtest/hello:1 127.0.0.1:4999/mine/x:1 "
                            "&& docker push 127.0.0.1:4999/mine/x:1", timeout=180)
    print(out)
    assert not outcome.ok
    assert "takes no pushes" in out


def test_a_pull_the_cache_cannot_serve_fails_clearly_at_once(host):
    """Within the command's deadline (no hang), saying that the cache does not have it and what to do."""
    outcome, out = sh(host, "docker pull labnbtest/nope:1", timeout=60)
    print(out)
    assert outcome.status != "timed out" and not outcome.ok, out
    assert "labnb image pull" in out


FLOOD = r'''
import json, socket, threading, time
END = time.monotonic() + 90
held = []
def connect():
    try:
        s = socket.create_connection(("127.0.0.1", 4999), timeout=5)
        held.append(s)
        return s
    except OSError:
        return None
def ask(path, accept=""):
    s = connect()
    s.sendall(f"GET {path} HTTP/1.1\r\nAccept: {accept}\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data.partition(b"\r\n\r\n")[2]
manifest = json.loads(ask("/v2/labnbtest/big/manifests/1", "application/vnd.docker.distribution.manifest.v2+json"))
blob = manifest["layers"][-1]["digest"]
for _ in range(8):   # readers that never read a big blob
    s = connect()
    if s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(f"GET /v2/labnbtest/big/blobs/{blob} HTTP/1.1\r\n\r\n".encode())
def huge():
    while time.monotonic() < END:
        s = connect()
        try:
            s.sendall(b"GET /v2/ HTTP/1.1\r\nX: " + b"a" * (1 << 20))
        except (OSError, AttributeError):
            pass
def churn():
    while time.monotonic() < END:
        s = connect()
        if s:
            held.remove(s)
            s.close()
for target in [huge] * 4 + [churn] * 4:
    threading.Thread(target=target, daemon=True).start()
print("flooding", flush=True)
time.sleep(max(0, END - time.monotonic()))
'''


def test_a_lab_host_flooding_the_forwarder_slows_only_itself(images, tmp_path):
    """Lab host A holds its connections with readers that never read and huge heads, and opens and closes
    more without end; lab host B pulls a 48 MiB image meanwhile and runs it."""
    flooder = create(images.settings, prepare=images.prepare)
    puller = create(images.settings, prepare=images.prepare)
    try:
        out = Output()
        flood = executor.start(flooder, f"cat > /tmp/flood.py <<'EOF'\n{FLOOD}\nEOF\npython3 /tmp/flood.py",
                               on_output=out, timeout=120, window=None)
        deadline = time.monotonic() + 60
        while "flooding" not in out.text:
            assert time.monotonic() < deadline and flood.outcome is None, out.text
            time.sleep(0.2)
        outcome, said = sh(puller, "docker pull labnbtest/big:1 && docker run --rm labnbtest/big:1", timeout=85)
        assert outcome.ok and "big" in said, said
        assert flood.outcome is None, out.text   # the flood was still on while B pulled
    finally:
        flooder.destroy()
        puller.destroy()


def test_the_forwarder_lets_go_of_a_lab_host_that_went(images):
    """Its listening socket would keep the lab host's network namespace: it goes with the lab host."""
    h = create(images.settings, prepare=images.prepare)
    assert h.id in images.forwarder.attached()
    h.destroy()
    deadline = time.monotonic() + 30
    while h.id in images.forwarder.attached():
        assert time.monotonic() < deadline, "the forwarder still holds a lab host that went"
        time.sleep(0.2)


def test_the_cache_fetches_for_lab_hosts_only_what_labs_name_or_the_operator_pulled(images, host):
    """A learner cannot fill the machine's disk with images of their choosing from the upstream."""
    outcome, out = sh(host, "docker pull labnbtest/unnamed:1", timeout=60)
    assert not outcome.ok and "labnb image pull" in out, out
    done = subprocess.run([*LABNB, "image", "pull", "labnbtest/unnamed:1"], capture_output=True, text=True,
                          env={**labnb_env(images.settings), **cli_env(images)}, timeout=300)
    assert done.returncode == 0 and "cached labnbtest/unnamed:1" in done.stdout, done.stderr
    outcome, out = sh(host, "docker pull labnbtest/unnamed:1 && docker run --rm labnbtest/unnamed:1", timeout=120)
    assert outcome.ok and "no lab names me" in out, out
    listed = subprocess.run([*LABNB, "image", "ls"], capture_output=True, text=True,
                            env={**labnb_env(images.settings), **cli_env(images)}, timeout=300)
    assert "cached    labnbtest/unnamed:1" in listed.stdout, listed.stdout


LAB = """---
title: Images named by a lab
summary: For the images tests - an image from the upstream and an imported one under another registry's name.
images: [labnbtest/hello:1, registry.example/team/tool:2]
---
# Images named by a lab

## Run them {#run}

```sh
docker run --rm labnbtest/hello:1
docker run --rm registry.example/team/tool:2
```

```match {"hint": "both images should run"}
hello from the upstream
```
"""


def test_labnb_run_gives_the_lab_host_the_labs_images(images, tmp_path):
    """The headless runner makes sure of a lab's images before its steps; a missing one stops it at once,
    naming the image and what to do."""
    archive = build_image(str(tmp_path / "tool.tar"), "the team's tool", tag="registry.example/team/tool:2")
    assert image_command(images, "import", archive).returncode == 0
    lab = tmp_path / "lab.md"
    lab.write_text(LAB)
    env = {**labnb_env(images.settings), **cli_env(images)}
    done = subprocess.run([*LABNB, "run", str(lab)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the team's tool" in done.stdout
    lab.write_text(LAB.replace("registry.example/team/tool:2]", "registry.example/team/gone:1]"))
    done = subprocess.run([*LABNB, "run", str(lab)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "registry.example/team/gone:1" in done.stderr and "labnb image import" in done.stderr


STEAL = r'''
import socket, sys
for opts in ([], [socket.SO_REUSEADDR], [socket.SO_REUSEADDR, socket.SO_REUSEPORT]):
    s = socket.socket()
    for o in opts:
        s.setsockopt(socket.SOL_SOCKET, o, 1)
    try:
        s.bind(("127.0.0.1", 4999))
        print("BOUND", opts)
    except OSError as e:
        print("refused", e.errno)
for path in sys.argv[1:]:
    u = socket.socket(socket.AF_UNIX)
    try:
        u.connect(path)
        print("REACHED", path)
    except OSError as e:
        print("unreachable", path, e.errno)
'''


def test_a_lab_host_can_neither_take_the_forwarders_address_nor_reach_the_cache(images, host):
    """Its root cannot bind 127.0.0.1:4999 in its place (any socket option), nor connect to the cache's
    sockets by their path: only the forwarder leads there."""
    run = f"{images.settings.state_dir}/registry/run"
    outcome, out = sh(host, f"cat > /tmp/steal.py <<'EOF'\n{STEAL}\nEOF\n"
                            f"python3 /tmp/steal.py {run}/store.sock {run}/cache.sock")
    assert outcome.ok, out
    assert "BOUND" not in out and "REACHED" not in out, out
    assert out.count("refused") == 3 and out.count("unreachable") == 2, out
