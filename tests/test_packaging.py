"""The distribution: named vigil-audit (the import name and the command stay vigil), Apache-2.0 in full."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import vigil

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_distribution_is_vigil_audit_and_its_version_is_the_packages() -> None:
    """The name "vigil" on PyPI is another project: ours is vigil-audit, with the version vigil says."""
    assert PYPROJECT["project"]["name"] == "vigil-audit"
    assert importlib.metadata.version("vigil-audit") == vigil.__version__ == PYPROJECT["project"]["version"]
    assert PYPROJECT["project"]["scripts"] == {"vigil": "vigil.cli:main"}


def test_the_license_is_the_full_apache_2_text_and_pyproject_points_to_it() -> None:
    """LICENSE holds the whole Apache License 2.0 (all nine sections and the appendix), and is the licence file."""
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    for n in range(1, 10):
        assert re.search(rf"^\s+{n}\. [A-Z]", text, re.MULTILINE), f"section {n} is missing"
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    meta = importlib.metadata.metadata("vigil-audit")
    assert meta["License-Expression"] == "Apache-2.0"


def test_no_doc_or_message_installs_the_other_vigil() -> None:
    """Every `pip install` of an extra names vigil-audit (or a checkout, `-e '.[...]'`), never `vigil[...]`."""
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "vigil").rglob("*.py")]
    wrong = [
        f"{f.relative_to(ROOT)}: {m.group(0)}"
        for f in files
        for m in re.finditer(r"(?<![\w-])vigil\[[a-z,]+\]", f.read_text())
    ]
    assert wrong == []
