"""labnb: a web lab notebook server. ``create_app`` (webapp/app.py) builds it; docs/architecture.md maps the package."""
from .app import create_app

__all__ = ["create_app"]
