"""The modules above the apps (the demo, definitions as files, the operations page, the tenant home)
use the apps' services and selectors; no app imports them back."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ABOVE = ("demo", "definitions", "ops", "home")


def test_no_app_imports_a_module_above_the_apps() -> None:
    pattern = re.compile(
        rf"^\s*(from jetadmin(\.| import )({'|'.join(ABOVE)})\b|import jetadmin\.({'|'.join(ABOVE)}))", re.M
    )
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "apps").rglob("*.py"))
        if pattern.search(path.read_text())
    ]
    assert not offenders, offenders
    assert pattern.search("from jetadmin import demo\n") and pattern.search("from jetadmin.demo import x\n")
