"""Static files under versioned URLs that browsers may keep.

Every file under ``static/`` is hashed once, when the app is made; ``url_for('static', filename=...)``
then adds its hash (``/static/labnb.js?v=3f2a1c9e04b7``), in templates and code alike. A request whose
``v`` is the file's hash gets ``Cache-Control: private, max-age=31536000, immutable``: the browser keeps
it a year without asking again, and the next version of the file has another URL. Any other request (no
``v``, a wrong or an old one) is answered as before, revalidated on every load: no URL is kept with
other content than its hash names (a page from before a restart asks for the old hash, and gets the new
file).

``private``: the open server serves static files to holders of the session cookie only
(webapp/guard/auth.py), so no shared cache may keep them (a workshop's serves them to anyone, for its join
page: every file under ``static/`` is public). A kept response carries neither the renewed session cookie nor
``Vary: Cookie``: the cookie is signed anew on every request, and a browser would not reuse a response
that varies with it (``KeepableSessions``).

A file changed while the server runs keeps the hash it had at start, so its URL is not kept any more (its
time or size is not what was hashed): the new content under the old hash, kept a year, would outlive a restart
that brings the old content back. Restart the server after changing ``static/``.
"""
from __future__ import annotations

import hashlib
import os

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface

KEEP = "private, max-age=31536000, immutable"   # a year: as long as browsers keep anything
HASH_CHARS = 12


def _files(folder: str):
    """Each file under ``folder``: its path there with ``/`` (as in ``url_for('static', filename=...)``), and
    its path."""
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            yield os.path.relpath(path, folder).replace(os.sep, "/"), path


def hash_files(folder: str) -> dict[str, str]:
    """Each file under ``folder``, by its path there with ``/``: the first ``HASH_CHARS`` hex digits of its
    SHA-256."""
    hashes = {}
    for name, path in _files(folder):
        with open(path, "rb") as f:
            hashes[name] = hashlib.file_digest(f, "sha256").hexdigest()[:HASH_CHARS]
    return hashes


def _stamp(path: str) -> tuple[int, int]:
    """What changes when a file is written: its modification time and size."""
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


class Assets:
    """The static folder's hashes (``hash_files``), and the hooks that version its URLs and let browsers
    keep what is asked for by its version (``init_app``)."""

    def __init__(self, folder: str):
        self.folder = folder
        # stamped before hashing: a file written meanwhile is never kept under the hash of either content
        self.stamps = {name: _stamp(path) for name, path in _files(folder)}
        self.hashes = hash_files(folder)

    def init_app(self, app: Flask) -> None:
        app.url_defaults(self.version)
        app.after_request(self.keep)
        app.session_interface = KeepableSessions()
        app.extensions["labnb.assets"] = self

    def version(self, endpoint: str, values: dict) -> None:
        """``url_for``'s defaults: a static file's URL carries its hash (unless one is given)."""
        if endpoint == "static" and "v" not in values:
            digest = self.hashes.get(values.get("filename", ""))
            if digest:
                values["v"] = digest

    def kept(self, filename: str, version: str | None) -> bool:
        """Whether a request for ``filename`` at ``version`` may be kept: the version is its hash, and the file
        is still the one hashed."""
        if version is None or self.hashes.get(filename) != version:
            return False
        try:
            return _stamp(os.path.join(self.folder, filename)) == self.stamps.get(filename)
        except OSError:   # gone since
            return False

    def keep(self, response: Response) -> Response:
        if (request.endpoint == "static" and response.status_code in (200, 304)   # 304: still kept
                and self.kept((request.view_args or {}).get("filename", ""), request.args.get("v"))):
            response.headers["Cache-Control"] = KEEP
        return response


class KeepableSessions(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, except that a response marked immutable (``Assets.keep``) is the
    same for every holder of the cookie: it renews no cookie, and does not vary with it."""

    def save_session(self, app: Flask, session, response: Response) -> None:
        if not response.cache_control.immutable:
            super().save_session(app, session, response)
