"""Checkpoints: round trip, tamper detection, atomic writes, resume after a crash (training and sampling),
load_or_train, evaluate_model."""

import dataclasses
import json
import multiprocessing

import numpy as np
import pytest
import torch
from torch import nn

from helpers import checkpoints, cli, config, models, nets, training
from helpers.errors import ConfigError


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))


def test_save_and_load_round_trip_with_manifest(tmp_path):
    model = _tiny()
    checkpoints.save_model(tmp_path, "tiny", model.state_dict(), {"arch": {"h": 8}}, {"mode": "full"})
    state, entry = checkpoints.load_model(tmp_path, "tiny")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["models"]["tiny"]["sha256"] == checkpoints.sha256_file(tmp_path / "tiny.pt")
    assert entry["config"] == {"arch": {"h": 8}} and entry["mode"] == "full"


def test_bfloat16_storage_round_trips_within_its_precision(tmp_path):
    model = _tiny()
    checkpoints.save_model(tmp_path, "tiny", model.state_dict(), {}, {}, dtype=torch.bfloat16)
    state, _ = checkpoints.load_model(tmp_path, "tiny")
    for k, v in model.state_dict().items():
        assert state[k].dtype == torch.bfloat16
        assert torch.allclose(state[k].float(), v, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("dtype", [None, torch.float16])
def test_a_module_registered_twice_is_stored_once(tmp_path, dtype):
    # LatentDiffusionPrior holds its generator as `generator` and inside `latent_ebm`: two keys, one tensor
    shared = nn.Linear(256, 256, bias=False)
    model = nn.Module()
    model.a, model.b = shared, nn.Sequential(shared)
    checkpoints.save_model(tmp_path, "twice", model.state_dict(), {}, {}, dtype=dtype)
    one_copy = 256 * 256 * (2 if dtype else 4)
    assert one_copy < (tmp_path / "twice.pt").stat().st_size < 1.2 * one_copy
    state, _ = checkpoints.load_model(tmp_path, "twice")
    assert torch.equal(state["a.weight"], state["b.0.weight"])
    assert torch.equal(state["a.weight"].float(), shared.weight.detach().to(dtype or torch.float32).float())


def test_a_tampered_file_is_refused(tmp_path):
    checkpoints.save_model(tmp_path, "tiny", _tiny().state_dict(), {}, {})
    raw = bytearray((tmp_path / "tiny.pt").read_bytes())
    raw[-30] ^= 0xFF
    (tmp_path / "tiny.pt").write_bytes(bytes(raw))
    with pytest.raises(checkpoints.CheckpointError, match="does not match its manifest"):
        checkpoints.load_model(tmp_path, "tiny")


def test_missing_entry_and_file_say_how_to_train(tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match="python -m helpers train tiny"):
        checkpoints.load_model(tmp_path, "tiny")
    checkpoints.save_model(tmp_path, "tiny", _tiny().state_dict(), {}, {})
    (tmp_path / "tiny.pt").unlink()
    with pytest.raises(checkpoints.CheckpointError, match="missing"):
        checkpoints.load_model(tmp_path, "tiny")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.pt"
    checkpoints.save_torch({"x": torch.ones(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        checkpoints.save_torch({"x": Unpicklable()}, path)
    assert torch.equal(checkpoints.load_torch(path)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def _write_entries(folder, prefix, n, barrier):
    """Worker of the test below: write entries prefix0 .. prefix{n-1}, one write_entry each."""
    barrier.wait()
    for i in range(n):
        checkpoints.write_entry(folder, f"{prefix}{i}", {"file": f"{prefix}{i}.pt", "i": i})


def test_concurrent_writers_lose_no_manifest_entry(tmp_path):
    """Two processes, started together by a barrier, each write 50 entries into one manifest: all 100 are
    there. Without write_entry's lock both read the same manifest and the later rename drops the other's entry
    (with the lock removed, 5 runs of this test lost 46-50 of the 100 entries)."""
    ctx = multiprocessing.get_context("fork")  # fork: no second torch import, the test takes under a second
    n = 50
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_entries, args=(tmp_path, prefix, n, barrier)) for prefix in "ab"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0, 0]
    names = set(checkpoints.read_manifest(tmp_path)["models"])
    expected = {f"{prefix}{i}" for prefix in "ab" for i in range(n)}
    assert names == expected, f"lost {len(expected - names)} of {len(expected)} entries"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "manifest.json.lock"]  # no .tmp left


def _run(steps, resume_path=None, crash_at=None, record=None):
    model = _tiny()
    target = lambda x: (x**2).sum(1, keepdim=True)  # noqa: E731

    def loss_fn(m, x, g):
        loss_fn.calls += 1
        if crash_at is not None and loss_fn.calls > crash_at:
            raise KeyboardInterrupt("killed")
        return (m(x) - target(x)).pow(2).mean() + 0 * torch.randn(1, generator=g).sum()

    loss_fn.calls = 0
    draw = lambda g: torch.randn(32, 2, generator=g)  # noqa: E731
    result = training.train(model, loss_fn, draw, steps=steps, lr=1e-2, generator=config.generator(0),
                            ema_decay=0.9, resume_path=resume_path, checkpoint_every=25,
                            run_config={"steps": steps}, progress=False, record=record)
    return model, result


def test_training_killed_midway_resumes_to_the_same_weights(tmp_path):
    straight, r0 = _run(100)
    resume = tmp_path / "tiny.resume.pt"
    with pytest.raises(KeyboardInterrupt):
        _run(100, resume, crash_at=60)
    assert resume.exists()
    resumed, r1 = _run(100, resume)
    assert r1.resumed_from == 50
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
    assert r1.losses == r0.losses
    assert all(torch.equal(r0.ema_state[k], r1.ema_state[k]) for k in r0.ema_state)
    assert not resume.exists()


def test_training_is_seeded_and_checks_its_arguments():
    a, _ = _run(30)
    b, _ = _run(30)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="steps"):
        training.train(_tiny(), None, None, steps=0, lr=1e-3, generator=config.generator(0))


def test_load_or_train_trains_when_missing_then_loads(tmp_checkpoints, capsys, monkeypatch):
    spec = models.get("moons-ddpm")  # a 20-step budget without metrics: the test is about the lifecycle
    monkeypatch.setitem(models.REGISTRY, "moons-ddpm",
                        dataclasses.replace(spec, fast={"steps": 20}, evaluate=lambda *args, **kw: {}))
    model, entry = models.load_or_train("moons-ddpm", mode="fast", progress=False)
    assert entry["mode"] == "fast" and (tmp_checkpoints / "moons-ddpm.pt").exists()
    assert "training it now" in capsys.readouterr().out
    again, entry2 = models.load_or_train("moons-ddpm", mode="fast", progress=False)
    assert entry2["sha256"] == entry["sha256"]
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), again.state_dict().values()))


