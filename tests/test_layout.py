"""Shape of the library: rules about how the code is laid out, checked on every file."""

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "workflow" / "lib" / "synth2real"
MAX_FUNCTION_LINES = 80


def function_lengths(source: str) -> list[tuple[str, int, int]]:
    """(qualified name, first line, length) of every function and method, from the ``def``
    line to the last line of its body (decorators not counted)."""
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                out.append((name, child.lineno, child.end_lineno - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return out


def test_function_lengths_are_counted_from_def_to_last_line():
    source = (
        "@dec\ndef f(\n    a,\n):\n    x = 1\n\n    return x\n"
        "\nclass C:\n    def m(self):\n        def inner():\n            pass\n"
    )
    assert function_lengths(source) == [("f", 2, 6), ("C.m", 10, 3), ("C.m.inner", 11, 2)]


def test_no_library_function_longer_than_80_lines():
    files = sorted(LIB.rglob("*.py"))
    assert len(files) > 30, f"library not found under {LIB}"
    too_long = [
        f"{f.relative_to(LIB)}:{line} {name} ({n} lines)"
        for f in files
        for name, line, n in function_lengths(f.read_text())
        if n > MAX_FUNCTION_LINES
    ]
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(too_long)


def test_rule_scripts_have_no_future_import():
    """Snakemake runs a ``script:`` with its preamble above the first line, where a
    ``from __future__`` import is a SyntaxError: the job dies before it starts."""
    scripts = LIB.parents[1] / "scripts"
    run = [p for p in scripts.glob("*.py") if p.name != "script_setup.py"]  # imported, not run
    assert len(run) > 10
    assert [p.name for p in run if "from __future__" in p.read_text()] == []
