"""``/network.json`` says when its picture is shared, an earlier read (webapp/guard/sharing.py), so that a
page which asked after a run ended asks again (static/network.js) rather than keep a picture from before
the run. In process, on a fake lab host."""
from __future__ import annotations

from webapp.guard import sharing


def test_a_picture_read_for_someone_else_just_before_is_marked_shared(http, clock):
    clock.into(sharing)   # no time passes between the two asks, however slow the machine
    first = http.get("/network.json")
    assert first.status_code == 200 and "X-Labnb-Shared" not in first.headers
    assert first.get_json()["namespaces"][0]["kind"] == "lab host"
    again = http.get("/network.json")   # within the interval between two reads of one lab host
    assert again.status_code == 200 and again.headers["X-Labnb-Shared"] == "1"
    assert again.get_json() == first.get_json()
    clock.advance(1)   # past the interval: read anew
    assert "X-Labnb-Shared" not in http.get("/network.json").headers
