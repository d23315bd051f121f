"""JUnit XML: one test case per check, so CI systems list them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from trigger_ml.atomic import atomic_file


def write(path: Path, suite: str, cases: list[tuple[str, float, str | None]]) -> None:
    """cases: (name, seconds, failure message or None)."""
    failures = sum(1 for _, _, f in cases if f)
    root = ET.Element("testsuites")
    s = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failures), errors="0")
    for name, seconds, failure in cases:
        c = ET.SubElement(s, "testcase", classname=suite, name=name, time=f"{seconds:.3f}")
        if failure:
            ET.SubElement(c, "failure", message=failure).text = failure
    with atomic_file(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
