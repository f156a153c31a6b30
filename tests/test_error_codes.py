"""Every error code raised in the package is documented in docs/errors.md and triggered by a test."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("simenv", "agents", "experiments")
CODE = re.compile(r"""["'](PL-[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*)["']""")
DOC_CODE = re.compile(r"^\|\s*`(PL-[A-Z0-9-]+)`\s*\|", re.MULTILINE)


def package_codes() -> dict[str, list[str]]:
    """Code -> source files that contain it (as a string literal)."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for code in set(CODE.findall(path.read_text())):
                found.setdefault(code, []).append(str(path.relative_to(ROOT)))
    return found


def documented_codes() -> list[str]:
    return DOC_CODE.findall((ROOT / "docs" / "errors.md").read_text())


def test_codes_are_found_in_the_package():
    codes = package_codes()
    # The codes DESIGN.md and the simulator issue rely on.
    assert {
        "PL-COHORT-UNKNOWN",
        "PL-PARAM-RANGE",
        "PL-SAFETY-CHARGE-DENSITY",
        "PL-SAFETY-SHANNON",
        "PL-PATIENT-YAML",
        "PL-STATE-NONFINITE",
    } <= set(codes)


def test_every_code_is_documented_once_and_no_stale_entries():
    codes = set(package_codes())
    documented = documented_codes()
    assert len(documented) == len(set(documented)), "a code is listed twice"
    assert sorted(codes - set(documented)) == [], "codes raised but missing from docs/errors.md"
    assert sorted(set(documented) - codes) == [], "docs/errors.md lists codes the package never raises"


def test_every_code_is_triggered_by_some_test():
    tests = [p for p in sorted((ROOT / "tests").glob("test_*.py")) if p.name != Path(__file__).name]
    text = "\n".join(p.read_text() for p in tests)
    untested = sorted(code for code in package_codes() if f'"{code}"' not in text)
    assert untested == [], "codes no test triggers"
