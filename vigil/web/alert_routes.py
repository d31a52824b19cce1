"""Routes of the security console: the alerts detection raised, and the rules it runs."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import Parameter

from vigil.errors import Forbidden
from vigil.ingest.intake import rfc3339
from vigil.store.base import PLATFORM_TENANT
from vigil.store.detection import Alert, AlertQuery
from vigil.web.common import BEARER, errors
from vigil.web.paging import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor, page_of

if TYPE_CHECKING:
    from vigil.web.app import App


class Evidence(msgspec.Struct):
    seq: int
    id: str


class AlertOut(msgspec.Struct):
    """An alert: what fired, about what, on which events."""

    id: str
    tenant: str
    rule: str
    title: str
    severity: str
    techniques: list[str]
    summary: str
    group: dict[str, str]
    dedup_key: str
    evidence: list[Evidence]
    first_at: str
    last_at: str
    hits: int
    status: str
    created_at: str
    updated_at: str


class AlertPage(msgspec.Struct):
    """A page of alerts, newest first; ``next_cursor`` (null on the last page) goes in ``?cursor=``."""

    data: list[AlertOut]
    next_cursor: str | None


def alert_out(a: Alert, tenant: str) -> AlertOut:
    return AlertOut(
        id=a.id,
        tenant=tenant,
        rule=a.rule_id,
        title=a.title,
        severity=a.severity,
        techniques=list(a.techniques),
        summary=a.summary,
        group=a.group,
        dedup_key=a.dedup_key,
        evidence=[Evidence(s, i) for s, i in a.evidence],
        first_at=rfc3339(a.first_us),
        last_at=rfc3339(a.last_us),
        hits=a.hits,
        status=a.status,
        created_at=a.created_at,
        updated_at=a.updated_at,
    )


def alert_routes(app: App) -> list[Any]:
    @get(
        "/v1/alerts",
        summary="List alerts",
        tags=["alerts"],
        security=BEARER,
        responses=errors(400, 401, 403, 404),
    )
    async def list_alerts(
        request: Request[Any, Any, Any],
        tenant: Annotated[
            str | None, Parameter(max_length=63, description="Only this tenant (platform keys only)")
        ] = None,
        rule: Annotated[str | None, Parameter(max_length=200, description="Only this rule id")] = None,
        severity: Annotated[
            str | None, Parameter(pattern="^P[0-3]$", description="Only P0, P1, P2 or P3")
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> AlertPage:
        """Alerts, newest first, a page at a time (pass ``next_cursor`` as ``?cursor=``). A key of a customer
        tenant sees that tenant's alerts; a key of the platform tenant (``vigil``) sees every tenant's, or one with
        ``?tenant=``. Needs the ``security`` or ``auditor`` scope. Every listing is recorded in the platform log."""
        key = app.auth(request, "security", "auditor")
        if key.tenant == PLATFORM_TENANT:
            tenant_id = None if tenant is None else (await asyncio.to_thread(app.store.get_tenant, tenant)).id
        elif tenant is not None and tenant != key.tenant:
            raise Forbidden("a tenant's key lists only its own tenant's alerts")
        else:
            tenant_id = key.tenant_id
        filters = {"tenant": tenant_id, "rule": rule, "severity": severity}
        before = str(decode_cursor(cursor, "alerts", key.tenant_id, filters, (str,))[0]) if cursor else None
        query = AlertQuery(
            tenant_id=tenant_id, rule_id=rule, severity=severity, limit=limit + 1, before=before
        )
        alerts, more = page_of(await asyncio.to_thread(app.store.list_alerts, query), limit)
        slugs = {t.id: t.slug for t in await asyncio.to_thread(app.store.list_tenants)}
        app.record_access(
            key,
            "alerts.listed",
            {"tenant": tenant or key.tenant, "rule": rule, "severity": severity, "count": len(alerts)},
        )
        out = [alert_out(a, slugs.get(a.tenant_id, "?")) for a in alerts]
        nxt = encode_cursor("alerts", key.tenant_id, filters, [out[-1].id]) if more else None
        return AlertPage(out, nxt)

    return [list_alerts]
