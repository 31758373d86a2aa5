"""The student edition (`python -m helpers student`, helpers/student.py): written from the book by nbgrader's
ClearSolutions, every exercise stubbed with its signature and docstring kept; run with every exercise unsolved,
each grader says "not yet implemented" and nothing else fails (the cheap subset CI runs: each chapter's first cell
and its exercise and grader cells); the instructor edition passes every grader."""

import json

import pytest

from helpers import graders, student
from test_cli import _run  # (status, stdout, stderr) of `python -m helpers ARGV`


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "edition"
    return out, student.write_edition(out)


def test_the_student_edition_stubs_every_solution_and_keeps_the_signature(edition):
    out, written = edition
    assert [p.name for p in written] == sorted(p.name for p in student.BOOK.glob("[0-9][0-9]_*.ipynb"))
    assert (out / "helpers" / "graders.py").exists() and (out / "checkpoints" / "manifest.json").exists()
    assert not list((out / "checkpoints").glob("*.resume.pt"))
    stubs = 0
    for path in written:
        cells = json.loads(path.read_text())["cells"]
        assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")
        for cell in cells:
            source = "".join(cell["source"])
            assert student.SOLUTION_BEGIN not in source and student.SOLUTION_END not in source
            if student.EXERCISE_TAG in cell["metadata"].get("tags", []):
                assert source.startswith("def ") and '"""' in source and "raise NotImplementedError()" in source
                stubs += 1
    assert stubs == len(graders.EXERCISES)


@pytest.mark.usefixtures("mnist")
def test_every_student_chapter_runs_with_every_exercise_unsolved(edition):
    _, written = edition
    seen = {}
    for path in written:
        seen.update(student.exercise_run(path))
    assert set(seen) == set(graders.EXERCISES)  # every exercise is in a chapter, graded once
    for name, verdict in seen.items():
        assert verdict.splitlines()[0].endswith(graders.NOT_IMPLEMENTED), verdict


@pytest.mark.usefixtures("mnist")
def test_the_instructor_edition_passes_every_grader_and_grade_says_so(capsys):
    code, out, _ = _run(capsys, "grade", str(student.BOOK))
    assert code == 0 and f"{len(graders.EXERCISES)} of {len(graders.EXERCISES)} exercises passed" in out


def test_the_student_edition_needs_a_new_or_empty_folder(capsys, tmp_path):
    (tmp_path / "x").write_text("")
    code, _, err = _run(capsys, "student", "--out", str(tmp_path))
    assert code == 2 and "must be a new or empty folder" in err
