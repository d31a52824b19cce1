"""The authenticated user stub: ``Authorization: Bearer ada`` makes ``request.user`` Ada."""

from dataclasses import dataclass


@dataclass
class User:
    pk: str
    first_name: str
    last_name: str
    email: str
    is_authenticated = True

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def get_username(self) -> str:
        return self.email


class AnonymousUser:
    pk = None
    is_authenticated = False


USERS = {
    "ada": User("usr_ada", "Ada", "Lovelace", "ada@example.com"),
    "grace": User("usr_grace", "Grace", "Hopper", "grace@example.com"),
}


class BearerTokenMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        request.user = USERS.get(token, AnonymousUser()) if scheme.lower() == "bearer" else AnonymousUser()
        return self.get_response(request)
