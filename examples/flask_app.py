"""A Flask app audited by Vigil: project routes and a stub bearer-token login that sets ``flask.g.user``.

    pip install -e '.[sdk,examples]'
    export VIGIL_URL=http://127.0.0.1:8000 VIGIL_API_KEY=vk_...     # a key with the ingest scope
    python examples/flask_app.py                                    # serves on http://127.0.0.1:8002

    curl -X POST http://127.0.0.1:8002/projects -H 'Authorization: Bearer ada' \
         -H 'Content-Type: application/json' -d '{"name": "Apollo"}'

Every POST, PATCH and DELETE becomes an event: ``projects.create``, ``projects.members.create``,
``projects.update``, ``projects.delete`` (named from the route and the method), with the user from ``g.user``,
the outcome from the status, and the project as the target. ``PORT`` sets the port, ``VIGIL_SPOOL_DIR`` the
client's spool.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

from flask import Flask, abort, g, request

from vigil.sdk import Client
from vigil.sdk.wsgi import VigilMiddleware


@dataclass
class User:
    id: str
    name: str
    email: str


USERS = {
    "ada": User("usr_ada", "Ada Lovelace", "ada@example.com"),
    "grace": User("usr_grace", "Grace Hopper", "grace@example.com"),
}


def create_app(vigil: Client | None = None) -> Flask:
    """The app; the middleware makes its Vigil client from VIGIL_URL and VIGIL_API_KEY unless one is given."""
    app = Flask(__name__)
    projects: dict[int, dict[str, Any]] = {}
    ids = itertools.count(1)

    @app.before_request
    def sign_in() -> None:
        # the authenticated user stub: "Authorization: Bearer ada" is Ada
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        g.user = USERS.get(token) if scheme.lower() == "bearer" else None

    def signed_in() -> User:
        if g.user is None:
            abort(401)
        return g.user  # type: ignore[no-any-return]

    def project(project_id: int) -> dict[str, Any]:
        found = projects.get(project_id)
        if found is None:
            abort(404)
        return found

    @app.post("/projects")
    def create_project() -> tuple[dict[str, Any], int]:
        signed_in()
        body = request.get_json(silent=True) or {}
        if not isinstance(body.get("name"), str):
            abort(400)
        new = {"id": next(ids), "name": body["name"], "members": {}}
        projects[new["id"]] = new
        return {"id": new["id"], "name": new["name"]}, 201

    @app.get("/projects/<int:project_id>")
    def get_project(project_id: int) -> dict[str, Any]:
        return project(project_id)

    @app.patch("/projects/<int:project_id>")
    def change_project(project_id: int) -> dict[str, Any]:
        signed_in()
        found = project(project_id)
        found.update({k: v for k, v in (request.get_json(silent=True) or {}).items() if k == "name"})
        return found

    @app.delete("/projects/<int:project_id>")
    def delete_project(project_id: int) -> tuple[str, int]:
        signed_in()
        projects.pop(project(project_id)["id"])
        return "", 204

    @app.post("/projects/<int:project_id>/members")
    def add_member(project_id: int) -> tuple[dict[str, Any], int]:
        signed_in()
        body = request.get_json(silent=True) or {}
        project(project_id)["members"][body.get("user_id")] = body.get("role", "viewer")
        return {"user_id": body.get("user_id"), "role": body.get("role", "viewer")}, 201

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    options: dict[str, Any] = {
        "body_fields": {"POST /projects": ["name"], "POST /projects/{project_id}/members": ["role"]},
    }
    if vigil is None:
        middleware = VigilMiddleware(
            app,
            url=os.environ["VIGIL_URL"],
            api_key=os.environ["VIGIL_API_KEY"],
            spool_dir=os.environ.get("VIGIL_SPOOL_DIR"),
            **options,
        )
    else:
        middleware = VigilMiddleware(app, client=vigil, **options)
    app.extensions["vigil"] = middleware  # middleware.client is the Vigil client, for the app's own events
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(os.environ.get("PORT", "8002")))
