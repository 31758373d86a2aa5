"""`helpers.notebooks`: choosing chapters, and executing one in the requested mode (a tiny notebook)."""

import json
import os

import pytest

from helpers import notebooks
from helpers.cli import main
from helpers.errors import CourseError


def _notebook(path, source):
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}
    nb = {"cells": [cell], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                       "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def test_chapters_in_order_and_by_prefix(tmp_path):
    for name in ("02_b", "01_a", "10_c", "notes"):
        _notebook(tmp_path / f"{name}.ipynb", "1")
    assert [p.stem for p in notebooks.chapters(None, tmp_path)] == ["01_a", "02_b", "10_c"]
    assert [p.stem for p in notebooks.chapters(["02", "01_a.ipynb", "02_b"], tmp_path)] == ["02_b", "01_a"]
    with pytest.raises(CourseError, match="no chapter '09'.*01_a, 02_b, 10_c"):
        notebooks.chapters(["09"], tmp_path)


def test_the_book_has_its_eight_chapters():
    assert [p.stem[:2] for p in notebooks.chapters()] == [f"0{k}" for k in range(1, 9)]


def test_run_executes_in_the_mode_asked_with_capped_threads(tmp_path):
    book, out = tmp_path / "book", tmp_path / "out"
    book.mkdir()
    _notebook(book / "01_env.ipynb", "import os\nprint(os.environ['COURSE_MODE'], os.environ['OMP_NUM_THREADS'])")
    _notebook(book / "02_fails.ipynb", "raise RuntimeError('on purpose')")
    results = notebooks.run("full", None, jobs=2, out=out, timeout=120, book=book)
    assert [(name, code != 0) for name, _, code in results] == [("01_env.ipynb", False), ("02_fails.ipynb", True)]
    cell = json.loads((out / "01_env.ipynb").read_text())["cells"][0]
    mode, threads = "".join(cell["outputs"][0]["text"]).split()
    assert mode == "full" and int(threads) == max(1, (os.cpu_count() or 1) // 2)  # cores shared by the 2 jobs
    assert json.loads((book / "01_env.ipynb").read_text())["cells"][0]["outputs"] == []  # the source is untouched


def test_run_refuses_an_unknown_mode(tmp_path):
    with pytest.raises(CourseError, match="mode must be 'fast' or 'full', got 'quick'"):
        notebooks.run("quick", book=tmp_path)


def test_cli_names_an_unknown_chapter(capsys):
    assert main(["notebooks", "99"]) == 2
    assert "no chapter '99'" in capsys.readouterr().err
