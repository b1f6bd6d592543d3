"""labnb: a web lab notebook server. ``create_app`` is the Flask app factory."""
from __future__ import annotations

from flask import Flask, render_template

from .config import Settings


def create_app(settings: Settings | None = None, pool=None) -> Flask:
    """The Flask app; ``pool`` hands out lab hosts (a labhost.pool.Pool)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.config["LABNB"] = settings
    app.extensions["labnb.pool"] = pool

    @app.get("/")
    def index():
        from .labhost import reaper

        hosts = reaper.list_all(settings) if settings.backend == "sandbox" else []
        waiting = pool.waiting() if pool else 0
        return render_template("index.html", hosts=hosts, waiting=waiting, settings=settings)

    return app
