"""A learner asks the forwarder for tags of a served lab's repository that no lab names (nginx:latest, every
python tag): the pull-through cache would fetch each from the upstream and keep it for ever, and a fresh
lab host has a fresh LABNB_IMAGE_TOTAL_MB, so the machine's registry disk would have no bound."""
from __future__ import annotations

import socket

import pytest

from webapp.config import Settings
from webapp.images import forwarder
from webapp.images.cache import Cache, named
from webapp.images.client import Registry

from test_forwarder_rules import DIGEST, MANIFEST, FakeRegistry, ask, head


@pytest.fixture
def pulling(tmp_path):
    """A forwarder for lab host "a" over a real ``Cache`` (a fake store and pull-through cache), the served
    labs naming nginx:1.27; the pull-through cache's data dir holds library/held:1 (the operator's pull)."""
    store = FakeRegistry({})
    upstream = FakeRegistry({"/v2/library/nginx/manifests/1.27": MANIFEST,
                             "/v2/library/nginx/manifests/latest": MANIFEST,
                             f"/v2/library/nginx/blobs/{DIGEST}": b"x", "/v2/library/held/manifests/1": MANIFEST})

    class Local:
        dir = str(tmp_path)
    (tmp_path / "cache/docker/registry/v2/repositories/library/held/_manifests/tags/1").mkdir(parents=True)
    cache = Cache(Registry(store.address), Registry(upstream.address), Local())
    fw = forwarder.Forwarder(Settings(), cache, named(["nginx:1.27"]))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    fw.serve("a", sock)
    yield sock.getsockname(), upstream
    fw.close()
    store.close()
    upstream.close()


def test_a_tag_no_lab_names_is_not_fetched_by_the_pull_through_cache(pulling):
    at, upstream = pulling
    assert ask(at, head("GET /v2/library/nginx/manifests/latest HTTP/1.1"))[0] == 404
    assert "/v2/library/nginx/manifests/latest" not in [path for _, path, _ in upstream.seen]


def test_what_labs_name_or_the_cache_holds_still_passes(pulling):
    at, _ = pulling
    assert ask(at, head("GET /v2/library/nginx/manifests/1.27 HTTP/1.1"))[0] == 200
    assert ask(at, head(f"GET /v2/library/nginx/manifests/{DIGEST} HTTP/1.1"))[0] == 404   # asked: not there
    assert ask(at, head(f"GET /v2/library/nginx/blobs/{DIGEST} HTTP/1.1"))[0] == 200
    assert ask(at, head("GET /v2/library/held/manifests/1 HTTP/1.1"))[0] == 200
