"""The network picture over HTTP: only a learner's own lab host, as JSON and as an SVG that is safe to open."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import requests

from webapp.network import layout, svg

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("path", ["/network.json", "/network.svg"])
def test_anonymous_is_refused(web_server, path):
    r = requests.get(web_server.url + path, timeout=10)
    assert r.status_code == 403 and "labnb serve printed" in r.text


def test_a_learner_without_a_lab_host_is_told_why(web_server):
    http = web_server.learner()
    r = http.get(f"{web_server.url}/network.json", timeout=10)
    assert r.status_code == 409 and "open a lab" in r.json()["error"]


def test_the_learners_own_lab_host_as_json_and_svg(web_server, learner):
    r = learner.get(f"{web_server.url}/network.json", timeout=30)
    assert r.status_code == 200, r.text
    drawn = r.json()
    host = drawn["namespaces"][0]
    assert host["kind"] == "lab host" and {"lo", "ens33", "docker0"} <= {i["name"] for i in host["interfaces"]}
    r = learner.get(f"{web_server.url}/network.svg", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("image/svg+xml")
    assert r.headers["Content-Disposition"] == f'attachment; filename="network-{drawn["lab_host"]}.svg"'
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    root = ET.fromstring(r.content)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "lab host" in texts and "docker0 (bridge)" in texts and "192.168.118.137/24" in texts
    # another learner sees their own lab host, never this one
    other = web_server.learner()
    web_server.open_lab(other)
    assert other.get(f"{web_server.url}/network.json", timeout=30).json()["lab_host"] != drawn["lab_host"]


def test_the_svg_escapes_what_the_learner_named():
    """Names and addresses are the learner's text: they stay text in the SVG, whatever they hold."""
    hostile = '</text><script>alert(1)</script><text x="0">&amp;"\''
    iface = {"id": "n1-2", "index": 2, "name": hostile, "kind": "veth", "state": "UP", "mac": hostile, "mtu": 1500,
             "addresses": [hostile], "master": None, "peer": None}
    drawn = {"lab_host": hostile, "links": [], "notes": [],
             "namespaces": [{"id": "n0", "kind": "lab host", "label": "lab host", "members": [], "interfaces": []},
                            {"id": "n1", "kind": "netns", "label": hostile, "members": [], "interfaces": [iface]}]}
    layout.place(drawn)
    root = ET.fromstring(svg.render(drawn))
    assert not list(root.iter(f"{SVG}script"))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert hostile in texts and f"{hostile} (veth)" in texts
