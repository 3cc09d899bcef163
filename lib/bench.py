"""The project's benchmark: prints a table and writes JSON.

Each case runs in a fresh Python process so that its peak memory (max RSS) is its own;
seconds are the median of the repeats inside that process.
"""
from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lib import config as C

CASES: dict[str, dict] = {}


def case(name: str, group: str, repeat: int = 3):
    def register(fn):
        CASES[name] = {"fn": fn, "group": group, "repeat": repeat}
        return fn
    return register


@case("python + pandas import (baseline)", "data", repeat=1)
def _baseline(work: Path) -> dict:
    import pandas  # noqa: F401
    return {}


@case("generate synthetic ML-1M (1,000,209 ratings)", "data")
def _generate(work: Path) -> dict:
    from lib.synthetic import write_synthetic
    write_synthetic(work / "synthetic", "ml-1m")
    return {"rows": 1_000_209}


@case("load ratings.dat (ML-1M size)", "data")
def _load_ratings(work: Path) -> dict:
    from lib import data
    folder = _ensure_synthetic(work)
    info = C.release_info("synthetic")
    frame = data._read_ratings(folder, info, [])[0]
    return {"rows": len(frame)}


@case("load + validate ML-1M-sized release", "data")
def _load_all(work: Path) -> dict:
    from lib import data
    _ensure_synthetic(work)
    ds = data.load_dataset("synthetic", work)
    return {"rows": len(ds.ratings)}


@case("generate synthetic at scale 10 (10M ratings)", "data-scale", repeat=1)
def _generate10(work: Path) -> dict:
    from lib.synthetic import write_synthetic
    write_synthetic(work / "synthetic-x10", "ml-1m", scale=10)
    return {"rows": 10_002_090}


def _ensure_synthetic(work: Path) -> Path:
    folder = work / "synthetic"
    if not (folder / "ratings.dat").is_file():
        from lib.synthetic import write_synthetic
        write_synthetic(folder, "ml-1m")
    return folder


def run_case(name: str, work: Path) -> dict:
    """Run one case in this process; return seconds (median, min) and peak RSS."""
    import resource
    spec = CASES[name]
    times, extra = [], {}
    for _ in range(spec["repeat"]):
        t0 = time.perf_counter()
        extra = spec["fn"](work) or {}
        times.append(time.perf_counter() - t0)
    peak_kb = _peak_rss_kb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"case": name, "group": spec["group"], "seconds": statistics.median(times),
            "best_seconds": min(times), "repeats": len(times), "peak_mb": peak_kb / 1024,
            **extra}


def _peak_rss_kb() -> int | None:
    """This process's own peak RSS (VmHWM), which, unlike ru_maxrss, does not carry the
    parent's peak over fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main(groups: list[str] | None = None, out: Path | None = None) -> list[dict]:
    """Run the cases of `groups` (all but the scale ones by default), print, write JSON."""
    groups = groups or ["data"]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        _ensure_synthetic(work)
        for name, spec in CASES.items():
            if spec["group"] not in groups:
                continue
            proc = subprocess.run([sys.executable, "-m", "lib.bench", name, str(work)],
                                  capture_output=True, text=True, cwd=C.PROJ_ROOT)
            if proc.returncode != 0:
                raise RuntimeError(f"benchmark case {name!r} failed:\n{proc.stderr[-2000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    _print_table(results)
    report = {"machine": {"python": platform.python_version(), "cpus": _cpus(),
                          "platform": platform.platform()},
              "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": results}
    out = Path(out or C.PROJ_ROOT / "benchmarks.json")
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"written to {out}")
    return results


def _cpus() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _print_table(results: list[dict]) -> None:
    extra_cols = sorted({k for r in results for k in r} -
                        {"case", "group", "seconds", "best_seconds", "repeats", "peak_mb"})
    header = ["case", "seconds", "best", "peak MB", *extra_cols]
    rows = [[r["case"], f"{r['seconds']:.3f}", f"{r['best_seconds']:.3f}",
             f"{r['peak_mb']:.0f}", *[_fmt(r.get(c)) for c in extra_cols]] for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for i, row in enumerate([header, *rows]):
        print("  ".join(str(x).ljust(w) if j == 0 else str(x).rjust(w)
                        for j, (x, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


if __name__ == "__main__":
    print(json.dumps(run_case(sys.argv[1], Path(sys.argv[2]))))
