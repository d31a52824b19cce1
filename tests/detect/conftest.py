"""Fixtures of the detection tests: a GeoIP file of the demo's networks, written as `vigil demo` writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.demo.geoip import write_geoip


@pytest.fixture(scope="session")
def geoip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_geoip(tmp_path_factory.mktemp("geo") / "demo-city.mmdb")
