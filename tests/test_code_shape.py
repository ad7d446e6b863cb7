"""Code shape: no function outside a Triton kernel is longer than 80 lines (split it instead)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("snnbench", "kernels", "scripts")
MAX_LINES = 80
# A Triton kernel is one body the compiler sees whole; its length is the kernel's, not the host code's.
TRITON_DECORATORS = {"triton.jit", "triton.autotune", "triton.heuristics"}


def _is_triton_kernel(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target) in TRITON_DECORATORS:
            return True
    return False


def long_functions(source: str, filename: str = "<source>") -> list[str]:
    """``file:line name (N lines)`` for every function over MAX_LINES lines, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_triton_kernel(node):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_LINES:
                found.append(f"{filename}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_outside_triton_kernels_is_over_80_lines():
    files = [path for folder in FOLDERS for path in sorted((REPO / folder).rglob("*.py"))]
    assert len(files) > 50  # the folders are where this test thinks they are
    found = [
        hit for path in files for hit in long_functions(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    ]
    assert not found, "functions over 80 lines (split them):\n" + "\n".join(found)


def test_the_check_names_a_long_function_and_spares_triton_kernels():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    source = (
        f"def long_host_function():\n{body}\n\n"
        f"@triton.jit\ndef _long_kernel():\n{body}\n\n"
        f"@triton.autotune(configs=[], key=[])\n@triton.jit\ndef _tuned_kernel():\n{body}\n\n"
        f"def short():\n    return 1\n"
    )
    assert long_functions(source, "m.py") == [f"m.py:1 long_host_function ({MAX_LINES + 1} lines)"]
