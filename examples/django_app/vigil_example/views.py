"""Projects, kept in memory: enough routes to show what the middleware records."""

import itertools
import json

from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse

PROJECTS: dict[int, dict] = {}
_ids = itertools.count(1)


def _body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _denied() -> JsonResponse:
    return JsonResponse({"error": "sign in: Authorization: Bearer ada"}, status=401)


def projects(request):
    if request.method == "GET":
        return JsonResponse({"projects": list(PROJECTS.values())})
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    if not request.user.is_authenticated:
        return _denied()
    name = _body(request).get("name")
    if not isinstance(name, str):
        return JsonResponse({"error": "name is required"}, status=400)
    new = {"id": next(_ids), "name": name, "members": {}}
    PROJECTS[new["id"]] = new
    return JsonResponse({"id": new["id"], "name": name}, status=201)


def project(request, project_id: int):
    found = PROJECTS.get(project_id)
    if request.method not in ("GET", "PATCH", "DELETE"):
        return HttpResponseNotAllowed(["GET", "PATCH", "DELETE"])
    if request.method != "GET" and not request.user.is_authenticated:
        return _denied()
    if found is None:
        return JsonResponse({"error": "no such project"}, status=404)
    if request.method == "PATCH":
        name = _body(request).get("name")
        if isinstance(name, str):
            found["name"] = name
    elif request.method == "DELETE":
        del PROJECTS[project_id]
        return HttpResponse(status=204)
    return JsonResponse(found)


def members(request, project_id: int):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not request.user.is_authenticated:
        return _denied()
    found = PROJECTS.get(project_id)
    if found is None:
        return JsonResponse({"error": "no such project"}, status=404)
    body = _body(request)
    found["members"][str(body.get("user_id"))] = body.get("role", "viewer")
    return JsonResponse({"user_id": body.get("user_id"), "role": body.get("role", "viewer")}, status=201)


def healthz(request):
    return JsonResponse({"ok": True})
