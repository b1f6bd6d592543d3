"""Image names are read as ``docker pull`` reads them, and a bad one is refused with its reason."""
from __future__ import annotations

import pytest

from webapp.images import names

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, registry, repository, tag, digest, shown, path", [
    ("nginx", "docker.io", "library/nginx", "latest", None, "nginx:latest", "library/nginx"),
    ("nginx:1.27", "docker.io", "library/nginx", "1.27", None, "nginx:1.27", "library/nginx"),
    ("docker.io/nginx:1.27", "docker.io", "library/nginx", "1.27", None, "nginx:1.27", "library/nginx"),
    ("index.docker.io/library/nginx", "docker.io", "library/nginx", "latest", None, "nginx:latest", "library/nginx"),
    ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None, "bitnami/redis:7", "bitnami/redis"),
    ("registry.example/team/tool:2", "registry.example", "team/tool", "2", None,
     "registry.example/team/tool:2", "registry.example/team/tool"),
    ("localhost:5000/tool", "localhost:5000", "tool", "latest", None, "localhost:5000/tool:latest",
     "localhost_5000/tool"),
    ("localhost/tool", "localhost", "tool", "latest", None, "localhost/tool:latest", "localhost.host/tool"),
    (f"nginx@{DIGEST}", "docker.io", "library/nginx", None, DIGEST, f"nginx@{DIGEST}", "library/nginx"),
    (f"nginx:1.27@{DIGEST}", "docker.io", "library/nginx", "1.27", DIGEST, f"nginx:1.27@{DIGEST}", "library/nginx"),
    ("a-b__c/e_f.g", "docker.io", "a-b__c/e_f.g", "latest", None, "a-b__c/e_f.g:latest", "a-b__c/e_f.g"),
])
def test_names_read_as_docker_reads_them(text, registry, repository, tag, digest, shown, path):
    ref = names.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert str(ref) == shown
    assert ref.path == path
    assert names.parse(str(ref)) == ref


def test_reference_is_the_digest_when_given():
    assert names.parse("nginx:1.27").reference == "1.27"
    assert names.parse(f"nginx:1.27@{DIGEST}").reference == DIGEST


@pytest.mark.parametrize("text, says", [
    ("", "empty"),
    ("Nginx", "lower case"),
    ("nginx:", "tag"),
    ("nginx:-bad", "tag"),
    ("nginx:" + "a" * 129, "tag"),
    ("nginx@sha256:abc", "digest"),
    ("nginx@sha256:" + "AB" * 32, "64 lower-case"),
    ("ng inx", "white space"),
    (" nginx", "white space"),
    ("-nginx", "not a valid part"),
    ("team//tool", "not a valid part"),
    ("team/tool/", "not a valid part"),
    ("registry.example:abc/tool", "registry host"),
    ("bad_host.example:/tool", "registry host"),
    (":1.27", "no repository"),
    ("a/" * 130 + "b", "longer than 255"),
    ("nginx/../etc", "not a valid part"),
])
def test_bad_names_are_refused_with_the_reason(text, says):
    with pytest.raises(ValueError, match=says):
        names.parse(text)