def test_incompatible_checkpoint_is_refused(tmp_checkpoints):
    spec = models.get("moons-ddpm")
    cfg = spec.budget("fast")
    cfg["arch"]["hidden"] = 16
    small = nets.TimeMLP(dim=2, **cfg["arch"])
    checkpoints.save_model(tmp_checkpoints, "moons-ddpm", small.state_dict(), cfg, {"mode": "full"})
    with pytest.raises(checkpoints.CheckpointError, match="another architecture"):
        models.load("moons-ddpm")


def test_train_model_is_reproducible_from_its_seed(monkeypatch):
    import dataclasses

    spec = models.get("moons-ddpm")
    monkeypatch.setitem(models.REGISTRY, "moons-ddpm", dataclasses.replace(spec, fast={"steps": 20}))
    a, _, ra = models.train_model("moons-ddpm", mode="fast", progress=False, save=False, evaluate=False)
    b, _, rb = models.train_model("moons-ddpm", mode="fast", progress=False, save=False, evaluate=False)
    assert ra.losses == rb.losses
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_restart_from_the_stored_first_phase_equals_training_both_phases(monkeypatch, tmp_path, capsys):
    import dataclasses

    spec = models.get("moons-ddpm")
    first = dataclasses.replace(spec, fast={"steps": 20})
    both = dataclasses.replace(spec, fast={"steps": 20, "restart": {"steps": 10, "lr": 1e-3, "warmup": 2}})
    monkeypatch.setitem(models.REGISTRY, "moons-ddpm", both)
    a, entry, _ = models.train_model("moons-ddpm", "fast", folder=tmp_path / "a", progress=False, evaluate=False)
    assert entry["train_steps"] == 30 and "restarting" not in capsys.readouterr().out
    monkeypatch.setitem(models.REGISTRY, "moons-ddpm", first)
    models.train_model("moons-ddpm", "fast", folder=tmp_path / "b", progress=False, evaluate=False)
    monkeypatch.setitem(models.REGISTRY, "moons-ddpm", both)
    b, _, result = models.train_model("moons-ddpm", "fast", folder=tmp_path / "b", progress=False, evaluate=False)
    assert "restarting from the stored checkpoint" in capsys.readouterr().out and result.steps == 10
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_stop_during_the_restart_reruns_only_the_restart(monkeypatch, tmp_path, capsys):
    import dataclasses

    spec = models.get("moons-ddpm")
    budget = {"steps": 20, "checkpoint_every": 4, "restart": {"steps": 10, "lr": 1e-3, "warmup": 2}}
    monkeypatch.setitem(models.REGISTRY, "moons-ddpm", dataclasses.replace(spec, fast=budget))
    whole, _, _ = models.train_model("moons-ddpm", "fast", folder=tmp_path / "a", progress=False, evaluate=False)
    calls = {"n": 0}

    def stopping(cfg):  # the loss, stopped at the restart's 7th step (after its checkpoint at step 4)
        loss = spec.loss(cfg)

        def fn(model, batch, g):
            calls["n"] += 1
            if calls["n"] == 20 + 7:
                raise KeyboardInterrupt
            return loss(model, batch, g)
        return fn

    monkeypatch.setitem(models.REGISTRY, "moons-ddpm", dataclasses.replace(spec, fast=budget, loss=stopping))
    with pytest.raises(KeyboardInterrupt):
        models.train_model("moons-ddpm", "fast", folder=tmp_path / "b", progress=False, evaluate=False)
    assert checkpoints.read_manifest(tmp_path / "b")["models"]["moons-ddpm"]["train_steps"] == 20  # the first phase
    capsys.readouterr()
    again, entry, result = models.train_model("moons-ddpm", "fast", folder=tmp_path / "b", progress=False,
                                              evaluate=False)
    assert "restarting from the stored checkpoint" in capsys.readouterr().out
    assert result.resumed_from == 4 and calls["n"] == 27 + 6 and entry["train_steps"] == 30  # no first phase again
    assert all(torch.equal(x, y) for x, y in zip(whole.state_dict().values(), again.state_dict().values()))


