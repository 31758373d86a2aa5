"""The student edition: the chapters with each exercise's solution replaced by a stub. `python -m helpers student`.

One source: the book's chapters are the instructor edition. A solution sits in a code cell tagged `exercise`,
between nbgrader's markers, inside the function so its signature and docstring stay:

    def forward_marginal(x0, i, alpha_bars):
        \"\"\"... shapes and the equation ...\"\"\"
        ### BEGIN SOLUTION
        abar = alpha_bars[i - 1][:, None]
        return abar.sqrt() * x0, (1 - abar).sqrt()
        ### END SOLUTION

and the next cell, tagged `grader`, calls `graders.grade(...)` (helpers/graders.py). `write_edition` runs
nbgrader's own ClearSolutions preprocessor (the region becomes `raise NotImplementedError()`) and ClearOutput on
every chapter, and copies what the chapters need to run: helpers/, the shipped checkpoints, requirements.txt and
pyproject.toml. `exercise_run` executes the cheap part of a student chapter, its first code cell (imports) and its
exercise and grader cells, which CI runs on the whole edition (tests/test_student.py).
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

from .errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"  # nbgrader's markers
EXERCISE_TAG, GRADER_TAG = "exercise", "grader"

STUDENT_README = """# Score-based generative models: the student edition

The chapters in `book/` are the course's, with the exercises left for you: each exercise is a function whose body
raises `NotImplementedError`. Write it, run the cell after it, and its grader says what passed and what did not
(a variance where a standard deviation belongs, a sign of the score, the step index i where the time i / T
belongs, ...). Until then the chapter goes on with the course's own function, so you can read on.

    python3 -m venv .venv && . .venv/bin/activate
    pip install -r requirements.txt      # the course package (helpers/) and JupyterLab
    jupyter lab book/

`python -m helpers grade book` prints every exercise's verdict.
"""


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def student_notebook(path: Path):
    """The student version of one chapter (an nbformat notebook): solutions stubbed, outputs cleared.
    ConfigError when an `exercise` cell has no solution region."""
    import nbformat
    from nbgrader.preprocessors import ClearOutput, ClearSolutions

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if EXERCISE_TAG in _tags(cell) and SOLUTION_BEGIN not in cell.source:
            raise ConfigError(f"{path.name}: a cell tagged {EXERCISE_TAG!r} has no {SOLUTION_BEGIN!r} region")
    nb, _ = ClearSolutions(enforce_metadata=False).preprocess(nb, {})
    nb, _ = ClearOutput().preprocess(nb, {})
    return nb


def write_edition(out: str | Path, book: Path = BOOK) -> list[Path]:
    """Write the student edition to `out` (a new or empty folder): book/ with every chapter stubbed, and the
    course package, checkpoints and requirements beside it. Returns the notebooks written."""
    import nbformat

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {str(out)!r} must be a new or empty folder")
    (out / "book").mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(book.glob("[0-9][0-9]_*.ipynb")):
        nbformat.write(student_notebook(path), str(out / "book" / path.name))
        written.append(out / "book" / path.name)
    shutil.copytree(ROOT / "helpers", out / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "checkpoints", out / "checkpoints", ignore=shutil.ignore_patterns("*.resume.pt", "*.lock", "*.tmp"))
    for name in ("requirements.txt", "pyproject.toml", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, out / name)
    (out / "README.md").write_text(STUDENT_README)
    return written


def exercise_run(path: str | Path) -> dict[str, str]:
    """Execute a chapter's first code cell and its exercise and grader cells (in that order, in one namespace, in
    this process); returns {exercise name: the grader's printed verdict}. Exceptions other than a grader's
    verdict propagate: a student chapter must run with every exercise unsolved."""
    import nbformat

    from . import graders

    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    picked = code[:1] + [c for c in code[1:] if {EXERCISE_TAG, GRADER_TAG} & set(_tags(c))]
    namespace: dict = {}
    verdicts: dict[str, str] = {}
    original = graders.grade

    def recording_grade(name, fn):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            result = original(name, fn)
        verdicts[name] = buffer.getvalue()
        return result

    graders.grade = recording_grade
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for cell in picked:
                exec(compile(cell.source, f"{Path(path).name}", "exec"), namespace)
    finally:
        graders.grade = original
    return verdicts
