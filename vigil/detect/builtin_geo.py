"""The built-in rules that need to know where an address is: impossible travel and a new country."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from vigil.detect import builtin_examples as ex
from vigil.detect.builtin_base import DAY, HOUR, MIN, Builtin, Params, default_params
from vigil.detect.fields import actor as _actor
from vigil.detect.fields import ip as _ip
from vigil.detect.fields import login as _login
from vigil.detect.fields import who as _who
from vigil.detect.geo import Geo, Place, distance_km, parse_networks
from vigil.detect.rules import Ev, Hit, RuleInfo
from vigil.text import plural


class _GeoRule(Builtin):
    """A rule that needs to know where an address is."""

    def __init__(self, geo: Geo | None, params: Params = default_params) -> None:
        super().__init__(params)
        self.geo = geo

    def fresh(self) -> Builtin:
        return type(self)(self.geo, self._params)

    def place(self, ev: Ev) -> Place | None:
        ip = _ip(ev)
        return self.geo.lookup(ip) if ip and self.geo is not None else None


class ImpossibleTravel(_GeoRule):
    info = RuleInfo(
        id="vigil.impossible_travel",
        title="Impossible travel",
        severity="P1",
        techniques=("T1078.004",),
        description="Two sign-ins of one user from places too far apart for the time between them.",
        window_us=DAY,
        suppress_us=DAY,
        runbook="Ask the user which sign-in was theirs; revoke the other session and reset credentials.",
        requires=("geo",),
        params={"min_km": 500, "min_kmh": 900, "trusted_networks": []},
        examples=ex.IMPOSSIBLE_TRAVEL,
    )
    actions = frozenset({"user.login"})

    def __init__(self, geo: Geo | None, params: Params = default_params) -> None:
        super().__init__(geo, params)
        self.last: dict[tuple[str, str], tuple[Ev, Place]] = {}

    def hits(self, ev: Ev) -> list[Hit]:
        if not _login(ev, "success") or _actor(ev).get("type", "user") != "user":
            return []
        place = self.place(ev)
        if place is None or place.lat is None:
            return []
        p = self.p(ev.tenant)
        if _trusted(_ip(ev), p["trusted_networks"]):
            return []
        key = (ev.tenant, str(_actor(ev).get("id", "")))
        before = self.last.get(key)
        self.last[key] = (ev, place)
        if before is None or _ip(before[0]) == _ip(ev) or ev.us - before[0].us > self.info.window_us:
            return []
        km = distance_km(before[1], place)
        if km is None or km < float(p["min_km"]):
            return []
        hours = max(ev.us - before[0].us, 1) / HOUR
        speed = km / hours
        if speed < float(p["min_kmh"]):
            return []
        return [
            self.hit(
                ev,
                {"user": key[1]},
                [before[0], ev],
                f"{_who(ev)} signed in from {_where(before[1])}, then {_where(place)} {_ago(ev.us - before[0].us)} "
                f"later ({km:,.0f} km, {speed:,.0f} km/h)",
            )
        ]

    def sweep(self, now_us: int) -> None:
        self.last = {k: v for k, v in self.last.items() if v[0].us >= now_us - self.info.window_us}


class NewCountry(_GeoRule):
    info = RuleInfo(
        id="vigil.new_country",
        title="Sign-in from a new country",
        severity="P3",
        techniques=("T1078",),
        description="A user with a sign-in history signs in from a country never seen for them.",
        window_us=30 * DAY,
        suppress_us=DAY,
        runbook="Confirm the trip with the user; if they did not travel, revoke the session and reset credentials.",
        requires=("geo",),
        params={"trusted_networks": []},
        examples=ex.NEW_COUNTRY,
    )
    actions = frozenset({"user.login"})

    def __init__(self, geo: Geo | None, params: Params = default_params) -> None:
        super().__init__(geo, params)
        self.countries: dict[tuple[str, str], dict[str, int]] = {}

    def hits(self, ev: Ev) -> list[Hit]:
        if not _login(ev, "success") or _actor(ev).get("type", "user") != "user":
            return []
        place = self.place(ev)
        if place is None or not place.country or _trusted(_ip(ev), self.p(ev.tenant)["trusted_networks"]):
            return []
        key = (ev.tenant, str(_actor(ev).get("id", "")))
        seen = self.countries.setdefault(key, {})
        fresh = bool(seen) and place.country not in seen
        seen[place.country] = ev.us
        if not fresh:
            return []
        known = ", ".join(sorted(c for c in seen if c != place.country))
        return [
            self.hit(
                ev,
                {"user": key[1], "country": place.country},
                [ev],
                f"{_who(ev)} signed in from {_where(place)}; before only from {known}",
            )
        ]

    def sweep(self, now_us: int) -> None:
        horizon = now_us - self.info.window_us
        for key in list(self.countries):
            kept = {c: us for c, us in self.countries[key].items() if us >= horizon}
            if kept:
                self.countries[key] = kept
            else:
                del self.countries[key]


@functools.lru_cache(maxsize=4096)
def _nets(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return parse_networks(list(spec))


def _trusted(ip: str, networks: Sequence[str] | str) -> bool:
    if not networks:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    spec = tuple(networks.split(",")) if isinstance(networks, str) else tuple(networks)
    return any(addr in net for net in _nets(spec))


def _where(place: Place) -> str:
    return f"{place.city}, {place.country}" if place.city else place.country or "somewhere unknown"


def _ago(us: int) -> str:
    minutes = us // MIN
    return plural(minutes, "minute") if minutes < 120 else plural(minutes // 60, "hour")