def test_a_fast_budget_drops_the_full_restart():
    import dataclasses

    spec = models.get("moons-ddpm")
    train = {**spec.config["train"], "restart": {"steps": 10, "lr": 1e-3}}
    spec = dataclasses.replace(spec, config={**spec.config, "train": train}, fast={"steps": 20})
    assert spec.budget("full")["train"]["restart"]["steps"] == 10
    assert "restart" not in spec.budget("fast")["train"]


def test_parameter_groups_give_each_network_its_own_learning_rate(monkeypatch):
    """Two groups of one Adam: the first layer at lr 0 stays exactly at its seeded initial weights, while
    the rest moves (the shape of chapter 4's prior and generator with their two learning rates)."""
    spec = models.get("moons-ddpm")

    def groups(model, cfg):
        first = list(model.parameters())[:2]
        rest = list(model.parameters())[2:]
        return [{"params": first, "lr": 0.0}, {"params": rest, "lr": cfg["train"]["lr"]}]

    monkeypatch.setitem(models.REGISTRY, "moons-ddpm",
                        dataclasses.replace(spec, fast={"steps": 20, "ema_decay": 0.5}, param_groups=groups))
    model, _, _ = models.train_model("moons-ddpm", "fast", progress=False, save=False, evaluate=False)
    with torch.random.fork_rng():
        torch.manual_seed(spec.config["train"]["seed"])
        init = spec.build(spec.config)
    trained, start = list(model.parameters()), list(init.parameters())
    assert all(torch.equal(a, b) for a, b in zip(trained[:2], start[:2]))
    assert not any(torch.equal(a, b) for a, b in zip(trained[2:], start[2:]))


def test_a_record_is_kept_for_every_step_and_survives_a_resume(tmp_path):
    """`train(record=...)` keeps one dict a step (chapter 4's training curves), in the resume file too."""
    def record(model):
        return {"w0": float(next(model.parameters()).detach().flatten()[0])}

    _, full = _run(100, record=record)
    assert len(full.records) == 100 and full.records[0] != full.records[-1]
    resume = tmp_path / "tiny.resume.pt"
    with pytest.raises(KeyboardInterrupt):
        _run(100, resume, crash_at=60, record=record)
    _, resumed = _run(100, resume, record=record)
    assert resumed.resumed_from == 50 and resumed.records == full.records


