"""Where an IP address is: the operator's MaxMind-format database (GeoLite2 / GeoIP2 City or Country), read with
``maxminddb``, and the great-circle distance between two places.

Vigil ships no GeoIP data (its licence is the operator's business). Without a database the geo detections are
disabled, and said to be at start and in ``vigil rules list``: never silently. The one exception is the demo:
``vigil demo`` writes a small database of its own made-up addresses beside its SQLite file, and the geo
detections use it when no database is configured (and say so), so the demo's planted attacks fire.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vigil.errors import ConfigError

if TYPE_CHECKING:
    from vigil.settings import Settings

EARTH_RADIUS_KM = 6371.0088
DEMO_GEOIP_SUFFIX = ".demo-geoip.mmdb"  # beside the demo's SQLite file: vigil.db -> vigil.db.demo-geoip.mmdb


@dataclass(frozen=True)
class Place:
    country: str  # ISO 3166-1 alpha-2, "" when the database does not say
    city: str
    lat: float | None
    lon: float | None


class Geo(Protocol):
    def lookup(self, ip: str) -> Place | None: ...


class StaticGeo:
    """Places from a fixed table of networks: what rule examples use (RFC 5737 documentation addresses)."""

    def __init__(self, table: dict[str, tuple[str, str, float, float]]) -> None:
        self.lookup = lru_cache(maxsize=65536)(self._lookup)
        self._table = [
            (ipaddress.ip_network(net), Place(cc, city, lat, lon))
            for net, (city, cc, lat, lon) in table.items()
        ]

    def _lookup(self, ip: str) -> Place | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        return next((place for net, place in self._table if addr in net), None)


def example_geo() -> StaticGeo:
    """The map rule examples are written against: the demo's cities on RFC 5737 documentation networks."""
    from vigil.demo.tables import DEMO_GEO

    return StaticGeo(
        {n: g for n, g in DEMO_GEO.items() if n.startswith(("192.0.2.", "198.51.100.", "203.0.113."))}
    )


class GeoIP:
    """Look-ups in one MaxMind database file, cached (sign-ins repeat their addresses)."""

    def __init__(self, path: str | Path) -> None:
        try:
            import maxminddb
        except ImportError:  # pragma: no cover - the [sigma] extra brings it
            raise ConfigError(
                "geoip_database needs the maxminddb package: pip install 'vigil-audit[sigma]'"
            ) from None
        self.path = Path(path)
        try:
            self._reader = maxminddb.open_database(str(self.path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigError(f"geoip_database {str(self.path)!r} cannot be read: {exc}") from None
        self.lookup = lru_cache(maxsize=65536)(self._lookup)

    def _lookup(self, ip: str) -> Place | None:
        try:
            record: Any = self._reader.get(ip)
        except ValueError:  # not an IP address
            return None
        if not isinstance(record, dict):
            return None
        country = (record.get("country") or record.get("registered_country") or {}).get("iso_code", "")
        city = ((record.get("city") or {}).get("names") or {}).get("en", "")
        loc = record.get("location") or {}
        lat, lon = loc.get("latitude"), loc.get("longitude")
        return Place(str(country or ""), str(city or ""), _float(lat), _float(lon))

    def close(self) -> None:
        self._reader.close()


def demo_geoip_path(database: str) -> Path | None:
    """Where ``vigil demo`` keeps its GeoIP map for ``database``: beside a SQLite file; None for a server URL."""
    db = str(database)
    if "://" in db and not db.startswith("sqlite:///"):
        return None
    path = Path(db.removeprefix("sqlite:///")).expanduser()
    return path.with_name(path.name + DEMO_GEOIP_SUFFIX)


def configured_geoip(settings: Settings) -> tuple[str, bool]:
    """The GeoIP file the geo detections read, and whether it is the demo's own map: the ``geoip_database``
    setting when given; else the map ``vigil demo`` wrote beside the database, if it did; else none ("")."""
    given = str(getattr(settings, "geoip_database", "") or "")
    if given:
        return given, False
    demo = demo_geoip_path(str(getattr(settings, "database", "") or ""))
    if demo is not None and demo.is_file():
        return str(demo), True
    return "", False


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def distance_km(a: Place, b: Place) -> float | None:
    """Great-circle (haversine) distance, or None when either place has no coordinates."""
    if a.lat is None or a.lon is None or b.lat is None or b.lon is None:
        return None
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def parse_networks(
    value: str | list[str] | tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """CIDR networks from a comma-separated string or a list; ConfigError names a bad entry."""
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    nets = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{item!r} is not a network in CIDR form (e.g. 10.0.0.0/8)") from None
    return tuple(nets)


def network_of(ip: str, v4_prefix: int = 16, v6_prefix: int = 32) -> str | None:
    """The network an address belongs to, at the given prefix lengths, as text; None for a non-address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = v4_prefix if addr.version == 4 else v6_prefix
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
