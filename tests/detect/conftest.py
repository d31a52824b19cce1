"""Fixtures of the detection tests: a GeoIP file of the demo's networks."""

from __future__ import annotations

from pathlib import Path

import pytest
from geo_support import write_geoip


@pytest.fixture(scope="session")
def geoip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_geoip(tmp_path_factory.mktemp("geo") / "demo-city.mmdb")