def test_scrambled_copy_permutes_one_model_and_keeps_its_recorded_metrics(tmp_path):
    """The copy loads (hash updated), each tensor holds the same values in other places, the manifest's metrics
    and the other models stay as they were, the source is untouched; an existing dst is refused."""
    src = tmp_path / "src"
    src.mkdir()
    model = _tiny()
    checkpoints.save_model(src, "a", model.state_dict(), {"k": 1}, {"metrics": {"fd": 1.0}})
    checkpoints.save_model(src, "b", _tiny().state_dict(), {"k": 2}, {"metrics": {"fd": 2.0}})
    (src / "a.resume.pt").write_bytes(b"x")
    before = (src / "a.pt").read_bytes()
    checkpoints.scrambled_copy(src, tmp_path / "dst", "a")
    state, entry = checkpoints.load_model(tmp_path / "dst", "a")
    assert entry["metrics"] == {"fd": 1.0} and entry["config"] == {"k": 1}
    for key, original in model.state_dict().items():
        assert torch.equal(state[key].flatten().sort().values, original.flatten().sort().values)
        assert original.numel() == 1 or not torch.equal(state[key], original)
    assert (tmp_path / "dst" / "b.pt").read_bytes() == (src / "b.pt").read_bytes()
    assert (src / "a.pt").read_bytes() == before and not (tmp_path / "dst" / "a.resume.pt").exists()
    with pytest.raises(ValueError, match="dst"):
        checkpoints.scrambled_copy(src, tmp_path / "dst", "a")


def _moons_draw(resume=None, seed=0, n=150):
    """Samples of a fresh (untrained, seeded) moons-ddpm: n in chunks of 50, 5 steps."""
    spec = models.get("moons-ddpm")
    torch.manual_seed(0)
    model = spec.build(spec.config).eval()
    return models.draw_samples(spec, model, spec.config, n, 5, config.generator(seed), torch.device("cpu"),
                               chunk=50, resume=resume)


