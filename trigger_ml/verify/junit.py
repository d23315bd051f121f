"""JUnit XML: one test case per check, so CI systems list them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from trigger_ml.atomic import atomic_file


@dataclass(frozen=True)
class Case:
    name: str
    seconds: float = 0.0
    failure: str | None = None  # a failed check: what differed
    skipped: str | None = None  # a check that could not run: why


def write(path: Path, suite: str, cases: list[Case]) -> None:
    root = ET.Element("testsuites")
    s = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(sum(1 for c in cases if c.failure)),
        errors="0",
        skipped=str(sum(1 for c in cases if c.skipped and not c.failure)),
    )
    for case in cases:
        c = ET.SubElement(s, "testcase", classname=suite, name=case.name, time=f"{case.seconds:.3f}")
        if case.failure:
            ET.SubElement(c, "failure", message=case.failure).text = case.failure
        elif case.skipped:
            ET.SubElement(c, "skipped", message=case.skipped)
    with atomic_file(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
