"""A small MaxMind-format GeoIP file built by the tests themselves, from the demo's map of networks."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from vigil.demo import DEMO_GEO


def write_geoip(path: Path, table: dict[str, tuple[str, str, float, float]] = DEMO_GEO) -> Path:
    """Write a GeoLite2-City-shaped database placing each network of ``table`` at (city, country, lat, lon)."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-City",
        languages=["en"],
        description="vigil tests",
    )
    for net, (city, country, lat, lon) in table.items():
        writer.insert_network(
            IPSet([net]),
            {
                "city": {"names": {"en": city}},
                "country": {"iso_code": country},
                "location": {"latitude": lat, "longitude": lon},
            },
        )
    writer.to_db_file(str(path))
    return path
