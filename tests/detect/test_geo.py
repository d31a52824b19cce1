"""GeoIP from the operator's MaxMind file; without one the geo detections are off, and said to be."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vigil.detect.geo import GeoIP, Place, distance_km, network_of, parse_networks
from vigil.detect.loader import NO_GEO, load_rules
from vigil.errors import ConfigError
from vigil.settings import Settings


def test_lookups_read_the_operators_database(geoip: Path) -> None:
    """A City database gives country, city and coordinates; unknown and malformed addresses give None."""
    geo = GeoIP(geoip)
    sydney = geo.lookup("203.0.113.9")
    assert sydney is not None and (sydney.country, sydney.city) == ("AU", "Sydney")
    assert geo.lookup("8.8.8.8") is None and geo.lookup("not-an-ip") is None


def test_a_missing_or_broken_database_fails_at_start(tmp_path: Path) -> None:
    """Fail closed: a database path that cannot be read is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="cannot be read"):
        GeoIP(tmp_path / "nope.mmdb")
    (tmp_path / "bad.mmdb").write_bytes(b"not a maxmind file")
    with pytest.raises(ConfigError, match=r"bad\.mmdb"):
        GeoIP(tmp_path / "bad.mmdb")


def test_distance_is_great_circle() -> None:
    """Berlin to Sydney is about 16,000 km; a place without coordinates has no distance."""
    berlin, sydney = Place("DE", "Berlin", 52.52, 13.405), Place("AU", "Sydney", -33.8688, 151.2093)
    assert 16_000 < (distance_km(berlin, sydney) or 0) < 16_200
    assert distance_km(berlin, Place("DE", "", None, None)) is None


def test_networks() -> None:
    """Addresses fold into networks at the configured prefix; a bad CIDR is named."""
    assert network_of("45.146.167.9") == "45.146.0.0/16" and network_of("2001:db8::1") == "2001:db8::/32"
    assert network_of("nope") is None
    with pytest.raises(ConfigError, match=re.escape("'10.0.0.0/33'")):
        parse_networks("10.0.0.0/8, 10.0.0.0/33")


def test_without_a_database_the_geo_rules_are_disabled_with_a_warning(geoip: Path) -> None:
    """Never silently: the rule list marks them disabled and says why; with the file they run."""
    off = load_rules(Settings.load({}, environ={}))
    assert off.warnings == [NO_GEO]
    assert set(off.disabled) == {"vigil.impossible_travel", "vigil.new_country"}
    assert {"vigil.impossible_travel", "vigil.new_country"} <= {r.id for r in off.rules}
    on = load_rules(Settings.load({"geoip_database": str(geoip)}, environ={}))
    assert on.warnings == [] and on.disabled == {}
    assert {"vigil.impossible_travel", "vigil.new_country"} <= {r.id for e in on.evaluators for r in e.rules}
