"""Run the ahead-of-time compile check with the installed Triton and with Triton 3.6 (beside the venv,
``make compile-table`` puts it in .venv/triton36) and write its table of registers, spills and shared memory
per kernel and target into docs/kernels.md (between the compile-table markers).

    python scripts/compile_table.py [--jobs N] [--no-write]     # exit 1 when a kernel fails or spills

Each Triton runs in its own process (``python -m kernels.compile_check``); compiled kernels are cached
under build/compile_check/, so rerunning after a docs-only change costs seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "kernels.md"
SIDE_TRITON = ROOT / ".venv" / "triton36"
START, END = "<!-- compile-table:start -->", "<!-- compile-table:end -->"
TARGETS = ("sm_80", "sm_90")


def check(side: bool, jobs: int) -> tuple[dict, bool]:
    """Rows of one Triton's compile check (the side install when ``side``) and whether it passed."""
    out = ROOT / "build" / "compile_check" / ("rows-side.json" if side else "rows-installed.json")
    env = {**os.environ, "TRITON_INTERPRET": "0", "OMP_NUM_THREADS": "1"}
    if side:
        if not (SIDE_TRITON / "triton").is_dir():
            sys.exit(f"{SIDE_TRITON}: Triton 3.6 is not installed there; run `make compile-table`")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SIDE_TRITON), str(ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "kernels.compile_check", "--jobs", str(jobs), "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    if proc.returncode not in (0, 1):
        sys.exit(f"the compile check crashed (exit {proc.returncode})")
    return json.loads(out.read_text()), proc.returncode == 0


def _span(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def table(results: list[dict]) -> str:
    """Markdown: a row per kernel, per Triton and target the registers a thread (min–max over the
    kernel's specialisations) / the most shared memory in bytes; the most bytes spilled over all."""
    versions = [r["triton"] for r in results]
    head = ["kernel", "specialisations"] + [f"Triton {v} {t}" for v in versions for t in TARGETS] + ["spilled bytes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    kernels = sorted({row["kernel"] for r in results for row in r["rows"]})
    for kernel in kernels:
        cells, spills, count = [], 0, 0
        for r in results:
            for target in TARGETS:
                rows = [x for x in r["rows"] if x["kernel"] == kernel and x["target"] == target]
                ok = [x for x in rows if "error" not in x]
                count = max(count, len(rows))
                failed = len(rows) - len(ok)
                cell = f"{_span([x['regs'] for x in ok])} / {max(x['shared'] for x in ok)}" if ok else "–"
                cells.append(cell + (f" ({failed} failed)" if failed else ""))
                spills = max([spills] + [x["spills"] for x in ok])
        lines.append(f"| `{kernel}` | {count} | " + " | ".join(cells) + f" | {spills} |")
    return "\n".join(lines)


def write(doc_table: str) -> None:
    text = DOC.read_text()
    if START not in text or END not in text:
        sys.exit(f"{DOC}: the markers {START} and {END} are missing")
    head, rest = text.split(START, 1)
    DOC.write_text(head + START + "\n" + doc_table + "\n" + END + rest.split(END, 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/kernels.md alone")
    args = parser.parse_args()
    checks = [check(False, args.jobs), check(True, args.jobs)]
    doc_table = table([result for result, _ in checks])
    print(doc_table)
    if not args.no_write:
        write(doc_table)
    return 0 if all(passed for _, passed in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
