"""The ahead-of-time compile check: every kernel specialisation the host functions launch compiles to
cubin for sm_80 and sm_90, without spilling, with the installed Triton and with Triton 3.6 (the GPU
machines'), installed beside the venv by `make test`. The interpreter the other tests use accepts
code the compiler rejects; this is where that shows. Compiled kernels are cached by Triton (by source
hash) under build/compile_check/, so an unchanged tree recompiles nothing."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from snnbench.kernels import compile_check as cc

ROOT = Path(__file__).resolve().parents[1]
SIDE_TRITON = ROOT / ".venv" / "triton36"


def _kernels_defined() -> set[str]:
    """Every @triton.jit kernel (``_x_kernel``) in kernels/, read from the source."""
    pattern = re.compile(r"@triton\.jit[^\n]*\n(?:@[^\n]*\n)*def (_\w+_kernel)\(")
    return {m for path in (ROOT / "kernels").glob("*.py") for m in pattern.findall(path.read_text())}


def _python(code_or_args: list[str], side: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRITON_INTERPRET": "0", "OMP_NUM_THREADS": "1"}
    if side:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SIDE_TRITON), str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, *code_or_args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )


@pytest.mark.parametrize("side", [False, True], ids=["installed triton", "triton 3.6"])
def test_every_launched_specialisation_compiles_for_sm80_and_sm90_without_spills(side, tmp_path):
    if side:
        assert (SIDE_TRITON / "triton").is_dir(), (
            "Triton 3.6 beside the venv is missing: run `make test` (or `make compile-table`)"
        )
    out = tmp_path / "rows.json"
    proc = _python(["-m", "kernels.compile_check", "--json", str(out)], side)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    if side:
        assert result["triton"].startswith("3.6.")
    rows = result["rows"]
    assert {(r["kernel"], r["target"]) for r in rows} == set(itertools.product(_kernels_defined(), ("sm_80", "sm_90")))
    assert cc.failures(rows) == []


def test_a_kernel_that_fails_to_compile_or_spills_is_reported():
    """fp8 casts compile for sm_90 but not sm_80; two 8192-element tiles live across a loop in one warp
    need 512 registers a thread, so they spill: both are failures of the check. The usage ptxas reports
    while Triton compiles equals that of the kernel assembled again from Triton's cache. (The probe
    lives under build/ with its own cache, so a rerun does not compile it again.)"""
    probe_dir = ROOT / "build" / "compile_check" / "probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    (probe_dir / "probe_kernels.py").write_text(
        textwrap.dedent(
            """
            import triton
            import triton.language as tl

            @triton.jit
            def _fp8_kernel(x_ptr, out_ptr, BLOCK: tl.constexpr):
                offs = tl.arange(0, BLOCK)
                tl.store(out_ptr + offs, tl.load(x_ptr + offs).to(tl.float8e4nv).to(tl.float32))

            @triton.jit
            def _spill_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
                offs = tl.arange(0, BLOCK)
                x = tl.load(x_ptr + offs)
                acc = tl.zeros_like(x)
                for _ in range(n):
                    acc = acc * x + 1.0
                tl.store(out_ptr + offs, acc)
            """
        )
    )
    probe = textwrap.dedent(
        f"""
        import json, os, shutil, sys
        os.environ["TRITON_CACHE_DIR"] = {str(probe_dir / "cache")!r}
        sys.path.insert(0, {str(probe_dir)!r})
        import probe_kernels as pk
        from kernels import compile_check as cc
        sig = (("x_ptr", "*fp32"), ("out_ptr", "*fp32"), ("BLOCK", "constexpr"))
        rows = [cc.compile_spec(cc.Spec("probe", pk._fp8_kernel, sig, (("BLOCK", 128),), 4, 3), arch) for arch in cc.ARCHS]
        sig = sig[:2] + (("n", "i32"),) + sig[2:]
        spill = cc.Spec("probe", pk._spill_kernel, sig, (("BLOCK", 8192),), 1, 3)
        rows.append(cc.compile_spec(spill, 90))
        # A kernel from Triton's cache has no ptxas report of its own: its usage is assembled again.
        shutil.rmtree(os.path.join(os.environ["TRITON_CACHE_DIR"], "ptxas"))
        again = cc.compile_spec(spill, 90)
        usage = ("regs", "spills", "stack")
        assert [again[k] for k in usage] == [rows[-1][k] for k in usage], (again, rows[-1])
        print(json.dumps(cc.failures(rows)))
        """
    )
    proc = _python(["-c", probe], side=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(found) == 2, found
    assert found[0].startswith("_fp8_kernel sm_80 ")
    assert found[1].startswith("_spill_kernel sm_90 ") and re.search(
        r": [1-9]\d* bytes of registers spilled$", found[1]
    )


@pytest.mark.parametrize("sizes", [(2,), (3, 2), (2, 2, 2), (4, 3, 2, 2), (9, 3, 3, 2, 2, 2, 2)])
def test_pairwise_points_cover_every_pair_of_values(sizes):
    axes = {f"a{i}": tuple(range(n)) for i, n in enumerate(sizes)}
    points = cc.pairwise(axes)
    for x, y in itertools.combinations(axes, 2):
        seen = {(p[x], p[y]) for p in points}
        assert seen == set(itertools.product(axes[x], axes[y])), (x, y)
    for x in axes:
        assert {p[x] for p in points} == set(axes[x])
    full = 1
    for n in sizes:
        full *= n
    assert len(points) <= full


def test_pairwise_points_leave_out_what_the_host_refuses_and_cover_the_rest():
    """uint8 spikes with a saved state (training) are refused by the neuron: never a point, while every
    allowed pair still is."""
    axes = {"output": ("uint8", "spike", "scaled"), "save": ("none", "fp32", "bf16"), "bias": (False, True)}

    def valid(point):
        return point.get("output") != "uint8" or point.get("save", "none") == "none"

    points = cc.pairwise(axes, valid)
    assert all(valid(p) for p in points)
    for x, y in itertools.combinations(axes, 2):
        allowed = {(a, b) for a in axes[x] for b in axes[y] if valid({x: a, y: b})}
        assert {(p[x], p[y]) for p in points} == allowed
