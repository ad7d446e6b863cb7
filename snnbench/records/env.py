"""Environment fingerprint stored with every record and benchmark: what produced these numbers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional


def _version(module: str) -> Optional[str]:
    """The version of an installed package without importing it (importing triton and torchvision
    for their version strings took seconds of every run); a module already loaded says its own."""
    loaded = sys.modules.get(module)
    if loaded is not None and hasattr(loaded, "__version__"):
        return str(loaded.__version__)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_sha() -> Optional[str]:
    """HEAD of the checkout (with ``-dirty`` for uncommitted changes); a copy of the tree without
    ``.git`` (a GPU machine) is told its commit through ``SNNBENCH_GIT_SHA``. An installed wheel has
    no checkout: without that variable its SHA is unknown (None), never that of a repository that
    happens to hold the environment."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return os.environ.get("SNNBENCH_GIT_SHA") or None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    sha = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
    )
    return sha + ("-dirty" if dirty.stdout.strip() else "")


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def device_description(device: Optional[str] = None) -> dict[str, Any]:
    import torch

    if torch.cuda.is_available() and device != "cpu":
        idx = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        return {
            "device": "cuda",
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "sm_count": props.multi_processor_count,
            "cuda": torch.version.cuda,
        }
    # CPU sums are reduced in a thread-count-dependent order, and in vector widths that depend on the
    # instruction set torch dispatches to (AVX2, AVX512): both are part of what produced a number (the
    # demo's records differ between two 2-core hosts: docs/performance.md).
    return {
        "device": "cpu",
        "name": _cpu_model() or platform.processor() or platform.machine(),
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),  # torch >= 2.1
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), or "" where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def environment(device: Optional[str] = None) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": _version("torch"),
        "triton": _version("triton"),
        "torchvision": _version("torchvision"),
        "numpy": _version("numpy"),
        "snnbench": _version("snnbench"),
        "git_sha": git_sha(),
        "triton_interpreter": triton_interpreted(),
        "hardware": device_description(device),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
    }
