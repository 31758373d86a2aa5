"""The command line: errors are one line with status 2; list, train and sample work."""

import numpy as np
import pytest

from helpers import cli, config, data


def _run(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv, message", [
    (["sample", "nope", "--n", "3", "--out", "x.npy"], "unknown model 'nope'"),
    (["sample", "moons-ddpm", "--n", "0", "--out", "x.npy"], "positive integer"),
    (["sample", "moons-ddpm", "--n", "abc", "--out", "x.npy"], "positive integer"),
    (["sample", "moons-ddpm", "--n", "5", "--steps", "-1", "--out", "x.npy"], "positive integer"),
    (["sample", "moons-ddpm", "--n", "5", "--out", "/no/such/folder/x.npy"], "does not exist"),
    (["sample", "moons-ddpm", "--n", "5", "--out", "x.txt"], ".npy"),
    (["sample", "moons-ddpm", "--n", "5", "--out", "x.npy", "--sampler", "ode"], "samplers"),
    (["sample", "moons-ddpm", "--n", "5", "--steps", "5000", "--out", "x.npy"], "steps must be an integer in 1..1000"),
    (["train", "nope"], "unknown model"),
    (["frobnicate"], "invalid choice"),
    (["quality", "/no/such/file.npy"], "cannot read"),
])
def test_bad_input_is_one_line_and_status_2(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_list_names_every_model(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0 and "moons-ddpm" in out and "moons-ncsn" in out


def test_sample_from_the_shipped_checkpoints_in_data_coordinates(capsys, tmp_path):
    for name, steps in (("moons-ddpm", 100), ("moons-ncsn", 10)):
        out = tmp_path / f"{name}.npy"
        code, stdout, err = _run(capsys, "sample", name, "--n", "500", "--out", str(out),
                                 "--steps", str(steps), "--seed", "1")
        assert code == 0, err
        x = np.load(out)
        assert x.shape == (500, 2) and x.dtype == np.float32
        mean, _ = data.moons_moments(0.05)
        assert np.allclose(x.mean(0), mean.numpy(), atol=0.15)  # moons' own coordinates, not standardised


def test_train_fast_writes_a_checkpoint_and_manifest_entry(capsys, tmp_checkpoints):
    code, out, err = _run(capsys, "train", "sde-1d", "--fast", "--no-progress")  # the quickest model to train
    assert code == 0, err
    assert (tmp_checkpoints / "sde-1d.pt").exists() and "w1" in out
    code, out, _ = _run(capsys, "list")
    assert "checkpoint ok (fast mode" in out


def test_time_reports_a_training_step_and_a_sampling_run(capsys):
    code, out, err = _run(capsys, "time", "moons-ddpm", "--steps", "2")
    assert code == 0, err
    assert "174,082 parameters" in out and "s per training step (batch 1024, mean of 2)" in out
    assert "to sample 64 with --steps 2" in out
    code, _, err = _run(capsys, "time", "nope")
    assert code == 2 and "unknown model" in err


@pytest.mark.usefixtures("mnist")
def test_quality_scores_mnist_digits_and_refuses_other_arrays(capsys, tmp_path):
    images, _ = data.mnist_tensors_cached(train=True)  # real digits, none of them the floor's held-out ones
    np.save(tmp_path / "test.npy", images[:200, 0].numpy())
    np.save(tmp_path / "moons.npy", np.zeros((5, 2), np.float32))
    code, out, _ = _run(capsys, "quality", str(tmp_path / "test.npy"))
    assert code == 0 and out.startswith("n = 200: FD ")
    ratio = float(out.split("(ratio ")[1].split(")")[0])
    assert ratio < 2  # real digits score about their floor (noise scores hundreds of times it)
    code, _, err = _run(capsys, "quality", str(tmp_path / "moons.npy"))
    assert code == 2 and "expected MNIST digits" in err


@pytest.mark.usefixtures("mnist")
def test_quality_with_a_label_scores_real_digits_of_that_class_near_their_floor_and_others_far(capsys, tmp_path):
    images, labels = data.mnist_tensors_cached(train=True)
    threes = images[:3000][labels[:3000] == 3][:100, 0].numpy()
    np.save(tmp_path / "threes.npy", threes)
    code, out, err = _run(capsys, "quality", str(tmp_path / "threes.npy"), "--label", "3")
    assert code == 0, err
    assert out.startswith("n = 100 meant as 3: accuracy ") and "within floor + 2 sd: True" in out
    assert float(out.split("accuracy ")[1].split("%")[0]) > 95
    code, out, _ = _run(capsys, "quality", str(tmp_path / "threes.npy"), "--label", "8")
    assert code == 0 and "accuracy 0.0%" in out and "within floor + 2 sd: False" in out
    code, _, err = _run(capsys, "quality", str(tmp_path / "threes.npy"), "--label", "10")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_scramble_copies_the_checkpoints_with_one_model_permuted(capsys, tmp_path):
    """The copy's moons-ddpm loads under its new hash with the shipped entry's recorded metrics; a second run
    into the same folder is refused with one line. (What the permutation does: test_checkpoints.)"""
    from helpers import checkpoints

    code, out, err = _run(capsys, "scramble", "moons-ddpm", "--out", str(tmp_path / "s"))
    assert code == 0 and "COURSE_CHECKPOINTS" in out, err
    _, entry = checkpoints.load_model(tmp_path / "s", "moons-ddpm")
    _, shipped = checkpoints.load_model(config.checkpoint_dir(), "moons-ddpm")
    assert entry["metrics"] == shipped["metrics"] and entry["sha256"] != shipped["sha256"]
    code, _, err = _run(capsys, "scramble", "moons-ddpm", "--out", str(tmp_path / "s"))
    assert code == 2 and "exists" in err


def test_schedules_refuses_a_sampler_that_is_not_a_few_step_solver(capsys):
    code, _, err = _run(capsys, "schedules", "mnist-ddpm", "--sampler", "ancestral")
    assert code == 2 and "not a few-step solver" in err and "sde-dpm2m" in err
    code, _, err = _run(capsys, "schedules", "mnist-ddpm", "--sampler", "nope")
    assert code == 2 and "has samplers" in err


@pytest.mark.usefixtures("mnist")
def test_schedules_prints_one_row_per_schedule_and_last_time(capsys):
    """Every schedule x last time of `schedule_study.settings_grid`, on 8 digits of 3 calls; the nine FDs differ,
    so each setting reaches the solver (with 3 calls the schedules place the middle call differently)."""
    code, out, err = _run(capsys, "schedules", "mnist-ddpm", "--steps", "3", "--n", "8", "--seeds", "0",
                          "--device", "cpu")
    assert code == 0, err
    rows = [line for line in out.splitlines() if ": FD " in line]
    assert len(rows) == 9 and "lowest mean FD" in out
    assert len({line.split(": FD ")[1].split(" ")[0] for line in rows}) == 9
