"""Bad inputs at the boundary: each is refused with a CourseError whose message says what to do, and the
command line prints it as one line with status 2 (a bug elsewhere keeps its traceback)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from helpers import checkpoints, cli, config, metrics, models, nets
from helpers.errors import CheckpointError, ConfigError, CourseError, TrainingDiverged


def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_corrupt_manifest_names_the_file_and_how_to_restore_it(tmp_checkpoints, capsys):
    (tmp_checkpoints / "manifest.json").write_text('{"models": {"moons-ddpm": ')
    with pytest.raises(CheckpointError, match="manifest.json is not valid JSON.*git checkout"):
        models.load("moons-ddpm")
    code, _, err = _cli(capsys, "list")
    assert code == 2 and "manifest.json is not valid JSON" in err and err.count("\n") == 1


def test_weights_that_do_not_fit_the_network_say_which_model_and_how_to_retrain(tmp_checkpoints):
    spec = models.get("moons-ddpm")
    other = nets.TimeMLP(dim=2, hidden=16, depth=3, time_dim=64)  # the spec's config, another network's weights
    checkpoints.save_model(tmp_checkpoints, "moons-ddpm", other.state_dict(), spec.config, {"mode": "full"})
    with pytest.raises(CheckpointError, match="do not fit the moons-ddpm network.*python -m helpers train moons-ddpm"):
        models.load("moons-ddpm")
    state = nets.TimeMLP(dim=2, **spec.config["arch"]).state_dict()
    state.pop(next(iter(state)))  # a missing key
    checkpoints.save_model(tmp_checkpoints, "moons-ddpm", state, spec.config, {"mode": "full"})
    with pytest.raises(CheckpointError, match="do not fit the moons-ddpm network"):
        models.load("moons-ddpm")


def test_a_malformed_manifest_entry_is_reported_by_list_and_refused_by_load(tmp_checkpoints, capsys):
    (tmp_checkpoints / "manifest.json").write_text(json.dumps({"models": {"moons-ddpm": {"file": "moons-ddpm.pt"}}}))
    code, out, _ = _cli(capsys, "list")
    assert code == 0 and "manifest entry MALFORMED (lacks sha256, config" in out
    with pytest.raises(CheckpointError, match="lacks sha256, config"):
        models.load("moons-ddpm")


def test_a_diverging_training_names_the_model_step_and_loss(monkeypatch, tmp_checkpoints, capsys):
    spec = models.get("moons-ddpm")
    nan_loss = lambda cfg: (lambda model, x, g: model(x, torch.zeros(len(x))).sum() * float("nan"))  # noqa: E731
    monkeypatch.setitem(models.REGISTRY, "moons-ddpm", dataclasses.replace(spec, loss=nan_loss, fast={"steps": 5}))
    with pytest.raises(TrainingDiverged, match=r"moons-ddpm \(fast\): loss became nan at step 0"):
        models.train_model("moons-ddpm", "fast", progress=False, evaluate=False)
    code, _, err = _cli(capsys, "train", "moons-ddpm", "--fast", "--no-progress")
    assert code == 2 and "moons-ddpm (fast): loss became nan at step 0" in err and err.count("\n") == 1


def test_the_missing_evaluation_classifier_says_how_to_get_it(tmp_checkpoints):
    with pytest.raises(CheckpointError, match="mnist-eval.*python -m helpers train mnist-eval"):
        models.evaluation_classifier()


def test_full_mode_never_trains_the_full_budget_unasked(tmp_checkpoints, capsys):
    with pytest.raises(CheckpointError, match=r"takes about \d+ minutes.*python -m helpers train moons-ddpm"):
        models.load_or_train("moons-ddpm", mode="full")
    assert not (tmp_checkpoints / "moons-ddpm.pt").exists()


def test_course_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys, tmp_path):
    assert issubclass(ConfigError, ValueError) and issubclass(TrainingDiverged, FloatingPointError)
    with pytest.raises(ConfigError, match="device"):
        config.device("tpu")
    with pytest.raises(ConfigError, match="unknown model"):
        cli.main(["--traceback", "sample", "nope", "--n", "2", "--out", str(tmp_path / "x.npy")])
    code, _, err = _cli(capsys, "sample", "moons-ddpm", "--n", "2", "--sampler", "ode", "--out", str(tmp_path / "x.npy"))
    assert code == 2 and err == "error: moons-ddpm has samplers ancestral; got 'ode'\n"

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(models, "sample", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["sample", "moons-ddpm", "--n", "2", "--out", str(tmp_path / "x.npy")])
    assert issubclass(CheckpointError, CourseError)


def test_quality_refuses_pixels_outside_0_1_in_one_line(capsys, tmp_path):
    np.save(tmp_path / "signed.npy", np.full((4, 28, 28), -1.0, np.float32))
    code, _, err = _cli(capsys, "quality", str(tmp_path / "signed.npy"))
    assert code == 2 and "expected pixels in [0, 1]" in err and err.count("\n") == 1
