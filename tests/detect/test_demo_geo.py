"""The demo's geo attacks fire out of the box: `vigil demo` writes its own small GeoIP map, which the geo rules
use while no GeoIP database is configured, and never in place of one that is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.demo import DEMO_GEO
from vigil.demo.geoip import write_geoip
from vigil.detect.geo import GeoIP, configured_geoip, demo_geoip_path
from vigil.detect.loader import load_rules
from vigil.settings import Settings

NO_GEO_ENV: dict[str, str | None] = {"VIGIL_GEOIP_DATABASE": None, "VIGIL_DATABASE": None}


def run(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), env=NO_GEO_ENV, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_after_vigil_demo_a_detection_pass_raises_the_geo_alerts(tmp_path: Path) -> None:
    """`vigil demo` then `vigil detect`, with no GeoIP setting: impossible travel (globex) and new country
    (initech) are alerts, and the run says it placed addresses with the demo's own map."""
    db = str(tmp_path / "vigil.db")
    out = json.loads(run("demo", "--events", "2000", "--database", db, "--json").stdout)
    assert out["geoip_database"] == db + ".demo-geoip.mmdb" and Path(out["geoip_database"]).is_file()
    detected = run("detect", "--until-idle", "--database", db)
    assert "the demo's own GeoIP map" in detected.output and "disabled" not in detected.output
    alerts = json.loads(run("alerts", "list", "--database", db, "--json").stdout)
    found = {(a["tenant"], a["rule"]) for a in alerts}
    assert {("globex", "vigil.impossible_travel"), ("initech", "vigil.new_country")} <= found, found
    trip = next(a for a in alerts if a["rule"] == "vigil.impossible_travel")
    assert "Berlin, DE, then Sydney, AU 30 minutes later" in trip["summary"]


def test_the_demo_map_places_every_demo_network(tmp_path: Path) -> None:
    """The file is a real MaxMind database: maxminddb reads each demo network's city, country and place."""
    geo = GeoIP(write_geoip(tmp_path / "demo.mmdb"))
    try:
        for net, (city, country, lat, lon) in DEMO_GEO.items():
            place = geo.lookup(net.split("/")[0])
            assert place is not None and (place.city, place.country, place.lat, place.lon) == (
                city,
                country,
                pytest.approx(lat),
                pytest.approx(lon),
            )
        assert geo.lookup("8.8.8.8") is None  # it knows the demo's networks only
    finally:
        geo.close()


def test_a_configured_geoip_database_always_wins(tmp_path: Path) -> None:
    """With geoip_database set, the demo's map beside the database is not used (nor mentioned)."""
    db = tmp_path / "vigil.db"
    write_geoip(Path(str(db) + ".demo-geoip.mmdb"))
    real = write_geoip(tmp_path / "real.mmdb", {"192.0.2.0/24": ("Reykjavik", "IS", 64.1466, -21.9426)})
    demo = Settings.load({"database": str(db)}, environ={})
    given = Settings.load({"database": str(db), "geoip_database": str(real)}, environ={})
    assert configured_geoip(demo) == (str(db) + ".demo-geoip.mmdb", True)
    assert configured_geoip(given) == (str(real), False)
    assert any("demo's own GeoIP map" in w for w in load_rules(demo).warnings)
    rules = load_rules(given)
    assert not any("demo" in w for w in rules.warnings) and not rules.disabled


def test_without_the_demo_map_the_geo_rules_stay_off_and_say_so(tmp_path: Path) -> None:
    """No setting and no demo file: the geo rules are disabled with their reason, as before. A database URL has
    no place beside it for the demo's map."""
    rules = load_rules(Settings.load({"database": str(tmp_path / "vigil.db")}, environ={}))
    assert "vigil.impossible_travel" in rules.disabled and "vigil.new_country" in rules.disabled
    assert demo_geoip_path("postgresql://vigil@db/audit") is None
    assert demo_geoip_path("sqlite:////srv/v.db") == Path(
        "/srv/v.db.demo-geoip.mmdb"
    )  # as the store reads it


def test_an_unreadable_demo_map_leaves_the_geo_rules_off_but_the_server_starts(tmp_path: Path) -> None:
    """The demo's map is a convenience: a damaged one is reported and skipped, never a failed start (a GeoIP
    database the operator configured must open, as before)."""
    db = tmp_path / "vigil.db"
    Path(str(db) + ".demo-geoip.mmdb").write_bytes(b"not a maxmind file")
    rules = load_rules(Settings.load({"database": str(db)}, environ={}))
    assert "vigil.impossible_travel" in rules.disabled
    assert any("demo's GeoIP map is not used" in w for w in rules.warnings)
