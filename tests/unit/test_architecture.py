"""The package's shape: no import cycles, short modules, short functions.

The import graph is read from the source (``ast``) of every ``analysis/**/*.py``, imports
inside functions included: a function-local import hides a cycle from Python's import
machinery, not from a reader.

Size limits: a module at most 600 lines, a function at most 80 lines of code (blank lines,
comment-only lines and the docstring not counted). A module over the limit becomes a
package of modules by concern; a function over it is cut along the steps its docstring
names.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "analysis"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The analysis modules ``name`` imports, at any depth of its source."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
            # a name imported from a package is the submodule when one exists, else the package
            targets = [t for t in targets[:-1] if t in modules] or [module]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _code_rows(source: str) -> set[int]:
    """Rows holding a token other than a comment, newline or indentation."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    return {
        row
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type not in skip | {tokenize.ENDMARKER}
        for row in range(tok.start[0], tok.end[0] + 1)
    }


def _code_lines(node: ast.AST, code_rows: set[int]) -> int:
    """Lines of code of a function: no blank lines, comment-only lines or docstring."""
    lines = set(range(node.lineno, node.end_lineno + 1))
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if isinstance(body[0].value.value, str):
            lines -= set(range(body[0].lineno, body[0].end_lineno + 1))
    return len(lines & code_rows)


def _function_sizes() -> dict[str, int]:
    sizes = {}
    for name, path in _modules().items():
        source = path.read_text()
        rows = _code_rows(source)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                key = f"{name}:{node.name}"
                sizes[key] = max(sizes.get(key, 0), _code_lines(node, rows))
    return sizes


def test_import_graph_sees_imports_inside_functions():
    modules = _modules()
    planes = modules["analysis.ingest.planes"]  # imports io and readers inside its functions
    assert {"analysis.io", "analysis.readers"} <= _imports(
        "analysis.ingest.planes", planes, modules
    )


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = _cycles(_import_graph())
    assert not cycles, f"import cycles among analysis modules: {cycles}"


def test_code_lines_skip_docstring_comments_and_blanks():
    source = (
        'def f():\n    """Doc.\n\n    More.\n    """\n'
        "    # note\n\n    x = (1,\n         2)\n    return x\n"
    )
    assert _code_lines(ast.parse(source).body[0], _code_rows(source)) == 4


def test_module_length():
    too_long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines, split them: {too_long}"


def test_function_length():
    too_long = {key: n for key, n in _function_sizes().items() if n > MAX_FUNCTION_LINES}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines of code: {too_long}"


def test_no_library_function_is_named_like_a_test():
    """pytest collects ``test_*`` functions imported into a test module."""
    named = sorted(key for key in _function_sizes() if key.split(":")[1].startswith("test"))
    assert not named, f"rename these (e.g. run_*_test): {named}"
