"""Code shape: no function outside a Triton kernel is longer than 80 lines (split it instead), and no
handler of every exception goes on after Ctrl-C."""

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


# Ctrl-C raises KeyboardInterrupt wherever the code is, and a library may turn it into an error of its
# own (snnbench/interrupts.py). A handler of every Exception that reports the error and goes on would
# then go on after the user asked to stop, so each one asks first; a handler that raises again keeps
# the interrupt in the new error's context, where the CLI finds it. Cleanup (``# cleanup:``) may
# swallow: it runs while the interrupt is already on its way.
BROAD = {"Exception", "BaseException"}


def handlers_that_may_swallow_an_interrupt(source: str, filename: str = "<source>") -> list[str]:
    """``file:line`` of every ``except Exception`` (or bare ``except``) whose body neither raises (as
    one of its own statements, not under a condition) nor asks ``interrupts.raise_if_interrupt`` /
    ``is_interrupt``, unless marked ``# cleanup:``."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if not isinstance(node, ast.ExceptHandler):
            continue
        caught = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
        if node.type is not None and not any(ast.unparse(t) in BROAD for t in caught):
            continue
        body = ast.unparse(ast.Module(body=node.body, type_ignores=[]))
        raises = any(isinstance(statement, ast.Raise) for statement in node.body)  # unconditionally
        if raises or "raise_if_interrupt(" in body or "is_interrupt(" in body or "# cleanup:" in lines[node.lineno - 1]:
            continue
        found.append(f"{filename}:{node.lineno}")
    return found


def test_no_handler_of_every_exception_goes_on_after_an_interrupt():
    found = []
    for path in sorted((REPO / "snnbench").rglob("*.py")):
        found += handlers_that_may_swallow_an_interrupt(path.read_text(), str(path.relative_to(REPO)))
    assert not found, "ask interrupts.raise_if_interrupt(err) first in: " + ", ".join(found)


def test_the_interrupt_check_names_a_handler_that_goes_on_and_spares_the_others():
    source = (
        "for x in xs:\n"
        "    try:\n        f(x)\n    except Exception as err:\n        log(err)\n"  # line 4: goes on
        "    try:\n        f(x)\n    except Exception as err:\n        raise ValueError(x) from err\n"
        "    try:\n        f(x)\n    except Exception as err:\n        interrupts.raise_if_interrupt(err)\n"
        "    try:\n        f(x)\n    except ValueError:\n        pass\n"
        "    try:\n        f(x)\n    except (OSError, Exception):\n        pass\n"  # line 20: goes on
        "    try:\n        f(x)\n    except:\n        pass\n"  # line 24: goes on
        "    try:\n        f(x)\n    except Exception:  # cleanup: the others still run\n        pass\n"
        "    try:\n        f(x)\n    except Exception as err:\n        if x:\n            raise\n"  # line 32: may go on
    )
    assert handlers_that_may_swallow_an_interrupt(source, "m.py") == ["m.py:4", "m.py:20", "m.py:24", "m.py:32"]
