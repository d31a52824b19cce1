"""The admin API for keys: list, create, rotate and revoke.

A key with the ``admin`` scope manages its own tenant's keys and no other's: another tenant's key id is a 404,
the same answer as an id that does not exist. An admin key of the platform tenant (``vigil``) manages every
tenant's. Each change is recorded in the platform log with the calling key as the actor, before the answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import msgspec
from litestar import Request, get, post
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import FromPath, Parameter

from vigil import keys as lifecycle
from vigil.auth import parse_scopes
from vigil.errors import Forbidden, InvalidRequest
from vigil.store.base import PLATFORM_TENANT, SCOPES, ApiKey
from vigil.web.common import BEARER, errors
from vigil.web.paging import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor, page_of

if TYPE_CHECKING:
    from vigil.web.app import App

_KEY_ID = r"^[0-9a-f]{16}$"
_MAX_BODY = 4096
S = TypeVar("S", bound=msgspec.Struct)


class KeyOut(msgspec.Struct):
    """A key as the API shows it: never its secret or its hash."""

    key_id: str
    tenant: str
    name: str
    scopes: list[str]
    created_at: str
    last_used_at: str | None  # to the minute: uses are written at most once a minute per key
    rotated_at: str | None
    previous_secret_until: str | None  # while the secret a rotation replaced still works
    revoked_at: str | None
    revoked: bool


class KeyWithSecret(msgspec.Struct):
    """A key and its full text ``vk_<id>_<secret>``, shown this once: Vigil keeps only a hash."""

    key: KeyOut
    secret: str


class KeyPage(msgspec.Struct):
    """A page of keys, by tenant then creation; ``next_cursor`` (null on the last page) goes in ``?cursor=``."""

    data: list[KeyOut]
    next_cursor: str | None


class KeyIn(msgspec.Struct, forbid_unknown_fields=True):
    scopes: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=16)]], msgspec.Meta(min_length=1, max_length=len(SCOPES))
    ]
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    tenant: Annotated[str, msgspec.Meta(max_length=63)] | None = None  # platform admin keys only


class RotateIn(msgspec.Struct, forbid_unknown_fields=True):
    overlap: Annotated[str, msgspec.Meta(max_length=16)] = "24h"  # how long the old secret keeps working


def _body_operation(struct: type[msgspec.Struct], required: bool) -> type[Operation]:
    """An operation whose JSON body is ``struct`` as msgspec describes it (unknown fields refused), because the
    route reads its body itself, after authentication."""
    _, components = msgspec.json.schema_components([struct])
    schema: Any = components[struct.__name__]  # a plain JSON Schema dict: the spec objects pass it through

    @dataclass
    class _Operation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=required, content={"application/json": OpenAPIMediaType(schema=schema)}
            )

    return _Operation


async def _body(request: Request[Any, Any, Any], struct: type[S], default: S | None) -> S:
    raw = await request.body()
    if not raw.strip():
        if default is None:
            raise InvalidRequest("a JSON body is required")
        return default
    try:
        return msgspec.json.decode(raw, type=struct)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"malformed JSON body: {exc}") from None


def _position(key: ApiKey) -> tuple[str, str, str]:
    return (key.tenant, key.created_at, key.key_id)


def _out(key: ApiKey) -> KeyOut:
    return msgspec.convert(lifecycle.describe(key), KeyOut)


def key_routes(app: App) -> list[Any]:
    def scope_of(key: ApiKey) -> int | None:
        """The tenant whose keys ``key`` may manage; None for the platform tenant's (all of them)."""
        return None if key.tenant == PLATFORM_TENANT else key.tenant_id

    async def apply(request: Request[Any, Any, Any], change: lifecycle.KeyChange) -> None:
        app.keyring.forget(change.key.key_id)  # this process sees the change on the very next request
        if change.event is not None:
            await app.store.append_async(await app.platform_id(), [change.event])

    def ip(request: Request[Any, Any, Any]) -> str | None:
        return request.client.host if request.client else None

    @get(
        "/v1/keys",
        summary="List keys",
        tags=["keys"],
        security=BEARER,
        responses=errors(400, 401, 403, 404, 429),
    )
    async def list_keys(
        request: Request[Any, Any, Any],
        tenant: Annotated[
            str | None, Parameter(max_length=63, description="Only this tenant (platform admin keys only)")
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> KeyPage:
        """The keys of the caller's tenant (``admin``), with when each was created, last used and revoked, a
        page at a time (pass ``next_cursor`` as ``?cursor=``). An admin key of the platform tenant lists every
        tenant's, or one with ``?tenant=``."""
        key = app.auth(request, "admin")
        within = scope_of(key)
        if within is None:
            within = None if tenant is None else (await asyncio.to_thread(app.store.get_tenant, tenant)).id
        elif tenant is not None and tenant != key.tenant:
            raise Forbidden("a tenant's admin key lists only its own tenant's keys")
        # A tenant holds few keys: the store hands them all and the page is cut here, in a total order (a key id
        # breaks a tie of creation times), so pages neither skip nor repeat a key while keys are created.
        found = sorted(await asyncio.to_thread(app.store.list_keys, within), key=_position)
        filters = {"tenant": within}
        if cursor:
            after = tuple(
                str(p) for p in decode_cursor(cursor, "keys", key.tenant_id, filters, (str, str, str))
            )
            found = [k for k in found if _position(k) > after]
        page, more = page_of(found, limit)
        app.record_access(key, "api_keys.listed", {"tenant": tenant or key.tenant, "count": len(page)})
        nxt = encode_cursor("keys", key.tenant_id, filters, _position(page[-1])) if more else None
        return KeyPage([_out(k) for k in page], nxt)

    @post(
        "/v1/keys",
        summary="Create a key",
        tags=["keys"],
        security=BEARER,
        status_code=201,
        operation_class=_body_operation(KeyIn, required=True),
        request_max_body_size=_MAX_BODY,
        responses=errors(400, 401, 403, 404, 413, 429),
    )
    async def create_key(request: Request[Any, Any, Any]) -> KeyWithSecret:
        """A new key of the caller's tenant; the answer holds its secret, shown this once (``admin``)."""
        key = app.auth(request, "admin")
        data = await _body(request, KeyIn, None)
        scopes = parse_scopes(data.scopes)
        if data.tenant is not None and data.tenant != key.tenant and scope_of(key) is not None:
            raise Forbidden("a tenant's admin key creates keys only for its own tenant")
        tenant = await asyncio.to_thread(app.store.get_tenant, data.tenant or key.tenant)
        change = await asyncio.to_thread(
            lifecycle.create, app.store, tenant, scopes, data.name, lifecycle.key_actor(key), ip(request)
        )
        await apply(request, change)
        return KeyWithSecret(_out(change.key), change.secret or "")

    @post(
        "/v1/keys/{key_id:str}/revoke",
        summary="Revoke a key",
        tags=["keys"],
        security=BEARER,
        status_code=200,
        responses=errors(400, 401, 403, 404, 429),
    )
    async def revoke_key(request: Request[Any, Any, Any], key_id: FromPath[str]) -> KeyOut:
        """Revoke a key of the caller's tenant (``admin``): every server refuses it within a second, this one
        at once. Revoking a revoked key changes nothing."""
        key = app.auth(request, "admin")
        _check_id(key_id)
        change = await asyncio.to_thread(
            lifecycle.revoke, app.store, key_id, lifecycle.key_actor(key), scope_of(key), ip(request)
        )
        await apply(request, change)
        return _out(change.key)

    @post(
        "/v1/keys/{key_id:str}/rotate",
        summary="Rotate a key",
        tags=["keys"],
        security=BEARER,
        status_code=200,
        operation_class=_body_operation(RotateIn, required=False),
        request_max_body_size=_MAX_BODY,
        responses=errors(400, 401, 403, 404, 409, 413, 429),
    )
    async def rotate_key(request: Request[Any, Any, Any], key_id: FromPath[str]) -> KeyWithSecret:
        """A new secret for a key of the caller's tenant (``admin``), shown this once; the old secret keeps
        working for ``overlap`` (default 24h, at most 30d), then is refused. 409 for a revoked key."""
        key = app.auth(request, "admin")
        _check_id(key_id)
        overlap = lifecycle.parse_overlap((await _body(request, RotateIn, RotateIn())).overlap)
        change = await asyncio.to_thread(
            lifecycle.rotate, app.store, key_id, overlap, lifecycle.key_actor(key), scope_of(key), ip(request)
        )
        await apply(request, change)
        return KeyWithSecret(_out(change.key), change.secret or "")

    return [list_keys, create_key, revoke_key, rotate_key]


def _check_id(key_id: str) -> None:
    if len(key_id) != 16 or any(c not in "0123456789abcdef" for c in key_id):
        raise InvalidRequest("a key id is 16 lower-case hex digits (the part after vk_ in the key)")
