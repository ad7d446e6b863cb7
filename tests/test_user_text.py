"""User text is printed verbatim by every verb and every bench: paths, names and notes holding rich
markup (``[/x]``, ``[red]``) are shown as written, never parsed (``[/x]`` used to raise MarkupError
after the file was written). The mechanism is kept by a source scan: every ``console.print`` in the
package prints a rich ``Text`` or a rendered table, or goes through snnbench.user_text."""

from __future__ import annotations

import ast
import io
import json

from rich.console import Console
from typer.testing import CliRunner

from snnbench.bench.harness import render
from snnbench.cli import app
from snnbench.user_text import say, warn
from tests.helpers import REPO

runner = CliRunner()

MARKUP = "[/x] [red]not red[/red] [bold"


def _allowed_first_argument(node: ast.expr) -> bool:
    """A Text (or Text.assemble), a rendered table, or a Table variable: never a str that rich parses."""
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
        return name in ("Text", "text") or owner in ("Text", "text") or name.startswith("render")
    return isinstance(node, ast.Name) and node.id in ("table",)


def test_no_console_print_reads_user_text_as_markup():
    offenders = []
    for path in sorted((REPO / "snnbench").rglob("*.py")):
        if path.name == "user_text.py":  # the helper itself
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "print"):
                continue
            receiver = ast.unparse(node.func.value)
            if "console" not in receiver:
                continue
            markup_off = any(k.arg == "markup" and getattr(k.value, "value", True) is False for k in node.keywords)
            if node.args and not markup_off and not _allowed_first_argument(node.args[0]):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not offenders, "print user text with snnbench.user_text.say (verbatim), not as markup:\n" + "\n".join(
        offenders
    )


def test_the_helpers_print_markup_verbatim_on_any_console():
    screen = io.StringIO()
    console = Console(file=screen, width=200)  # markup on, as a caller of the Python API may pass
    say(console, MARKUP)
    warn(console, MARKUP)
    render([{"impl": MARKUP, "median_ms": 1.0}], [("impl", "impl", "")], console, title=MARKUP)
    render([{"impl": "a", "median_ms": None, "note": MARKUP}], [("impl", "impl", "")], console, title="t")
    assert screen.getvalue().count("[/x] [red]not red[/red] [bold") == 5, screen.getvalue()


def test_verbs_print_paths_and_names_verbatim(tmp_path):
    folder = tmp_path / "out [/x] [red]"
    folder.mkdir(parents=True)  # "out [" holding "x] [red]": the path reads as markup [/x]
    record = {
        "schema": 1,
        "key": "digits/[/x]/qcfs/seed=0/x",
        "dataset": "digits",
        "model": "[/x]",
        "method": "[red]qcfs",
        "seed": 0,
        "metrics": {"snn_acc": {"1": 50.0}},
    }
    results = folder / "r.jsonl"
    results.write_text(json.dumps(record) + "\n" + "not json [/x]\n")
    exported = runner.invoke(app, ["export", str(results), "--out", str(folder / "o.csv")])
    assert exported.exit_code == 0, exported.output
    assert f"wrote 1 rows to {folder / 'o.csv'}" in exported.output and (folder / "o.csv").exists()
    assert f"{results}:2: not valid JSON" in " ".join(exported.output.split())
    for args in (["table", str(results), "--no-published"], ["compare", str(results), str(results), "--all"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "[/x]" in result.output and "[red]" in result.output, (args, result.output)
    missing = runner.invoke(app, ["table", str(folder / "[/y].jsonl")])
    assert missing.exit_code == 2 and "[/y].jsonl" in missing.output


def test_a_plain_printer_gets_the_plain_string():
    class Lines:
        def __init__(self):
            self.lines = []

        def print(self, *args):
            self.lines.append(" ".join(map(str, args)))

    out = Lines()
    say(out, MARKUP)
    warn(out, MARKUP)
    assert out.lines == [MARKUP, f"warning: {MARKUP}"]
