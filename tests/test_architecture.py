"""Dependencies point one way: no module imports a package of a later stage, at module level or
inside a function (an import hidden in a function is still a dependency). No exception list."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "trigger_ml"
# foundation modules (errors, atomic, progress, plotting, config, fixed, layout, layers, fpga, tools,
# vectors) rank 0; then the stages in order; the command line last
RANK = {
    "data": 1,
    "timing": 1,
    "train": 2,
    "compile": 3,
    "interop": 3,
    "verify": 4,
    "report": 5,
    "testing": 5,
    "pipeline": 6,
    "scan": 7,
    "cli": 8,
}


def _imports(path: Path, module: str):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield node.lineno, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                yield node.lineno, [".".join(base + ([node.module] if node.module else []))]
            elif node.module:
                yield node.lineno, [node.module]


def _top(name: str) -> str | None:
    parts = name.split(".")
    return (parts[1] if len(parts) > 1 else "") if parts[0] == "trigger_ml" else None


def upward_imports() -> list[str]:
    bad = []
    for f in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        me = _top(module)
        for line, targets in _imports(f, module):
            for t in targets:
                other = _top(t)
                if other is not None and other != me and RANK.get(other, 0) > RANK.get(me or "", 0):
                    bad.append(f"{f.relative_to(PACKAGE.parent)}:{line} {me or 'trigger_ml'} -> {other}")
    return bad


def test_no_module_imports_a_later_stage():
    assert upward_imports() == []


def test_the_walk_sees_function_level_imports(tmp_path):
    """The check itself: an import inside a function of an early module is found."""
    mod = tmp_path / "x.py"
    mod.write_text("def f():\n    from trigger_ml.report import build\n")
    assert [t for _, ts in _imports(mod, "trigger_ml.data.x") for t in ts] == ["trigger_ml.report"]
