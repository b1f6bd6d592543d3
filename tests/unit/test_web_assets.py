"""Static files under versioned URLs (webapp/web/assets.py): each file's URL carries its content's hash,
a request by that hash is kept a year (with no cookie and no Vary: Cookie, so that the browser can reuse
it), and any other is revalidated as before."""
from __future__ import annotations

import hashlib
import re

import pytest
from flask import Flask, session, url_for

from apps import LAB, browser
from webapp.web.assets import HASH_CHARS, KEEP, Assets, hash_files


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "vendor" / "lib").mkdir(parents=True)
    (tmp_path / "page.js").write_bytes(b"console.log(1);\n")
    (tmp_path / "vendor" / "lib" / "lib.js").write_bytes(b"var lib;\n")
    (tmp_path / "twin.js").write_bytes(b"var lib;\n")
    return tmp_path


@pytest.fixture
def site(folder):
    """A Flask app serving ``folder`` with a permanent session, as labnb's does (its Guard reads the
    session on every request)."""
    app = Flask(__name__, static_folder=str(folder), static_url_path="/static")
    app.secret_key = b"k" * 32
    Assets(str(folder)).init_app(app)

    @app.before_request
    def signed_in():
        session.permanent = True
        session.setdefault("learner", "someone")
    return app


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def test_each_file_is_named_by_its_path_with_slashes_and_hashed_by_its_content(folder):
    hashes = hash_files(str(folder))
    assert hashes == {"page.js": sha(b"console.log(1);\n"), "vendor/lib/lib.js": sha(b"var lib;\n"),
                      "twin.js": sha(b"var lib;\n")}
    (folder / "page.js").write_bytes(b"console.log(2);\n")
    assert hash_files(str(folder))["page.js"] == sha(b"console.log(2);\n")


def test_url_for_a_static_file_carries_its_hash(site):
    hashes = hash_files(site.static_folder)
    with site.test_request_context():
        lib = url_for("static", filename="vendor/lib/lib.js")
        assert lib == f"/static/vendor/lib/lib.js?v={hashes['vendor/lib/lib.js']}"
        assert url_for("static", filename="missing.js") == "/static/missing.js"   # no file, no version
        assert url_for("static", filename="page.js", v="given") == "/static/page.js?v=given"


def test_a_request_by_the_files_hash_is_kept_without_the_cookie(site):
    http = site.test_client()
    url = f"/static/page.js?v={sha(b'console.log(1);' + bytes([10]))}"
    r = http.get(url)
    assert r.status_code == 200 and r.headers["Cache-Control"] == KEEP
    assert "Set-Cookie" not in r.headers and "Vary" not in r.headers
    again = http.get(url, headers={"If-None-Match": r.headers["ETag"]})   # a revalidation stays kept
    assert again.status_code == 304 and again.headers["Cache-Control"] == KEEP


@pytest.mark.parametrize("url", ["/static/page.js", "/static/page.js?v=", "/static/page.js?v=0123456789ab",
                                 f"/static/twin.js?v={sha(b'nothing')}", "/static/vendor/lib/../../page.js?v=x"])
def test_any_other_request_is_revalidated_as_before(site, url):
    r = site.test_client().get(url)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-cache"
    assert "Set-Cookie" in r.headers and "Cookie" in r.headers["Vary"]


def test_a_missing_file_is_not_kept(site):
    r = site.test_client().get("/static/missing.js?v=" + sha(b""))
    assert r.status_code == 404 and r.headers.get("Cache-Control") != KEEP


def test_labnbs_pages_name_static_files_by_their_hash(app):
    html = browser(app).get(f"/labs/{LAB}").text
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', html) + re.findall(r'"(/static/[^"]+)"', html)
    assert urls and all(re.fullmatch(r"/static/[\w./-]+\?v=[0-9a-f]{%d}" % HASH_CHARS, u) for u in urls), urls
    assert any("vendor/xterm/xterm.js" in u for u in urls)   # in the list of what panels load (#labnb-needs)
