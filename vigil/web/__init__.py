"""The HTTP API (and, later, the web UI)."""

from vigil.web.app import create_app

__all__ = ["create_app"]
