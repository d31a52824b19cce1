"""Settings of the Django example: Vigil's middleware, first, and a stub bearer-token login.

    pip install -e '.[sdk,examples]'
    export VIGIL_URL=http://127.0.0.1:8000 VIGIL_API_KEY=vk_...     # a key with the ingest scope
    python examples/django_app/manage.py runserver 127.0.0.1:8003

    curl -X POST http://127.0.0.1:8003/projects/ -H 'Authorization: Bearer ada' \
         -H 'Content-Type: application/json' -d '{"name": "Apollo"}'

Every POST, PATCH and DELETE becomes an event named from the route (``projects.create``,
``projects.members.create``, ``projects.update``, ``projects.delete``), with ``request.user`` as the actor.
"""

import os

SECRET_KEY = "an example only, never deployed"  # noqa: S105
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "vigil_example.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

MIDDLEWARE = [
    "vigil.sdk.django.VigilMiddleware",  # outermost: it sees every answer, the denied ones too
    "vigil_example.auth.BearerTokenMiddleware",
]

VIGIL = {
    "url": os.environ.get("VIGIL_URL"),
    "api_key": os.environ.get("VIGIL_API_KEY"),
    "spool_dir": os.environ.get("VIGIL_SPOOL_DIR"),
    "body_fields": {"POST /projects/": ["name"], "POST /projects/{project_id}/members/": ["role"]},
}
