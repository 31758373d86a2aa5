"""TensorBoard logs of trainings (helpers/tblog.py, `train --log-dir`): the tags and steps a run writes, a resumed
run that logs no step twice, nothing written without a log folder, and bad folders refused."""

import dataclasses

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import models, tblog, training
from test_cli import _run  # (status, stdout, stderr) of `python -m helpers ARGV`


def _events(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


@pytest.mark.usefixtures("tmp_checkpoints")
def test_a_logged_training_has_every_scalar_at_every_step_records_and_a_sample_figure(tmp_path, monkeypatch):
    spec = models.get("ebm-2d")  # the latent EBM records its energies each step; 20 steps are enough here
    monkeypatch.setitem(models.REGISTRY, "ebm-2d", dataclasses.replace(spec, fast={**spec.fast, "steps": 20}))
    _, entry, result = models.train_model("ebm-2d", "fast", progress=False, evaluate=False, log_dir=tmp_path / "logs")
    acc = _events(tmp_path / "logs" / "ebm-2d")
    steps = entry["train_steps"]
    for tag in ("train/loss", "train/lr", "train/grad_norm", *(f"record/{k}" for k in result.records[0])):
        assert [e.step for e in acc.Scalars(tag)] == list(range(steps)), tag
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx(result.losses, rel=1e-6)
    rate = acc.Scalars("train/steps_per_s")  # every 100 steps and at the last: here the last alone
    assert [e.step for e in rate] == [steps - 1] and 0 < rate[0].value < 1e5
    assert [e.step for e in acc.Images("samples")] == [0, steps - 1]  # sample_every 1000: the first and the last


@pytest.mark.usefixtures("tmp_checkpoints", "mnist")
def test_mnist_models_log_an_image_grid_and_a_warm_restart_goes_on_from_the_first_phase(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_LOG_DIR", str(tmp_path / "logs"))  # the variable instead of the argument
    spec = models.get("mnist-vpsde")  # a frozen dataclass: its fast budget swapped for this test only
    monkeypatch.setitem(models.REGISTRY, "mnist-vpsde", dataclasses.replace(
        spec, fast={**spec.fast, "steps": 4, "restart": {"steps": 3, "lr": 1e-4, "warmup": 0}}))
    models.train_model("mnist-vpsde", "fast", progress=False, evaluate=False)
    acc = _events(tmp_path / "logs" / "mnist-vpsde")
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(7))
    image = acc.Images("samples")[-1]
    assert image.step == 6 and image.width > image.height > 0  # a grid of 16 digits, two rows of 8


def test_a_resumed_training_logs_no_step_twice(tmp_path):
    calls = {"n": 0}

    def loss_fn(model, batch, g):
        calls["n"] += 1
        if calls["n"] == 16:
            raise KeyboardInterrupt  # stopped after its checkpoint at step 10
        return (model(batch) ** 2).mean()

    def run():
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1)
        log = tblog.RunLog(tmp_path / "run")
        return training.train(model, loss_fn, lambda g: torch.randn(8, 2, generator=g), steps=20, lr=1e-2,
                              generator=torch.Generator().manual_seed(0), resume_path=tmp_path / "r.resume.pt",
                              checkpoint_every=10, progress=False, log=log)

    with pytest.raises(KeyboardInterrupt):
        run()
    assert run().resumed_from == 10
    steps = [e.step for e in _events(tmp_path / "run").Scalars("train/loss")]
    assert steps == list(range(20))  # steps 10-14 of the stopped run are purged, then logged again once


@pytest.mark.usefixtures("tmp_checkpoints")
def test_without_a_log_folder_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COURSE_LOG_DIR", raising=False)
    models.train_model("sde-1d", "fast", progress=False, evaluate=False, save=False)
    assert not list(tmp_path.rglob("events.out.tfevents*")) and not (tmp_path / "runs").exists()


def test_a_bad_log_folder_is_refused_in_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    for bad, message in ((tmp_path / "file", "is a file, not a folder"), (tmp_path / "file" / "sub", "cannot write logs")):
        code, _, err = _run(capsys, "train", "sde-1d", "--fast", "--log-dir", str(bad))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_profile_writes_a_trace_and_prints_the_top_operators_and_needs_a_log_folder(capsys, tmp_path, monkeypatch):
    code, out, err = _run(capsys, "train", "sde-1d", "--fast", "--profile", "--log-dir", str(tmp_path))
    assert code == 0, err
    assert "Self CPU" in out and "aten::" in out
    assert list((tmp_path / "sde-1d" / "profile").glob("*.pt.trace.json"))
    monkeypatch.delenv("COURSE_LOG_DIR", raising=False)
    code, _, err = _run(capsys, "train", "sde-1d", "--fast", "--profile")
    assert code == 2 and "--profile writes a trace for TensorBoard" in err and len(err.strip().splitlines()) == 1
