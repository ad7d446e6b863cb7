"""The GPU proof in one command (run through scripts/gpu_check.sh): kernel tests on the card, every
track end to end on CUDA at a tiny budget, every bench, and one summary.

    python3 scripts/gpu_check.py OUT [--dry-run] [--allow-dirty] [--budget-s 570]
    python3 scripts/gpu_check.py --print-env      # SNNBENCH_GIT_SHA=… SNNBENCH_TREE_DIGEST=… of HEAD

OUT receives a few files at its top level (a lent machine returns at most 8, two folders deep):
``summary.json`` (pass/fail per part, card, versions, git SHA and whether the tree was clean),
``neuron.json``, ``sparse.json``, ``ftbc.json``, ``convert.json``, ``layer.json`` (the bench JSONs, ready for
results/bench/<gpu>/), ``log.txt`` and ``gpu_check.tar.gz`` (everything: records, pytest report,
per-part logs). Each part runs in its own process under a share of the time budget, so a crash or a
hang costs that part only.

Numbers are only worth committing from a committed tree: with a ``.git`` the check refuses a dirty
tree (exit 2) unless ``--allow-dirty``, which marks the summary. A copy without ``.git`` (a lent
machine) is told its commit and the digest of its files (``--print-env``) and compares the digest
with the files it holds. ``--dry-run`` runs the same plumbing on a CPU at tiny sizes (the kernel
tests under the Triton interpreter): CI runs it.

Only the standard library is imported here; everything else runs in the part processes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
# The files whose content decides the numbers; their digest ties a run to a commit.
TREE_PATHS = ("kernels", "snnbench", "scripts", "suites", "tests", "pyproject.toml")
BENCHES = ("neuron", "sparse", "ftbc", "convert", "layer")
SUITES = ("conversion", "training")
# Seconds each part may take on a card (shares of the whole budget; benches write as they go).
# They add up to the default budget (570 s); the neuron sweep took 128 s on an H200 and the sparse one
# 42 s before it timed the input gradient and three designs (90 s is an estimate); the rest are sized
# by their work (a bench cut off keeps the points it wrote).
PART_LIMITS = {
    "tests": 100,
    "track_conversion": 45,
    "track_training": 40,
    "bench_neuron": 115,
    "bench_sparse": 80,
    "bench_ftbc": 50,
    "bench_convert": 50,
    "bench_layer": 90,
}
# bench layer on a card: the Open Neuromorphic target points first (n = 4,096, 16,384, then the conv
# block), no new point after this many seconds; the whole protocol (~10 min) is its own command.
LAYER_CARD_ARGS = ["--budget-s", "45"]
# bench sparse on a card: the sizes of the ≥ 100× targets, largest gap first (a cut-off run keeps
# what it wrote), every input-gradient design side by side, Bernoulli input only to fit the budget.
SPARSE_OPTIONS = ["--inputs", "bernoulli", "--design", "pairs,rows,scan"]
SPARSE_CARD_ARGS = ["--hidden", "1000,4000,200", *SPARSE_OPTIONS]
# The dry run shrinks every suite to this (CPU, seconds).
DRY_SUITE = {
    "conversion": {
        "datasets": [{"name": "synthetic", "limit_train": 16, "limit_test": 8}],
        "models": [{"name": "vgg16", "width": 2, "hidden": 16}],
        "timesteps": [1, 2],
        "methods": [
            "qcfs",
            {"name": "light", "batch_size": 8},
            {"name": "ftbc", "alpha": 0.4, "batches": 1, "batch_size": 8},
        ],
        "training": {"epochs": 1, "batch_size": 8, "amp": False, "eval_batch_size": 8},
    },
    "training": {
        "datasets": [{"name": "synthetic_spiking", "limit_train": 8, "limit_test": 8}],
        "models": [{"name": "snn_mlp", "hidden": 8}],
        "training": {"epochs": 1, "batch_size": 8, "eval_batch_size": 8},
    },
}
# The kernel tests the dry run keeps (under the interpreter every case costs a second or more).
DRY_TESTS = "philox or autotune"
# The dry run's bench options beside --quick --device cpu. bench sparse: the card's options at one
# small hidden size (the quick tier's sizes, 32 and 64 on three input kinds, took twice the CPU time;
# tests/test_sparse_bench.py covers the input kinds).
DRY_BENCH_ARGS = {
    "sparse": ["--hidden", "24", *SPARSE_OPTIONS],
    "layer": ["--no-figure", "--impls", "snnbench,torch_loop"],
}


# --------------------------------------------------------------------------------------------------
# Which tree ran


def _blob_sha(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def files_digest(root: Path = ROOT) -> str:
    """Digest of (path, git blob SHA) of every source file under TREE_PATHS as they are on disk."""
    lines = []
    for top in TREE_PATHS:
        base = root / top
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for p in paths:
            rel = p.relative_to(root).as_posix()
            if "__pycache__" in rel or rel.endswith(".pyc") or ".egg-info" in rel:
                continue
            lines.append(f"{rel} {_blob_sha(p)}")
    return _digest(lines)


def _git(*args: str, root: Path = ROOT) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def commit_digest(ref: str = "HEAD", root: Path = ROOT) -> Optional[str]:
    """The :func:`files_digest` the files of commit ``ref`` give (from git's objects)."""
    listing = _git("ls-tree", "-r", ref, "--", *TREE_PATHS, root=root)
    if listing is None:
        return None
    lines = []
    for line in listing.splitlines():
        meta, path = line.split("\t", 1)
        mode, kind, sha = meta.split()
        if kind == "blob":
            lines.append(f"{path} {sha}")
    return _digest(lines)


def tree_state(allow_dirty: bool, root: Path = ROOT) -> dict[str, Any]:
    """SHA, digest and cleanliness of the tree that runs; raises SystemExit(2) on a dirty tree."""
    digest = files_digest(root)
    if (root / ".git").exists():
        sha = (_git("rev-parse", "HEAD", root=root) or "").strip() or None
        status = _git("status", "--porcelain", "--", *TREE_PATHS, root=root) or ""
        clean = sha is not None and not status.strip() and commit_digest(root=root) == digest
        state = {"git_sha": sha, "source": "git", "files_digest": digest, "clean": clean}
        if not clean:
            state["dirty_paths"] = [line[3:] for line in status.splitlines()][:50]
    else:
        sha = os.environ.get("SNNBENCH_GIT_SHA")
        expected = os.environ.get("SNNBENCH_TREE_DIGEST")
        if not sha:
            print(
                "error: this copy has no .git: set SNNBENCH_GIT_SHA and SNNBENCH_TREE_DIGEST "
                "(python3 scripts/gpu_check.py --print-env in the checkout prints both)",
                file=sys.stderr,
            )
            raise SystemExit(2)
        clean = expected == digest if expected else None
        state = {
            "git_sha": sha,
            "source": "SNNBENCH_GIT_SHA",
            "files_digest": digest,
            "expected_digest": expected,
            "clean": clean,
        }
    if state["clean"] is not True and not allow_dirty:
        why = "the files differ from the commit" if state["clean"] is False else "SNNBENCH_TREE_DIGEST is not set"
        print(
            f"error: refusing to measure an uncommitted tree ({why}); commit first, or pass "
            f"--allow-dirty to run anyway with the summary marked",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return state


# --------------------------------------------------------------------------------------------------
# Parts


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _dry_suite(name: str, work: Path) -> Path:
    import yaml  # a part-process dependency, but the dry run only happens where snnbench is installed

    data = yaml.safe_load((ROOT / "suites" / "gpu" / f"{name}.yaml").read_text())
    data.update(DRY_SUITE[name])
    data["training"] = {**data.get("training", {}), **DRY_SUITE[name]["training"]}
    data["device"] = "cpu"
    path = work / "suites" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def plan(work: Path, dry_run: bool) -> list[tuple[str, list[str], dict[str, str]]]:
    """(part, argv, extra environment) for every part, in the order they run."""
    py = sys.executable
    parts: list[tuple[str, list[str], dict[str, str]]] = []
    tests = [
        py,
        "-m",
        "pytest",
        "-m",
        "cuda",
        "-q",
        "-rs",
        "-p",
        "no:cacheprovider",
        f"--junitxml={work / 'pytest.xml'}",
    ]
    if dry_run:
        parts.append(
            (
                "tests",
                tests + ["tests/test_cuda.py", "-k", DRY_TESTS],
                {"SNNBENCH_CUDA_DRY_RUN": "1", "TRITON_INTERPRET": "1"},
            )
        )
    else:
        # Only the files with card tests: collecting the others would import optional extras
        # (ray, tonic) that a GPU machine may lack, and a collection error fails the run.
        files = sorted(
            str(p.relative_to(ROOT))
            for p in (ROOT / "tests").glob("test_*.py")
            if "pytest.mark.cuda" in p.read_text(errors="replace")
        )
        parts.append(("tests", tests + files, {"TRITON_INTERPRET": "0"}))
    # The CPU paths of the tracks and benches are PyTorch's; the interpreter would only slow them.
    plain = {"TRITON_INTERPRET": "0"}
    for name in SUITES:
        suite = _dry_suite(name, work) if dry_run else ROOT / "suites" / "gpu" / f"{name}.yaml"
        parts.append(
            (
                f"track_{name}",
                [
                    py,
                    "-m",
                    "snnbench",
                    "run",
                    str(suite),
                    "--force",
                    "--results-dir",
                    str(work / "runs"),
                    "--cache-dir",
                    str(work / "cache"),
                ],
                plain,
            )
        )
    device = ["--device", "cpu", "--quick"] if dry_run else ["--device", "cuda"]
    for bench in BENCHES:
        extra = (DRY_BENCH_ARGS if dry_run else {"sparse": SPARSE_CARD_ARGS, "layer": LAYER_CARD_ARGS}).get(bench, [])
        parts.append(
            (
                f"bench_{bench}",
                [py, "-m", "snnbench", "bench", bench, *device, *extra, "--out", str(work / "bench")],
                plain,
            )
        )
    return parts


def run_part(name: str, argv: list[str], env_extra: dict[str, str], limit_s: float, logs: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **env_extra}
    log_path = logs / f"{name}.log"
    started = time.perf_counter()
    with open(log_path, "w") as log:
        log.write(" ".join(argv) + "\n")
        log.flush()
        try:
            proc = subprocess.run(
                argv,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=max(limit_s, 1),
                start_new_session=True,
            )
            rc: Optional[int] = proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
    return _part_result(name, rc, started, log_path, limit_s)


def _part_result(name: str, rc: Optional[int], started: float, log_path: Path, limit_s: Optional[float]) -> dict:
    """A part's summary entry; ``rc`` None means it ran past its limit."""
    return {
        "part": name,
        "ok": rc == 0,
        "rc": rc,
        "timed_out": rc is None,
        "seconds": round(time.perf_counter() - started, 1),
        "limit_s": None if limit_s is None else round(limit_s, 1),
        "tail": log_path.read_text(errors="replace").splitlines()[-3:] if log_path.exists() else [],
    }


def run_part_in_process(name: str, argv: list[str], env_extra: dict[str, str], logs: Path) -> dict[str, Any]:
    """The dry run's parts in this process: one import of torch instead of one per part. No limit."""
    import contextlib
    import traceback

    saved_env = {k: os.environ.get(k) for k in env_extra}
    os.environ.update(env_extra)
    log_path = logs / f"{name}.log"
    started = time.perf_counter()
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(" ".join(argv), flush=True)
        try:
            if argv[1:3] == ["-m", "pytest"]:
                import pytest

                rc: Optional[int] = int(pytest.main(argv[3:]))
            else:
                from snnbench.cli import app

                app(argv[3:], prog_name="snnbench", standalone_mode=False)
                rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # noqa: BLE001 - typer.Exit and failures alike end the part
            code = getattr(exc, "exit_code", None)
            rc = code if isinstance(code, int) else 1
            if code is None:
                traceback.print_exc()
        finally:
            for k, v in saved_env.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return _part_result(name, rc, started, log_path, None)


_ENVIRONMENT_CODE = (
    "import json, torch; from snnbench.records.env import environment; "
    "print(json.dumps(environment('cuda' if torch.cuda.is_available() else 'cpu'), default=str))"
)


def _environment(in_process: bool = False) -> dict[str, Any]:
    """Card and versions, asked of a part process (this one imports no torch); the dry run, whose
    parts ran in this process, runs the same code here (a fresh interpreter would import torch again)."""
    import contextlib
    import io

    try:
        if in_process:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(_ENVIRONMENT_CODE, {})
            text = printed.getvalue()
        else:
            cmd = [sys.executable, "-c", _ENVIRONMENT_CODE]
            text = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
        return json.loads(text.strip().splitlines()[-1])
    except Exception as err:  # noqa: BLE001 - the summary says so instead of losing the run
        return {"error": f"{type(err).__name__}: {err}"}


def _pytest_counts(xml: Path) -> dict[str, int]:
    import xml.etree.ElementTree as ET

    if not xml.exists():
        return {}
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def _collect(out: Path, work: Path) -> list[str]:
    """Copy the bench JSONs to OUT's top level and pack the work folder but its model cache; return
    what OUT holds (8 files: summary, log, tarball and the five bench JSONs)."""
    for bench in BENCHES:
        src = work / "bench" / f"{bench}.json"
        if src.exists():
            shutil.copyfile(src, out / f"{bench}.json")
    with tarfile.open(out / "gpu_check.tar.gz", "w:gz") as tar:
        # Trained models are large and can be retrained; records, logs and JSONs are what count.
        tar.add(
            work, arcname="gpu_check", filter=lambda info: None if info.name.startswith("gpu_check/cache") else info
        )
    return sorted(p.name for p in out.iterdir() if p.is_file())


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, help="folder for summary.json and the rest")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, interpreter (what CI runs)")
    ap.add_argument("--allow-dirty", action="store_true", help="run on an uncommitted tree; the summary says so")
    ap.add_argument("--budget-s", type=float, default=570.0, help="time for all parts together (default 570)")
    ap.add_argument("--parts", default="", help="comma-separated part names to run (default: all)")
    ap.add_argument("--print-env", action="store_true", help="print SNNBENCH_GIT_SHA and SNNBENCH_TREE_DIGEST of HEAD")
    return ap


def _print_env() -> int:
    sha, digest = (_git("rev-parse", "HEAD") or "").strip(), commit_digest()
    if not sha or digest is None:
        print("error: not a git checkout", file=sys.stderr)
        return 2
    print(f"SNNBENCH_GIT_SHA={sha} SNNBENCH_TREE_DIGEST={digest}")
    return 0


def _run_parts(parts: list, args: argparse.Namespace, logs: Path, started: float) -> list[dict[str, Any]]:
    """Each part in turn, each under its share of what is left of the budget."""
    deadline = started + args.budget_s
    results = []
    for i, (name, cmd, env) in enumerate(parts):
        left = deadline - time.perf_counter()
        # A part gets its own limit, but never so much that the parts after it get nothing.
        limit = left if args.dry_run else min(PART_LIMITS[name], left - 5 * (len(parts) - i - 1))
        print(f"[{time.perf_counter() - started:6.1f} s] {name} (limit {limit:.0f} s)", flush=True)
        if args.dry_run:
            result = run_part_in_process(name, cmd, env, logs)
        elif limit > 0:
            result = run_part(name, cmd, env, limit, logs)
        else:
            result = _part_result(name, None, time.perf_counter(), logs / f"{name}.log", 0.0)
            result["tail"] = ["not started: the time budget was spent"]
        results.append(result)
        print(f"          {'ok' if result['ok'] else 'FAILED'} in {result['seconds']} s", flush=True)
    return results


def _summary(args: argparse.Namespace, tree: dict, results: list, work: Path, started: float) -> dict[str, Any]:
    tests = next((r for r in results if r["part"] == "tests"), None)
    if tests is not None:
        tests["counts"] = _pytest_counts(work / "pytest.xml")
    env_info = _environment(in_process=args.dry_run)
    return {
        "benchmark": "gpu_check",
        "dry_run": args.dry_run,
        "tree": tree,
        "budget_s": args.budget_s,
        "parts": results,
        "ok": all(r["ok"] for r in results) and tree["clean"] is True,
        "card": env_info.get("hardware"),
        "versions": {k: env_info.get(k) for k in ("python", "torch", "triton", "torchvision", "numpy", "snnbench")},
        "environment": env_info,
        "elapsed_s": round(time.perf_counter() - started, 1),
        # One row per part, so that the summary reads as a bench file (leaderboard, compare).
        "rows": [{"part": r["part"], "passed": "yes" if r["ok"] else "no", "part_s": r["seconds"]} for r in results],
    }


def main(argv: Optional[list[str]] = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.print_env:
        return _print_env()
    if args.out is None:
        ap.error("OUT is required")
    tree = tree_state(args.allow_dirty)
    out = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} is not empty; give a new or empty folder", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    # Parts write into a scratch folder packed into one tarball at the end: OUT itself holds only a
    # few files at its top level (what a lent machine can return).
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    logs = work / "logs"
    logs.mkdir(parents=True)
    started = time.perf_counter()
    wanted = {p for p in args.parts.split(",") if p}
    every_part = plan(work, args.dry_run)
    parts = [p for p in every_part if not wanted or p[0] in wanted]
    unknown = wanted - {p[0] for p in every_part}
    if unknown:
        print(f"error: --parts: unknown {sorted(unknown)}", file=sys.stderr)
        return 2
    results = _run_parts(parts, args, logs, started)
    summary = _summary(args, tree, results, work, started)
    log = "\n".join(
        f"{r['part']:18s} {'ok' if r['ok'] else 'FAILED':6s} {r['seconds']:7.1f} s  "
        + (r["tail"][-1] if r["tail"] else "")
        for r in results
    )
    (out / "log.txt").write_text(log + "\n")
    _write_json(work / "summary.json", summary)
    summary["files"] = sorted(set(_collect(out, work)) | {"summary.json"})
    _write_json(out / "summary.json", summary)
    shutil.rmtree(work, ignore_errors=True)
    print(log)
    print(f"{'PASS' if summary['ok'] else 'FAIL'}: {out / 'summary.json'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
