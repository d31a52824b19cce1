"""A FastAPI app audited by Vigil: project routes, a stub bearer-token login, and SQLAlchemy change history.

    pip install -e '.[sdk,examples]'
    export VIGIL_URL=http://127.0.0.1:8000 VIGIL_API_KEY=vk_...     # a key with the ingest scope
    python examples/fastapi_app.py                                  # serves on http://127.0.0.1:8001

    curl -X POST http://127.0.0.1:8001/projects -H 'Authorization: Bearer ada' \
         -H 'Content-Type: application/json' -d '{"name": "Apollo", "budget": 100}'

Every POST, PATCH and DELETE becomes an activity event (action from the route's operationId, message from its
summary: "Ada Lovelace: Create a project"), and every row written to ``projects`` and ``members`` a ``change``
event with its before and after values, attributed to the same user. ``PORT`` sets the port,
``EXAMPLE_DATABASE_URL`` the app's own database (default: in memory), ``VIGIL_SPOOL_DIR`` the client's spool.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import ForeignKey, String, create_engine, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from vigil.sdk import Client
from vigil.sdk.asgi import VigilMiddleware
from vigil.sdk.sqlalchemy import track

# -- the authenticated user stub: "Authorization: Bearer ada" is Ada --------------------------------------


@dataclass
class User(BaseUser):
    id: str
    name: str
    email: str

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def identity(self) -> str:
        return self.id


USERS = {
    "ada": User("usr_ada", "Ada Lovelace", "ada@example.com"),
    "grace": User("usr_grace", "Grace Hopper", "grace@example.com"),
}


class BearerTokens(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        user = USERS.get(token) if scheme.lower() == "bearer" else None
        return (AuthCredentials(["authenticated"]), user) if user else None


def signed_in(request: Request) -> User:
    if not request.user.is_authenticated:
        raise HTTPException(401, "sign in: Authorization: Bearer ada")
    return request.user  # type: ignore[no-any-return]


def db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SignedIn = Annotated[User, Depends(signed_in)]
DB = Annotated[Session, Depends(db)]


# -- the app's own database ---------------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    budget: Mapped[int] = mapped_column(default=0)
    archived: Mapped[bool] = mapped_column(default=False)


class Member(Base):
    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))


class NewProject(BaseModel):
    name: str
    budget: int = 0


class ProjectChange(BaseModel):
    name: str | None = None
    budget: int | None = None


class NewMember(BaseModel):
    user_id: str
    role: str = "viewer"


def create_app(vigil: Client | None = None, database_url: str | None = None) -> FastAPI:
    """The app; its Vigil client comes from VIGIL_URL and VIGIL_API_KEY unless one is given."""
    if vigil is None:
        vigil = Client(
            os.environ["VIGIL_URL"], os.environ["VIGIL_API_KEY"], spool_dir=os.environ.get("VIGIL_SPOOL_DIR")
        )
    url = database_url or os.environ.get("EXAMPLE_DATABASE_URL", "sqlite://")
    engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine)
    tracker = track(sessions, vigil, models=[Project, Member])  # change history, by the request's user

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        tracker.remove()
        vigil.close()

    app = FastAPI(title="Projects (a Vigil example)", lifespan=lifespan)
    app.state.vigil = vigil
    app.state.engine = engine
    app.state.sessions = sessions

    @app.post("/projects", status_code=201, operation_id="project.created", summary="Create a project")
    def create_project(body: NewProject, user: SignedIn, s: DB) -> dict[str, Any]:
        project = Project(name=body.name, budget=body.budget)
        s.add(project)
        s.commit()
        return {"id": project.id, "name": project.name}

    @app.get("/projects/{project_id}", operation_id="project.viewed", summary="View a project")
    def get_project(project_id: int, s: DB) -> dict[str, Any]:
        project = s.get(Project, project_id)
        if project is None:
            raise HTTPException(404, "no such project")
        return {"id": project.id, "name": project.name, "budget": project.budget}

    @app.patch("/projects/{project_id}", operation_id="project.updated", summary="Change a project")
    def change_project(project_id: int, body: ProjectChange, user: SignedIn, s: DB) -> dict[str, Any]:
        project = s.get(Project, project_id)
        if project is None:
            raise HTTPException(404, "no such project")
        for field, value in body.model_dump(exclude_none=True).items():
            setattr(project, field, value)
        s.commit()
        return {"id": project.id, "name": project.name, "budget": project.budget}

    @app.delete(
        "/projects/{project_id}", status_code=204, operation_id="project.deleted", summary="Delete a project"
    )
    def delete_project(project_id: int, user: SignedIn, s: DB) -> None:
        project = s.get(Project, project_id)
        if project is None:
            raise HTTPException(404, "no such project")
        s.delete(project)
        s.commit()

    @app.post(
        "/projects/{project_id}/members",
        status_code=201,
        operation_id="project.member.added",
        summary="Add a project member",
    )
    def add_member(project_id: int, body: NewMember, user: SignedIn, s: DB) -> dict[str, Any]:
        if s.get(Project, project_id) is None:
            raise HTTPException(404, "no such project")
        member = Member(project_id=project_id, user_id=body.user_id, role=body.role)
        s.add(member)
        s.commit()
        return {"id": member.id, "user_id": member.user_id, "role": member.role}

    @app.post("/projects/archive", operation_id="projects.archived", summary="Archive every project")
    def archive_all(user: SignedIn, s: DB) -> dict[str, Any]:
        # one bulk UPDATE; the tracker still records one change event per row
        result = s.execute(update(Project).where(Project.archived.is_(False)).values(archived=True))
        s.commit()
        return {"archived": result.rowcount}  # type: ignore[attr-defined]

    @app.get("/projects")
    def list_projects(s: DB) -> list[dict[str, Any]]:
        return [{"id": p.id, "name": p.name} for p in s.scalars(select(Project))]

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True}

    app.add_middleware(AuthenticationMiddleware, backend=BearerTokens())
    app.add_middleware(
        VigilMiddleware,
        client=vigil,
        openapi=app.openapi,  # read at the first request, once every route is defined
        body_fields={"POST /projects": ["name"], "POST /projects/{project_id}/members": ["role"]},
    )
    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8001")))
