"""Regenerate the book's executed notebooks: `python -m helpers notebooks [--mode fast|full]`.

The chapters are committed executed (the book shows those outputs; CI reruns them under nbval). This runs
each chapter with `jupyter nbconvert --execute` in a fresh kernel, `jobs` at a time, each kernel with
cores / jobs torch threads (two kernels of two threads each on two cores run 10-100x slower), and writes
the executed notebooks in place or to `out`. Full mode trains every model whose full checkpoint is missing:
run it on a GPU machine (COURSE_DEVICE=cuda). Used by maintainers; the README names both commands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import CourseError

BOOK = Path(__file__).resolve().parents[1] / "book"


def chapters(names: list[str] | None = None, book: Path = BOOK) -> list[Path]:
    """The chapter notebooks of `book`, in order; `names` picks some by prefix ('05', '05_vp_sde_1d').

    Raises CourseError naming an unknown prefix, with the chapters there are."""
    every = sorted(book.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    picked = []
    for name in names:
        found = [p for p in every if p.stem.startswith(name.removesuffix(".ipynb"))]
        if not found:
            raise CourseError(f"no chapter {name!r} in {book}; there are {', '.join(p.stem for p in every)}")
        picked += [p for p in found if p not in picked]
    return picked


def command(notebook: Path, out: Path | None, timeout: int) -> list[str]:
    """The nbconvert command line that executes `notebook`, in place or into the folder `out`."""
    where = ["--inplace"] if out is None else ["--output-dir", str(out)]
    return [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", str(notebook),
            f"--ExecutePreprocessor.timeout={timeout}", *where]


def run(mode: str = "fast", names: list[str] | None = None, jobs: int = 2, out: Path | None = None,
        timeout: int = 7200, book: Path = BOOK, threads: int | None = None) -> list[tuple[str, float, int]]:
    """Execute the chapters of `book` in `mode`, `jobs` at a time; returns (notebook, seconds, exit status) each.

    Each kernel runs with COURSE_MODE=mode and `threads` torch threads (None: max(1, cores // jobs); give 1
    while a training runs beside, on a 2-core machine); a failing chapter is reported with the tail of its
    log and does not stop the others."""
    if mode not in ("fast", "full"):
        raise CourseError(f"mode must be 'fast' or 'full', got {mode!r}")
    if shutil.which("jupyter") is None and not _has_nbconvert():
        raise CourseError("jupyter nbconvert is not installed here: pip install -r requirements.txt")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    threads = str(threads or max(1, (os.cpu_count() or 1) // jobs))
    env = dict(os.environ, COURSE_MODE=mode, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)

    def one(notebook: Path) -> tuple[str, float, int]:
        t0 = time.perf_counter()
        proc = subprocess.run(command(notebook, out, timeout), env=env, cwd=notebook.parent,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        state = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        print(f"{notebook.name}: {state} in {seconds:.0f} s", flush=True)
        if proc.returncode:
            print("\n".join(proc.stderr.splitlines()[-25:]), file=sys.stderr, flush=True)
        return notebook.name, seconds, proc.returncode

    todo = chapters(names, book)
    print(f"executing {len(todo)} chapters in {mode} mode, {jobs} at a time, {threads} torch threads each", flush=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, todo))


def _has_nbconvert() -> bool:
    try:
        import nbconvert  # noqa: F401
    except ImportError:
        return False
    return True
