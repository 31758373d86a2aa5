"""How a named model is trained, stored, loaded and sampled: the functions the chapters and the command
line call (`python -m helpers train | evaluate | sample | time`).

    train_model     train with the budget of a mode (and its warm restart), save with a manifest entry
    evaluate_model  measure a stored model's manifest metrics again (resumable), weights unchanged
    load            a hash-checked checkpoint, built and loaded; CheckpointError saying what to do
    load_required   the other models a spec `requires`, loaded explicitly
    load_or_train   the shipped checkpoint; a fast training when it is missing; a full training only on request
    sample          n samples in the data's own coordinates, in chunks, behind one progress bar
    time_steps      seconds per training step and per short sampling run, to plan a budget
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import inspect
import pickle
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import accel, checkpoints, config, distributed, nets, scores, tblog
from ..errors import CheckpointError, ConfigError, TrainingDiverged
from ..training import to_device, train
from .registry import ModelSpec, compatible, get


def _device(device) -> torch.device:
    return device if isinstance(device, torch.device) else config.device(device)


def _hardware(device: torch.device) -> str:
    size = distributed.world()[1]
    ranks = f" x {size} processes" if size > 1 else ""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device) + ranks
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()}){ranks}"


def load(name: str, device: str | torch.device | None = None, folder: str | Path | None = None):
    """Load the checkpoint of `name` (hash-checked). Returns (model in eval mode, manifest entry).

    Raises CheckpointError if it is missing, altered, corrupt or built for another architecture.
    """
    spec = get(name)
    folder = Path(folder) if folder is not None else config.checkpoint_dir()
    state, entry = checkpoints.load_model(folder, name)
    if not compatible(spec, entry):
        raise CheckpointError(
            f"the checkpoint of {name!r} was trained with another architecture or process than the code "
            f"now defines; retrain it with: python -m helpers train {name}")
    model = spec.build(entry["config"])
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as err:  # missing or unexpected keys, or shapes that differ
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"the weights in {folder / entry['file']} do not fit the {name} network the code builds "
            f"({first[1].strip() if len(first) > 1 else first[0]}); restore the file with git or retrain "
            f"it with: python -m helpers train {name}") from err
    return model.to(_device(device)).eval(), entry


def load_required(spec: ModelSpec, device: str | torch.device | None = None) -> dict[str, nn.Module]:
    """The models `spec.requires` (e.g. mnist-eval for the MNIST generators' metrics), from the checkpoint
    folder of `config.checkpoint_dir()`. Raises CheckpointError naming the one that is missing."""
    out = {}
    for other in spec.requires:
        try:
            out[other] = load(other, device)[0]
        except CheckpointError as err:
            raise CheckpointError(f"{spec.name} needs {other}: {err}") from err
    return out


def _first_phase_checkpoint(spec: ModelSpec, folder: Path, first_cfg: dict, device: torch.device):
    """(model, its training seconds) from `folder`'s checkpoint of `spec` when it was trained with exactly
    `first_cfg` (a budget with a restart, minus the restart), so the restart can start from it; else
    (None, 0.0)."""
    try:
        model, entry = load(spec.name, device, folder)
    except CheckpointError:
        return None, 0.0
    def training_part(config):  # the sample settings may change without retraining
        return {k: v for k, v in (config or {}).items() if k != "sample"}

    if training_part(entry.get("config")) != training_part(first_cfg):
        return None, 0.0
    print(f"{spec.name}: restarting from the stored checkpoint of the first phase "
          f"({entry['train_steps']} steps, {entry['train_seconds']:.0f} s)")
    return model, float(entry["train_seconds"])


def _warm_start(model: nn.Module, source: str, device: torch.device) -> None:
    """Start `model` from the shipped checkpoint of `source` (a budget's `init_from`): `model.start_from(net)`
    (`nets.ConditionalUNet.start_from` for mnist-cfg, from mnist-vpsde). The source is read from
    `config.checkpoint_dir()`; a missing one raises CheckpointError naming it."""
    if not hasattr(model, "start_from"):
        raise ConfigError(f"init_from {source!r}: a {type(model).__name__} cannot start from another model")
    try:
        net, entry = load(source, device)
    except CheckpointError as err:
        raise CheckpointError(f"this budget starts from {source}: {err}") from err
    model.start_from(net)
    print(f"starting from {source} ({entry['train_steps']} steps, {entry['train_seconds']:.0f} s)")


def train_model(name: str, mode: str | None = None, device: str | torch.device | None = None,
                folder: str | Path | None = None, progress: bool = True, save: bool = True,
                evaluate: bool = True, log_dir: str | Path | None = None):
    """Train `name` with the budget of `mode` (default: config.mode()) and save it with its manifest entry.

    folder: where the checkpoint and manifest go (default: config.checkpoint_dir()); notebooks pass a
    temporary folder for their short fast-mode runs so the shipped checkpoints stay untouched.
    A resume file `folder/name.resume.pt` is written while training; rerunning after a kill continues.
    A budget with "init_from": NAME starts from NAME's shipped weights instead of a seeded initialisation
    (`_warm_start`); the entry's seconds and steps are this training's alone.
    A budget with a "restart" ({"steps", "lr", "warmup"}) trains on from the first phase's EMA weights
    (rounded to the stored dtype) with a fresh optimizer, EMA and generator (seed + 1): a warm restart
    (Loshchilov & Hutter 2017). The first phase's result is saved as the model's checkpoint (without metrics)
    before the restart begins, so a stop during the restart reruns only the restart (from its own resume
    file). When `folder` holds that checkpoint (same config minus the restart and the sample settings), the
    restart starts from it instead of training the first phase again.
    evaluate: measure the spec's metrics for the manifest (False skips it, e.g. in tests); a model whose
    `requires` are missing from `config.checkpoint_dir()` is stored without metrics, and says so.
    log_dir: TensorBoard logs under log_dir/name (`tblog`: loss, lr, gradient norm, records, and samples every
    budget's `log_samples_every` steps, 1000 by default); None: `config.log_dir()`, and no logs when unset.
    Under `torchrun` it trains data-parallel (`distributed`); rank 0 alone evaluates and saves.
    Raises TrainingDiverged (naming the model, step and loss) when the loss stops being finite.
    Returns (model in eval mode on `device`, manifest entry dict, TrainResult of the last phase; its losses
    give the entry's final_loss).
    """
    spec = get(name)
    mode = mode or config.mode()
    cfg = spec.budget(mode)
    dev = _device(device)
    folder = Path(folder) if folder is not None else config.checkpoint_dir()
    tc = cfg["train"]
    restart = tc.get("restart")
    first_cfg = copy.deepcopy(cfg)  # the budget of the first phase: the config without its restart
    first_cfg["train"].pop("restart", None)
    seed = tc.get("seed", config.seed())

    log_dir = log_dir if log_dir is not None else config.log_dir()

    def run(model, phase_cfg, steps, lr, warmup, generator, resume_name, desc, offset=0):
        ptc = phase_cfg["train"]
        log = None
        if log_dir is not None:
            log = tblog.RunLog(Path(log_dir) / name, offset, _sample_figure(spec, cfg, dev),
                               ptc.get("log_samples_every", 1000))
        groups = None
        if spec.param_groups is not None:  # each network at its own lr, scaled as the phase's lr is
            groups = [{**g, "lr": g["lr"] * lr / tc["lr"]} for g in spec.param_groups(model, cfg)]
        try:
            return train(model, spec.loss(cfg), spec.batches(cfg), steps=steps, lr=lr, generator=generator,
                         device=dev, lr_schedule=ptc.get("lr_schedule", "constant"), warmup=warmup,
                         grad_clip=ptc.get("grad_clip"), ema_decay=ptc.get("ema_decay"),
                         resume_path=folder / resume_name if save else None,
                         checkpoint_every=ptc.get("checkpoint_every", 1000),
                         run_config={k: v for k, v in phase_cfg.items() if k != "sample"},  # sampling may change
                         progress=progress, desc=desc, param_groups=groups, record=spec.record,
                         fast_path=config.fast_path(dev), log=log)
        except FloatingPointError as err:
            raise TrainingDiverged(str(err)) from err

    model, seconds = _first_phase_checkpoint(spec, folder, first_cfg, dev) if restart else (None, 0.0)
    if model is None:
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG left as it was
            torch.manual_seed(seed)
            model = spec.build(cfg)
        if tc.get("init_from"):
            _warm_start(model, tc["init_from"], dev)
        first = run(model, first_cfg, tc["steps"], tc["lr"], tc.get("warmup", 0), config.generator(seed),
                    f"{name}.resume.pt", f"{name} ({mode})")
        if first.ema_state is not None:
            model.load_state_dict(first.ema_state)
        seconds, result = first.seconds, first
        if restart and save and distributed.is_main():  # a stop during the restart goes on from here, not step 0
            checkpoints.save_model(folder, name, model.state_dict(), first_cfg,
                                   _entry(mode, {}, tc["steps"], seconds, first, model, dev), dtype=spec.store_dtype)
    if restart:
        if spec.store_dtype is not None:  # start from the weights exactly as the first phase's file stores them
            model.load_state_dict({k: v.to(spec.store_dtype).float() if v.is_floating_point() else v
                                   for k, v in model.state_dict().items()})
        result = run(model, cfg, restart["steps"], restart["lr"], restart.get("warmup", 0),
                     config.generator(seed + 1), f"{name}.restart.resume.pt", f"{name} ({mode}, restart)",
                     offset=tc["steps"])
        if result.ema_state is not None:
            model.load_state_dict(result.ema_state)
        seconds += result.seconds
    model.eval()
    main = distributed.is_main()  # under torchrun, rank 0 alone evaluates and writes
    metrics = {}
    if evaluate and main:
        try:
            required = load_required(spec, dev)
        except CheckpointError as err:
            print(f"{name}: no metrics measured: {err}")
        else:
            metrics = spec.evaluate(model, cfg, dev, required, resume_dir=folder if save else None,
                                    progress=progress)
    entry = _entry(mode, metrics, tc["steps"] + (restart["steps"] if restart else 0), seconds, result, model, dev)
    if save and main:
        checkpoints.save_model(folder, name, model.state_dict(), cfg, entry, dtype=spec.store_dtype)
        entry = checkpoints.read_manifest(folder)["models"][name]
        _remove_eval_resume_files(folder, name)  # only now: the entry that holds their result is written
    return model, entry, result


def _entry(mode: str, metrics: dict, steps: int, seconds: float, result, model: nn.Module, device) -> dict:
    """A manifest entry's training record: mode, metrics, steps, seconds, the mean of the last 500 losses of
    `result` (a TrainResult), parameters, hardware, torch and date."""
    return {"mode": mode, "metrics": metrics, "train_steps": steps, "train_seconds": round(seconds, 1),
            "final_loss": float(np.mean(result.losses[-500:])), "parameters": nets.count_parameters(model),
            "hardware": _hardware(device), "torch": torch.__version__, "created": datetime.date.today().isoformat()}


def _sample_figure(spec: ModelSpec, cfg: dict, device: torch.device):
    """figure(model) -> a matplotlib figure of a few samples (seed 1234, the default sampler and steps) for the
    training's TensorBoard log: an image grid of 16 digits, or a scatter (a histogram in 1D) of 512 points.
    None for a model without a sampler (a classifier)."""
    if not spec.samplers:
        return None

    def figure(model):
        import matplotlib.pyplot as plt

        from .. import plotting

        images = len(spec.sample_shape) == 3
        x = draw_samples(spec, model, cfg, 16 if images else 512, None, config.generator(1234), device)
        fig, ax = plt.subplots(figsize=(4, 2.4) if images else (4, 4))
        if images:
            plotting.image_grid(x, nrow=8, ax=ax)
        elif x.ndim == 2 and x.shape[1] == 2:
            plotting.scatter2d(x, ax=ax)
        else:
            ax.hist(x.reshape(len(x), -1)[:, 0], bins=60)
        return fig

    return figure


def profile_training(name: str, mode: str | None = None, device: str | torch.device | None = None,
                     log_dir: str | Path | None = None, steps: int = 5) -> str:
    """Profile `steps` training steps of `name` (after two warm-up steps) with torch.profiler, without training
    or saving anything: the trace goes to log_dir/name/profile (TensorBoard's profiler plugin; None:
    `config.log_dir()`, and a ConfigError when that is unset too); returns the table of the top operators by
    their own CPU time. `python -m helpers train MODEL --profile`; the appendix prints the U-Net's."""
    spec = get(name)
    cfg = spec.budget(mode or config.mode())
    log_dir = log_dir if log_dir is not None else config.log_dir()
    if log_dir is None:
        raise ConfigError("--profile writes a trace for TensorBoard: give --log-dir DIR (or set COURSE_LOG_DIR)")
    dev = _device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = spec.build(cfg).to(dev).train()
    loss_fn, draw, g = spec.loss(cfg), spec.batches(cfg), config.generator(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["train"]["lr"])

    def step():
        loss = loss_fn(model, to_device(draw(g), dev), g)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return tblog.profile_steps(step, Path(log_dir) / name / "profile", steps=steps)


def _remove_eval_resume_files(folder: Path, name: str) -> None:
    """Remove the resume files an evaluation of `name` left in `folder` (named NAME.eval-*.resume.pt)."""
    for file in Path(folder).glob(f"{name}.eval-*.resume.pt"):
        file.unlink(missing_ok=True)


def evaluate_model(name: str, device: str | torch.device | None = None, folder: str | Path | None = None,
                   progress: bool = True, sampler: str | None = None, steps: int | None = None) -> dict:
    """Measure a stored model's manifest metrics again, without training, and write them into its entry.

    The spec's `evaluate` runs on the checkpoint of `folder` (default: config.checkpoint_dir()) with the
    config it was trained with; the entry keeps its weights, hash and training record and gains eval_date,
    eval_hardware, eval_seconds and eval_torch. For when an evaluation protocol changes (the MNIST
    generators' FD over three seeds). Long sampling keeps resume files in `folder`, so a stopped
    evaluation goes on where it stopped; they are removed only after the entry is written (atomically).
    sampler, steps: measure another sampler or step count than the headline's (an MNIST generator's fast
    solvers, chapter 7); the result goes to the entry's metrics["by_sampler"]["SAMPLER-STEPS"], with its
    own eval_date, eval_hardware and eval_seconds, and the headline metrics stay. A headline evaluation
    keeps the by_sampler records too.
    Raises CheckpointError for a missing or altered checkpoint, or a missing required model (mnist-eval);
    ConfigError for a sampler the model lacks, or a model whose evaluation has no sampler choice.
    Returns the new entry.
    """
    spec = get(name)
    choice = {}
    if sampler is not None or steps is not None:
        if "sampler" not in inspect.signature(spec.evaluate).parameters:
            raise ConfigError(f"{name}'s evaluation has no choice of sampler or steps")
        if steps is not None and (not isinstance(steps, int) or steps < 1):
            raise ConfigError(f"steps must be a positive integer, got {steps!r}")
        if sampler is not None:
            spec.sampler(sampler)  # ConfigError naming the model's samplers
        choice = {"sampler": sampler, "steps": steps}  # None: the headline's sampler or steps
    dev = _device(device)
    folder = Path(folder) if folder is not None else config.checkpoint_dir()
    model, entry = load(name, dev, folder)
    required = load_required(spec, dev)
    start = time.perf_counter()
    measured = spec.evaluate(model, entry["config"], dev, required, resume_dir=folder, progress=progress, **choice)
    record = {"eval_date": datetime.date.today().isoformat(), "eval_hardware": _hardware(dev),
              "eval_seconds": round(time.perf_counter() - start, 1), "eval_torch": torch.__version__}
    by_sampler = dict(entry.get("metrics", {}).get("by_sampler", {}))
    if choice:
        by_sampler[f"{measured['eval_sampler']}-{measured['eval_steps']}"] = {**measured, **record}
        entry = {**entry, "metrics": {**entry.get("metrics", {}), "by_sampler": by_sampler}}
    else:
        entry = {**entry, "metrics": {**measured, **({"by_sampler": by_sampler} if by_sampler else {})}, **record}
    checkpoints.write_entry(folder, name, entry)
    _remove_eval_resume_files(folder, name)  # only now: the entry that holds their result is written
    return entry


def expected_training_minutes(name: str, mode: str = "full") -> float:
    """Minutes the `mode` budget of `name` should take here: `time_steps`'s seconds per step times its steps."""
    cfg = get(name).budget(mode)
    steps = cfg["train"]["steps"] + cfg["train"].get("restart", {}).get("steps", 0)
    return time_steps(name, steps=2, sample=False)["train_step_s"] * steps / 60.0


def load_or_train(name: str, mode: str | None = None, device: str | torch.device | None = None,
                  folder: str | Path | None = None, progress: bool = True, train_if_missing: bool = False):
    """The stored checkpoint of `name` when present and compatible; else a trained one.

    Fast mode takes any compatible checkpoint, and trains the short fast budget when there is none.
    Full mode takes only a full-budget checkpoint; without one it trains the full budget only when
    `train_if_missing` is True (notebooks pass it), and otherwise raises CheckpointError saying how long
    that would take here (from `time_steps`) and how to run it (`python -m helpers train NAME`).
    Returns (model in eval mode, manifest entry).
    """
    mode = mode or config.mode()
    if mode not in config.MODES:
        raise ConfigError(f"mode must be one of {config.MODES}, got {mode!r}")
    try:
        model, entry = load(name, device, folder)
        if mode == "fast" or entry.get("mode") == "full":
            return model, entry
        why = f"the stored checkpoint has a {entry.get('mode')}-mode budget"
    except CheckpointError as err:
        why = str(err)
    if mode == "full" and not train_if_missing:
        raise CheckpointError(
            f"{name}: {why}. A full-budget training takes about {expected_training_minutes(name):.0f} minutes "
            f"on this machine; run `python -m helpers train {name}`, or pass train_if_missing=True")
    print(f"{name}: {why}\ntraining it now ({mode} mode)")
    model, entry, _ = train_model(name, mode, device, folder, progress)
    return model, entry


def draw_samples(spec: ModelSpec, model: nn.Module, cfg: dict, n: int, steps: int | None,
                 generator: torch.Generator, device: torch.device, sampler: str | None = None,
                 chunk: int | None = None, progress: bool = False, guidance: tuple | None = None,
                 resume: str | Path | None = None) -> np.ndarray:
    """n samples of `model` with its named `sampler`, as float32 numpy in the data's own coordinates.

    Sampled `chunk` at a time (default: spec.sample_chunk on a CPU, where larger batches run slower per
    image, 1000 on a GPU; all n at once when the spec sets none). The chunks share `generator`, so the
    result depends on the chunk size but not on timing. progress: one bar (stderr) over all steps.
    On a GPU (`config.fast_path`) the model is put in channels_last with TF32 matmuls (`accel.prepare`).
    With `COURSE_COMPILE=1` (`config.compile_sampling`) the network runs through `torch.compile`.
    guidance: (classifier, label, scale) for a model with `guided_by`, or (None, label, w) for a
    `conditional` one (classifier-free guidance), chapter 8; ConfigError otherwise.
    label is a class index or (n,) indices, one per sample (each chunk gets its own slice).
    resume: a file that keeps the finished chunks and the generator's state after each chunk (a long run on
    a CPU: an hour for 1000 MNIST digits of 1000 steps). A rerun with the same model weights, n, steps,
    sampler, chunks and generator state reads it and draws only the rest, giving the same samples as one
    run; a file written for anything else is ignored and replaced. The file stays when the run ends (a
    second rerun reads every chunk from it); the caller removes it. Not with guidance.
    """
    fn = spec.sampler(sampler)
    if guidance is not None and spec.guided_by is None and not spec.conditional:
        raise ConfigError(f"{spec.name} has no guided sampling")
    if guidance is not None and resume is not None:
        raise ConfigError("resume is for unguided sampling only")
    extra = {"guidance": guidance} if guidance is not None else {}
    accel.prepare(model, config.fast_path(device))  # channels_last and TF32 on a GPU; sampling stays fp32
    net = torch.compile(model) if config.compile_sampling() else model  # the resume key reads `model`
    if chunk is None and spec.sample_chunk is not None:
        chunk = spec.sample_chunk if device.type == "cpu" else 1000
    sizes = [min(chunk, n - k) for k in range(0, n, chunk)] if chunk else [n]
    out: list[Tensor] = []
    if resume is not None:
        resume = Path(resume)
        key = _run_key(model, spec.name, n, steps, sampler, sizes, generator.get_state())
        out = _read_chunks(resume, key, generator)
        if out and progress:
            print(f"resumed from {resume}: {len(out)} of {len(sizes)} batches already drawn", flush=True)
    bar = tqdm(desc=f"sampling {spec.name} ({sampler or spec.default_sampler}), {n} in {len(sizes)} batches",
               unit="step", mininterval=1.0) if progress and len(out) < len(sizes) else None
    if bar is not None:
        bar.batches = len(sizes) - len(out)  # `samplers.kernels.step_range` sets the total from the first batch
    try:
        for start, size in list(zip(range(0, n, max(sizes)), sizes))[len(out):]:
            if guidance is not None and torch.as_tensor(guidance[1]).ndim == 1:  # one label per sample
                extra = {"guidance": (guidance[0], guidance[1][start:start + size], guidance[2])}
            x, _ = fn(net, cfg, (size,) + tuple(spec.sample_shape), steps, generator, device,
                      progress=bar if bar is not None else False, **extra)
            out.append(x.detach().cpu())
            if resume is not None:
                checkpoints.save_torch({"key": key, "chunks": out, "generator": generator.get_state()}, resume)
    finally:
        if bar is not None:
            bar.close()
    return np.asarray(spec.to_data(torch.cat(out), cfg), dtype=np.float32)


def _run_key(model: nn.Module, *parts) -> str:
    """sha256 of a sampling run's settings (`parts`, e.g. n, steps, the generator's state) and the model's
    weights: what `draw_samples`' resume file must match before its chunks are reused."""
    digest = hashlib.sha256(repr([p.tolist() if isinstance(p, Tensor) else p for p in parts]).encode())
    for name, value in model.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _read_chunks(path: Path, key: str, generator: torch.Generator) -> list[Tensor]:
    """The chunks a resume file holds for the run `key`, with `generator` set to its state after them; []
    when the file is missing, unreadable or from another run."""
    if not path.exists():
        return []
    try:
        saved = checkpoints.load_torch(path)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # unreadable: draw those chunks again
        return []
    if not isinstance(saved, dict) or saved.get("key") != key:
        return []
    generator.set_state(saved["generator"])
    return list(saved["chunks"])


def sample(name: str, model: nn.Module, n: int, steps: int | None = None, seed: int = 0,
           device: str | torch.device | None = None, cfg: dict | None = None, sampler: str | None = None,
           chunk: int | None = None, progress: bool = False, label: int | Sequence[int] | None = None,
           scale: float | None = None, classifier: nn.Module | None = None) -> np.ndarray:
    """n samples of `model` (a `name` model) as float32 numpy in the data's own coordinates.

    steps: the sampler's steps (None: the model's default); seed: of the one generator the run draws from;
    sampler: one of `get(name).samplers` (None: the first). See `draw_samples`.
    label: sample class `label` (or one class per sample: n labels) with classifier guidance (a model with
    `guided_by`, chapter 8) at `scale` gamma >= 0 (None: the config's sample.guidance_scale), guided by
    `classifier` (None: the `guided_by` checkpoint); or, for a `conditional` model, with classifier-free
    guidance at `scale` w >= -1 (gamma = 1 + w; `scores.cfg_eps`), where no label samples unconditionally.
    A scale without a label, a bad label or scale, or a model without guidance raises ConfigError.
    """
    spec = get(name)
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    dev = _device(device)
    cfg = cfg or spec.config
    guidance = None
    if label is not None or scale is not None:
        if spec.guided_by is None and not spec.conditional:
            raise ConfigError(f"{name} has no guided sampling (--label, --scale)")
        if label is None:
            raise ConfigError("a guidance scale needs a label to guide towards (--label)")
        scale = cfg.get("sample", {}).get("guidance_scale") if scale is None else scale
        if spec.conditional:  # classifier-free: the model is its own classifier
            try:
                scores.cfg_eps(model, label, scale)  # checks the label against model.classes, and w >= -1
            except (ValueError, TypeError) as err:
                raise ConfigError(str(err)) from err
            label_t = torch.as_tensor(label).long()
            if label_t.ndim == 1 and len(label_t) != n:
                raise ConfigError(f"label must be one class index or n = {n} of them, got {len(label_t)}")
            return draw_samples(spec, model.to(dev), cfg, n, steps, config.generator(seed), dev, sampler, chunk,
                                progress, (None, label_t, float(scale)))
        if classifier is None:
            classifier = load(spec.guided_by, dev)[0]
        try:
            label_t, scale = scores.check_guidance(label, scale, classes=getattr(classifier, "classes", None))
        except ValueError as err:
            raise ConfigError(str(err)) from err
        if label_t.ndim == 1 and len(label_t) != n:
            raise ConfigError(f"label must be one class index or n = {n} of them, got {len(label_t)}")
        guidance = (classifier.to(dev).eval(), label_t, scale)
    return draw_samples(spec, model.to(dev), cfg, n, steps, config.generator(seed), dev, sampler, chunk,
                        progress, guidance)


def time_steps(name: str, steps: int = 5, n_sample: int = 64, sample_steps: int = 2,
               device: str | torch.device | None = None, sample: bool = True) -> dict:
    """Wall-clock seconds of `name`'s full-budget training step and of a short sampling run.

    Builds a fresh model (no checkpoint needed), runs one untimed warm-up step, then times `steps` Adam
    steps at the full budget's batch size; then times sampling n_sample points with `sample_steps` sampler
    steps (skipped for models without a sampler, or when `sample` is False). Used by `python -m helpers
    time` and `load_or_train` to plan CPU or GPU runs.
    Returns {"train_step_s", "batch", "parameters", "sample_s", "n_sample", "sample_steps", "device"}.
    """
    spec = get(name)
    cfg = spec.budget("full")
    dev = _device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = spec.build(cfg).to(dev).train()
    g, draw, loss_fn = config.generator(0), spec.batches(cfg), spec.loss(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        loss = loss_fn(model, to_device(draw(g), dev), g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    out = {"train_step_s": (time.perf_counter() - t0) / steps, "batch": cfg["train"]["batch"],
           "parameters": nets.count_parameters(model),
           "sample_s": None, "n_sample": n_sample, "sample_steps": sample_steps, "device": str(dev)}
    model.eval()
    if sample and spec.samplers:
        t0 = time.perf_counter()
        draw_samples(spec, model, cfg, n_sample, sample_steps, config.generator(0), dev)
        sync()
        out["sample_s"] = time.perf_counter() - t0
    return out
