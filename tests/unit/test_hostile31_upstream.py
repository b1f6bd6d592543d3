"""``labnb image pull`` reads what the upstream sent through the pull-through cache: a hostile upstream's
manifest named blobs by "digests" that were paths (``sha256:../../../v2/_catalog``), sent on as they were
in the requests to the cache, or was no object at all (a traceback, not an error that says what)."""
from __future__ import annotations

import json
import re

import pytest

from webapp.images import admin
from webapp.images.cache import Cache
from webapp.images.client import Registry
from webapp.labhost.base import LabHostError

from test_forwarder_rules import FakeRegistry

ASKED = re.compile(r"/v2/labnbtest/x/(manifests/1|(manifests|blobs)/sha256:[0-9a-f]{64})\Z")


@pytest.mark.parametrize("manifest", [
    {"schemaVersion": 2, "config": {"digest": "sha256:../../../v2/_catalog", "size": 1}, "layers": []},
    {"schemaVersion": 2, "config": {"digest": "sha256:" + "a" * 64, "size": 1},
     "layers": [{"digest": "sha256:" + "b" * 64 + "/../../../../v2/_catalog"}]},
    {"schemaVersion": 2, "config": "no", "layers": None},
    [1, 2, 3],
])
def test_a_hostile_upstreams_manifest_is_refused_before_anything_is_asked(manifest):
    upstream = FakeRegistry({"/v2/labnbtest/x/manifests/1": json.dumps(manifest).encode()})
    try:
        cache = Cache(Registry("unix:/nonexistent"), Registry(upstream.address), None)
        with pytest.raises(LabHostError) as refused:
            admin.pull(cache, "labnbtest/x:1", lambda _: None)
        assert "labnbtest/x:1" in str(refused.value)
        assert all(ASKED.match(path) for _, path, _ in upstream.seen), upstream.seen
    finally:
        upstream.close()
