"""The demo's own GeoIP database: a real MaxMind-format file (GeoLite2-City shape) placing each network the demo
uses (``DEMO_GEO``) at its city, so the geo detections locate the demo's addresses without a MaxMind download.

Written with ``mmdb-writer`` (the ``[demo]`` extra) and read back by ``maxminddb`` like any GeoLite2 file. It
knows only the demo's networks: for real traffic, give a real database (``--geoip-database``).
"""

from __future__ import annotations

import os
from pathlib import Path

from vigil.demo.tables import DEMO_GEO

MISSING = "the demo's GeoIP map needs the demo extra: pip install 'vigil-audit[demo]' (or -e '.[demo]')"


def write_geoip(path: str | Path, table: dict[str, tuple[str, str, float, float]] = DEMO_GEO) -> Path:
    """Write a GeoLite2-City-shaped database placing each network of ``table`` at (city, country, lat, lon).

    The file appears whole or not at all (written aside, then renamed). ImportError (with ``MISSING``) when
    mmdb-writer is not installed."""
    try:
        from mmdb_writer import MMDBWriter
        from netaddr import IPSet  # type: ignore[import-untyped]  # mmdb-writer's own dependency
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-City",
        languages=["en"],
        description="Vigil demo: the demo's own networks only",
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
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        writer.to_db_file(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