def test_sampling_killed_midway_resumes_to_the_same_samples(tmp_path, monkeypatch):
    """A run stopped after its second chunk, rerun with the same file, draws only the third chunk and returns
    the samples of an uninterrupted run; a file written for another seed is ignored."""
    straight = _moons_draw()
    resume = tmp_path / "s.resume.pt"
    saves = []
    real_save = checkpoints.save_torch

    def save_then_stop(obj, path):
        real_save(obj, path)
        saves.append(len(obj["chunks"]))
        if len(saves) == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(checkpoints, "save_torch", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        _moons_draw(resume)
    assert saves == [1, 2]
    resumed = _moons_draw(resume)
    assert saves == [1, 2, 3]  # only the third chunk was drawn
    assert np.array_equal(resumed, straight) and resume.exists()
    assert np.array_equal(_moons_draw(resume), straight) and saves == [1, 2, 3]  # every chunk read back
    other = _moons_draw(resume, seed=1)
    assert np.array_equal(other, _moons_draw(seed=1)) and not np.array_equal(other, straight)


def test_compiled_sampling_goes_through_torch_compile_and_reads_eager_resume_files(tmp_path, monkeypatch):
    """COURSE_COMPILE=1: draw_samples runs the network through what torch.compile returns (a recording
    stand-in here; a real compilation takes minutes), and an eager run's resume file still matches, since its
    key reads the weights, not the wrapper. Any other value is refused."""
    calls = []

    class Recording(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module  # like torch.compile's OptimizedModule, its state_dict keys gain a prefix

        def forward(self, *args):
            calls.append(args[0].shape[0])
            return self.module(*args)
    monkeypatch.setattr(torch, "compile", Recording)
    monkeypatch.delenv("COURSE_COMPILE", raising=False)
    resume = tmp_path / "s.resume.pt"
    eager = _moons_draw(resume, n=100)
    assert not calls
    monkeypatch.setenv("COURSE_COMPILE", "1")
    assert np.array_equal(_moons_draw(resume, n=100), eager) and not calls  # every chunk read back
    assert np.array_equal(_moons_draw(n=100), eager) and calls == [50] * 10  # 2 chunks of 5 steps
    monkeypatch.setenv("COURSE_COMPILE", "yes")
    with pytest.raises(ConfigError, match="COURSE_COMPILE"):
        _moons_draw(n=100)


@pytest.mark.usefixtures("mnist")
def test_evaluate_model_measures_three_seeds_and_keeps_the_weights(tmp_checkpoints, capsys, monkeypatch):
    """`evaluate` on a short mnist-ddpm: the entry's hash and training record stay, fd is the mean of three
    seeds' FDs with their sd, the seeds differ, the resume files are gone; the command line says so."""
    shipped = config.REPO_ROOT / "checkpoints"
    (tmp_checkpoints / "mnist-eval.pt").write_bytes((shipped / "mnist-eval.pt").read_bytes())
    checkpoints.write_entry(tmp_checkpoints, "mnist-eval", checkpoints.read_manifest(shipped)["models"]["mnist-eval"])
    spec = models.get("mnist-ddpm")  # 5 training steps; 3 x 32 digits of 2 sampling steps
    monkeypatch.setitem(models.REGISTRY, "mnist-ddpm", dataclasses.replace(
        spec, fast={**spec.fast, "steps": 5, "eval_n": 32, "eval_steps": 2}))
    _, trained, _ = models.train_model("mnist-ddpm", "fast", "cpu", progress=False, evaluate=False)
    code = cli.main(["evaluate", "mnist-ddpm", "--device", "cpu", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "mnist-ddpm: evaluated in" in capsys.readouterr().out
    entry = checkpoints.read_manifest(tmp_checkpoints)["models"]["mnist-ddpm"]
    assert {k: entry[k] for k in ("sha256", "train_seconds", "config")} == \
        {k: trained[k] for k in ("sha256", "train_seconds", "config")}
    m = entry["metrics"]
    assert m["eval_seeds"] == [123, 124, 125] and len(set(m["fd_seeds"])) == 3
    assert m["fd"] == pytest.approx(np.mean(m["fd_seeds"]), abs=1e-3)
    assert m["fd_sd"] == pytest.approx(np.std(m["fd_seeds"], ddof=1), abs=1e-3) and m["fd_sd"] > 0
    assert entry["eval_hardware"].startswith("cpu") and entry["eval_seconds"] > 0
    assert m["fd_floor_sd"] > 0 and m["fd_floor_mean"] > 0 and m["eval_sampler"] == "ancestral"
    assert not list(tmp_checkpoints.glob("*.resume.pt"))

    # another sampler's FD is kept beside the headline's, which stays; a headline evaluation keeps it
    code = cli.main(["evaluate", "mnist-ddpm", "--device", "cpu", "--no-progress", "--sampler", "dpm2m", "--steps", "3"])
    assert code == 0, capsys.readouterr().err
    assert "mnist-ddpm: dpm2m-3 evaluated in" in capsys.readouterr().out
    after = checkpoints.read_manifest(tmp_checkpoints)["models"]["mnist-ddpm"]
    fast = after["metrics"]["by_sampler"]["dpm2m-3"]
    assert fast["eval_sampler"] == "dpm2m" and fast["eval_steps"] == 3 and len(fast["fd_seeds"]) == 3
    assert fast["eval_seconds"] > 0 and fast["fd_seeds"] != m["fd_seeds"]
    assert {k: v for k, v in after["metrics"].items() if k != "by_sampler"} == m
    assert models.evaluate_model("mnist-ddpm", "cpu", progress=False)["metrics"]["by_sampler"] == {"dpm2m-3": fast}
    assert cli.main(["evaluate", "mnist-ddpm", "--sampler", "nope", "--steps", "3"]) == 2
    assert cli.main(["evaluate", "moons-ddpm", "--steps", "3"]) == 2


@pytest.mark.usefixtures("mnist")
def test_evaluate_keeps_its_resume_files_until_the_entry_is_written(tmp_checkpoints, monkeypatch):
    """A crash while the manifest entry is written leaves the sampled seeds on disk for a rerun."""
    shipped = config.REPO_ROOT / "checkpoints"
    for name in ("mnist-eval", "mnist-ddpm"):
        (tmp_checkpoints / f"{name}.pt").write_bytes((shipped / f"{name}.pt").read_bytes())
        entry = checkpoints.read_manifest(shipped)["models"][name]
        if name == "mnist-ddpm":  # 16 digits a seed: the evaluation reads eval_n from the entry's config
            entry = {**entry, "config": {**entry["config"], "train": {**entry["config"]["train"], "eval_n": 16}}}
        checkpoints.write_entry(tmp_checkpoints, name, entry)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints, "write_entry", crash)
    with pytest.raises(OSError, match="disk full"):
        models.evaluate_model("mnist-ddpm", "cpu", progress=False, sampler="dpm2m", steps=2)
    assert len(list(tmp_checkpoints.glob("mnist-ddpm.eval-dpm2m-2-*.resume.pt"))) == 3
