"""Command line of the course: `python -m helpers list | train | sample | quality | time | bench | ...`.

    python -m helpers list
    python -m helpers train MODEL [--fast] [--device D] [--log-dir DIR] [--profile]
                                            (TensorBoard logs under DIR/MODEL; --profile: 5 steps, traced)
    python -m helpers evaluate MODEL [--device D] [--sampler S --steps N]
                                            (measure a checkpoint's manifest metrics again, resumably)
    python -m helpers sample MODEL --n N --out FILE.npy [--steps S] [--seed K] [--sampler NAME]
                                   [--label Y [--scale G]]   (guidance, chapter 8: mnist-vpsde by its classifier,
                                                              gamma = G; mnist-cfg classifier-free, w = G)
    python -m helpers quality FILE.npy       (MNIST digits (N, 28, 28) in [0, 1]: FD and class TV with floors)
    python -m helpers quality FILE.npy --label D   (digits meant as D: accuracy, FD, precision, recall)
    python -m helpers anomaly-score MODEL --images X.npy --out S.npy [--seed K]
                                            (ebm-anomaly-D: one score per digit, higher = more anomalous)
    python -m helpers time MODEL [--steps S] [--device D]
    python -m helpers bench [--device cpu|cuda] [--steps S] [--compile] [--model unet|mlp|both]
    python -m helpers bench --samplers [--n N]   (seconds per sampler at its default steps, side by side)
    python -m helpers schedules MODEL [--sampler S] [--steps N] [--seeds K ...] [--n N]
                                            (FD of a few-step solver under each time-step schedule, chapter 7)
    python -m helpers scramble MODEL --out DIR   (a copy of the checkpoints, one model's weights permuted)
    python -m helpers student --out DIR            (the student edition: the exercises' solutions stubbed)
    python -m helpers grade DIR/book               (every exercise's grader on a folder of chapters)
    python -m helpers notebooks [--mode fast|full] [--jobs J] [--threads T] [--out DIR] [CHAPTER ...]
                                            (re-execute the book)
    torchrun --nproc-per-node N -m helpers train MODEL       (data-parallel: helpers/distributed.py)

Course errors (`errors.CourseError`: unknown model or sampler, missing or altered checkpoint, missing data,
a diverged training) and argument errors (bad number, unwritable path) print one line to stderr and exit 2;
`--traceback` shows the traceback of a course error too. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from pathlib import Path

import numpy as np


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and status 2, like every other error here
        raise SystemExit(_fail(f"{self.prog}: {message}"))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _digit(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"expected a digit 0-9, got {text!r}")
    return value


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m helpers", description="Train, list and sample the course's models.")
    p.add_argument("--traceback", action="store_true", help="show the traceback of course errors too")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="every model, its checkpoint and metrics")
    t = sub.add_parser("train", help="train a model and save its checkpoint")
    t.add_argument("model")
    t.add_argument("--fast", action="store_true", help="the fast (CPU-minutes) budget instead of full")
    t.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    t.add_argument("--log-dir", default=None,
                   help="write TensorBoard logs under DIR/MODEL (default: COURSE_LOG_DIR; none when unset)")
    t.add_argument("--profile", action="store_true",
                   help="instead of training: profile 5 steps, write the trace under the log folder and print "
                        "the top operators")
    e = sub.add_parser("evaluate", help="measure a checkpoint's manifest metrics again (weights unchanged); "
                       "a stopped run resumes")
    e.add_argument("model")
    e.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    e.add_argument("--sampler", default=None,
                   help="measure this sampler instead of the headline's (MNIST generators: kept under by_sampler)")
    e.add_argument("--steps", type=_positive_int, default=None, help="with it, this many steps")
    s = sub.add_parser("sample", help="write samples of a trained model to a .npy file")
    s.add_argument("model")
    s.add_argument("--n", type=_positive_int, required=True, help="number of samples")
    s.add_argument("--out", required=True, help="output .npy file (float32)")
    s.add_argument("--steps", type=_positive_int, default=None, help="sampler steps (model default)")
    s.add_argument("--seed", type=_int, default=0)
    s.add_argument("--sampler", default=None, help="sampler name, for models that have several")
    s.add_argument("--device", default=None)
    s.add_argument("--label", type=_digit, default=None,
                   help="a digit 0-9: guided sampling of that class (mnist-vpsde: classifier guidance; "
                        "mnist-cfg: classifier-free; chapter 8)")
    s.add_argument("--scale", type=_scale, default=None,
                   help="guidance scale >= 0: gamma for mnist-vpsde, w (gamma = 1 + w) for mnist-cfg "
                        "(default: the model's recommended scale); needs --label")
    s.add_argument("--no-progress", action="store_true",
                   help="no progress bar (shown on stderr when it is a terminal)")
    q = sub.add_parser("quality", help="FD and class TV of MNIST samples against their floors (chapters 6-8)")
    q.add_argument("file", help=".npy of digits (N, 28, 28) in [0, 1], e.g. from `sample mnist-vpsde`")
    q.add_argument("--label", type=_digit, default=None,
                   help="the digit the samples should be (e.g. from `sample --label`): its accuracy, and FD, "
                        "precision and recall against that digit's real images, with floors (chapter 8)")
    a = sub.add_parser("anomaly-score", help="score digits with a held-out-digit latent EBM (ebm-anomaly-D, "
                       "chapter 4): one score per image, higher = more anomalous")
    a.add_argument("model", help="ebm-anomaly-1, -4, -5, -7 or -9")
    a.add_argument("--images", required=True, help=".npy of digits (N, 28, 28) in [0, 1]")
    a.add_argument("--out", required=True, help="output .npy file: N float32 scores")
    a.add_argument("--seed", type=_int, default=0, help="seed of the posterior chains (default 0)")
    a.add_argument("--device", default=None)
    m = sub.add_parser("time", help="seconds per training step and per short sampling run")
    m.add_argument("model")
    m.add_argument("--steps", type=_positive_int, default=5, help="timed training steps")
    m.add_argument("--device", default=None)
    sc = sub.add_parser("schedules", help="FD of a few-step solver under each time-step schedule and last time "
                        "(helpers/schedule_study.py)")
    sc.add_argument("model")
    sc.add_argument("--sampler", default="sde-dpm2m", help="a few-step solver of the model (default sde-dpm2m)")
    sc.add_argument("--steps", type=_positive_int, default=10, help="network calls (default 10)")
    sc.add_argument("--seeds", type=_int, nargs="+", default=[200, 201, 202],
                    help="one draw per seed (default 200 201 202: not the manifest's 123-125, which measure the choice)")
    sc.add_argument("--n", type=_positive_int, default=1000, help="digits per draw (default 1000)")
    sc.add_argument("--device", default=None)
    c = sub.add_parser("scramble", help="copy the checkpoints with one model's weights permuted (checks must fail)")
    c.add_argument("model")
    c.add_argument("--out", required=True, help="a new folder for the copy; then run a chapter with "
                   "COURSE_CHECKPOINTS=OUT")
    c.add_argument("--seed", type=_int, default=0)
    b = sub.add_parser("bench", help="training and sampling throughput: eager loop against the faster paths")
    b.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    b.add_argument("--steps", type=_positive_int, default=5, help="timed calls per measurement (median of 3)")
    b.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="include torch.compile (default: on CUDA only; it takes minutes on a CPU)")
    b.add_argument("--model", choices=["unet", "mlp", "both"], default="both",
                   help="the MNIST U-Net, the 2D MLP, or both (default)")
    b.add_argument("--samplers", action="store_true",
                   help="instead: seconds to draw --n digits with each mnist-vpsde sampler at its default steps")
    b.add_argument("--n", type=_positive_int, default=128, help="digits drawn with --samplers (default 128)")
    st = sub.add_parser("student", help="write the student edition: the chapters with the exercises' solutions stubbed")
    st.add_argument("--out", required=True, help="a new or empty folder")
    gr = sub.add_parser("grade", help="run every exercise's grader on a folder of (student) chapters")
    gr.add_argument("folder", help="the folder of chapter notebooks, e.g. DIR/book of `student --out DIR`")
    n = sub.add_parser("notebooks", help="re-execute the chapters (in place, or into --out) in fast or full mode")
    n.add_argument("chapters", nargs="*", help="chapter prefixes, e.g. 05 07 (default: every chapter)")
    n.add_argument("--mode", choices=["fast", "full"], default="fast")
    n.add_argument("--jobs", type=_positive_int, default=2, help="chapters executed at once (default 2)")
    n.add_argument("--out", default=None, help="a folder for the executed copies (default: in place)")
    n.add_argument("--timeout", type=_positive_int, default=7200, help="seconds per cell (default 7200)")
    n.add_argument("--threads", type=_positive_int, default=None,
                   help="torch threads per kernel (default: cores // jobs; 1 while a training runs beside)")
    return p


def _grade(folder: str) -> int:
    """`grade`: every exercise's verdict in the chapters of `folder`; status 1 unless all passed."""
    from . import student

    chapters = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not chapters:
        return _fail(f"no chapter notebooks (NN_*.ipynb) in {folder!r}")
    passed = total = 0
    for path in chapters:
        for name, verdict in student.exercise_run(path).items():
            total += 1
            passed += " passed" in verdict.splitlines()[0]
            print(verdict.rstrip())
    print(f"{passed} of {total} exercises passed")
    return 0 if passed == total else 1


def _notebooks(args) -> int:
    """`notebooks`: execute the chapters; status 1 if any failed."""
    from . import notebooks

    results = notebooks.run(args.mode, args.chapters, args.jobs, Path(args.out) if args.out else None, args.timeout,
                            threads=args.threads)
    failed = [name for name, _, code in results if code]
    print(f"{len(results) - len(failed)} of {len(results)} chapters executed in {args.mode} mode"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _bench(args) -> int:
    """`bench`: the table of `helpers.bench` for one device, with the line that says where it ran."""
    from . import bench, config

    device = config.device(args.device)
    if args.samplers:
        print(f"bench --samplers on {bench.describe(device)}")
        rows = bench.sampler_rows(device, args.n)
        print(bench.table(rows, device).replace("vs eager", "time / slowest"))
        for r in rows:
            print(f"{r.path}: 1/{1 / r.ratio:.0f} of the slowest sampler's time" if r.ratio < 1 else f"{r.path}: the slowest")
        return 0
    which = {"unet": ("mnist U-Net",), "mlp": ("2D MLP",)}.get(args.model, tuple(bench.MODELS))
    rows = bench.run(device, args.steps, args.compile, which)
    print(f"bench on {bench.describe(device)}; fast path by default here: {config.fast_path(device)}")
    print(bench.table(rows, device))
    return 0


def _schedules(spec, args) -> int:
    """`schedules`: the FD of `schedule_study.study`, one line per setting, against the 1000-step FD."""
    from . import checkpoints, config, schedule_study

    sampler = spec.sampler(args.sampler)  # ConfigError naming the model's samplers
    if "t_end" not in inspect.signature(sampler).parameters:
        return _fail(f"{spec.name}'s {args.sampler} is not a few-step solver; schedules studies "
                     f"{', '.join(n for n, f in spec.samplers.items() if 't_end' in inspect.signature(f).parameters)}")
    entry = checkpoints.read_manifest(config.checkpoint_dir())["models"].get(spec.name, {})
    metrics_ = entry.get("metrics", {})
    reference = metrics_.get("fd") if metrics_.get("n") == args.n else None  # an FD is compared at equal n only
    print(f"{spec.name}, {args.sampler} at {args.steps} calls, n = {args.n}, seeds {' '.join(map(str, args.seeds))}"
          + (f"; ratio to the manifest's {metrics_['eval_steps']}-step FD {reference:.2f}" if reference else ""))
    rows = schedule_study.study(spec.name, args.sampler, args.steps, tuple(args.seeds), args.n, device=args.device,
                                reference=reference)
    best = min(rows, key=lambda r: r["fd"])
    print(f"lowest mean FD: {best['schedule']}, t_end {'own' if best['t_end'] is None else best['t_end']}")
    return 0


def _list() -> int:
    from . import checkpoints, config, models

    folder = config.checkpoint_dir()
    manifest = checkpoints.read_manifest(folder)["models"]
    for name, spec in sorted(models.REGISTRY.items(), key=lambda kv: (kv[1].chapter, kv[0])):
        entry = manifest.get(name)
        print(f"{name:14s} ch.{spec.chapter}  {spec.summary}\n{'':14s} {_checkpoint_state(folder, spec, entry)}")
        if isinstance(entry, dict):
            print(f"{'':14s} metrics: {json.dumps(entry.get('metrics', {}))}")
    return 0


def _checkpoint_state(folder, spec, entry) -> str:
    """One line on the checkpoint of `spec` in `folder`: ok (with its budget), missing, altered or malformed."""
    from . import checkpoints, models

    if entry is None:
        return "no checkpoint"
    missing = [k for k in checkpoints.ENTRY_KEYS if not isinstance(entry, dict) or k not in entry]
    if missing:
        return f"manifest entry MALFORMED (lacks {', '.join(missing)}; restore manifest.json with git or retrain)"
    if not (folder / entry["file"]).exists():
        return "no checkpoint (listed in the manifest, file missing)"
    if checkpoints.sha256_file(folder / entry["file"]) != entry["sha256"]:
        return "checkpoint ALTERED (hash mismatch)"
    if not models.compatible(spec, entry):
        return "checkpoint incompatible (retrain)"
    try:
        return (f"checkpoint ok ({entry['mode']} mode, {entry['train_steps']} steps in "
                f"{float(entry['train_seconds']):.0f} s on {entry['hardware']})")
    except (KeyError, TypeError, ValueError):
        return "checkpoint ok (its manifest entry lacks the training record)"


def _read_digits(path: str) -> np.ndarray | str:
    """The digits (N, 28, 28) in [0, 1] of the .npy file `path`, or the one-line reason they are not."""
    try:
        x = np.load(path)
    except (OSError, ValueError) as err:
        return f"cannot read {path!r}: {err}"
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        return f"{path!r} holds shape {x.shape}; expected MNIST digits (N, 28, 28) in [0, 1]"
    if x.size and (not np.isfinite(x).all() or x.min() < -1e-3 or x.max() > 1 + 1e-3):
        return f"{path!r} holds values in [{np.nanmin(x):.3g}, {np.nanmax(x):.3g}]; expected pixels in [0, 1]"
    return x


def _class_quality(x, label: int) -> int:
    """Print metrics.mnist_class_quality of digits meant to be `label`: accuracy, and FD beside the floor's mean
    and sd over five reference draws (`metrics.mnist_fd_floor_spread`; chapter 8's per-digit target: FD within
    floor + 2 sd)."""
    from . import metrics, models

    classifier = models.evaluation_classifier()
    q = metrics.mnist_class_quality(x, label, classifier)
    mean, sd = metrics.mnist_fd_floor_spread(classifier, q["n"], 5, label)
    print(f"n = {q['n']} meant as {label}: accuracy {q['accuracy']:.1%} (mnist-eval's calls); FD {q['fd']:.3f}, "
          f"floor {mean:.3f} +- {sd:.3f} (5 draws of real {label}s): within floor + 2 sd: "
          f"{q['fd'] <= mean + 2 * sd}")
    print(f"precision {q['precision']:.3f} (floor {q['precision_floor']:.3f}), recall {q['recall']:.3f} "
          f"(floor {q['recall_floor']:.3f})")
    return 0


def _quality(path: str, label: int | None = None) -> int:
    """Print metrics.mnist_quality of the digits in `path` (the manifest's FD, at the file's n), or with
    `label` their quality as that digit (`_class_quality`)."""
    from . import metrics, models

    x = _read_digits(path)
    if isinstance(x, str):
        return _fail(x)
    if not 2 <= len(x) <= 10_000:
        return _fail(f"{path!r} holds {len(x)} digits; the quality metric needs between 2 and 10000")
    if label is not None:
        return _class_quality(x, label)
    q = metrics.mnist_quality(x, models.evaluation_classifier())
    print(f"n = {q['n']}: FD {q['fd']:.4f}, floor {q['fd_floor']:.4f} (ratio {q['fd'] / q['fd_floor']:.3f}); "
          f"class TV {q['class_tv']:.4f}, floor {q['class_tv_floor']:.4f}")
    print(f"classes: {q['class_histogram']}")
    return 0


def _anomaly_score(spec, args) -> int:
    """`anomaly-score`: `anomaly.anomaly_scores` of the digits in --images under ebm-anomaly-D, to --out."""
    import torch

    from . import anomaly, config, data, models

    if not models.is_anomaly_model(spec.name):
        return _fail(f"{spec.name} is not an anomaly model; use one of "
                     f"{', '.join(f'ebm-anomaly-{d}' for d in models.HELD_OUT_DIGITS)}")
    out = Path(args.out)
    if out.suffix != ".npy" or not out.parent.is_dir():
        return _fail(f"--out must be a .npy file in an existing folder, got {args.out!r}")
    x = _read_digits(args.images)
    if isinstance(x, str):
        return _fail(x)
    if len(x) == 0:
        return _fail(f"{args.images!r} holds no digits")
    model, entry = models.load(spec.name, args.device)
    p = entry["config"]["process"]
    images = data.to_model_range(torch.from_numpy(np.clip(x, 0.0, 1.0).astype(np.float32))[:, None])
    scores = anomaly.anomaly_scores(model, images, p["post_steps"], p["post_h"], config.generator(args.seed))
    try:
        np.save(out, scores.numpy())
    except OSError as err:
        return _fail(f"cannot write {args.out!r}: {err.strerror}")
    print(f"wrote {args.out}: {len(scores)} anomaly scores (minus the log-joint at posterior latents; "
          f"digit {p['held_out']} held out of training), median {float(scores.median()):.1f}")
    return 0


def _train(spec, args) -> int:
    """`train`: in one process, or data-parallel under `torchrun` (rank 0 prints and saves)."""
    from . import config, distributed, models, tblog

    mode = "fast" if args.fast else "full"
    device = config.device(args.device)
    log_dir = args.log_dir if args.log_dir is not None else config.log_dir()
    if log_dir is not None:
        tblog.check_log_dir(log_dir)  # a file or an unwritable folder fails here, in one line, before any work
    if args.profile:
        table = models.profile_training(spec.name, mode, device, log_dir)
        print(f"{spec.name} ({mode} budget): 5 training steps profiled on {device}; trace in "
              f"{Path(log_dir) / spec.name / 'profile'} (tensorboard --logdir {log_dir})\n{table}")
        return 0
    parallel = distributed.init_from_env(device)
    try:
        _, entry, result = models.train_model(spec.name, mode, device, progress=not args.no_progress,
                                              log_dir=log_dir)
    finally:
        if parallel:
            distributed.dist.destroy_process_group()
    if config.ranks()[0] != 0:  # the other ranks of a torchrun
        return 0
    resumed = f" (its last phase resumed from step {result.resumed_from})" if result.resumed_from else ""
    ranks = f" on {config.ranks()[2]} processes" if parallel else ""
    print(f"{spec.name}: trained {entry['train_steps']} steps{ranks} in {entry['train_seconds']:.0f} s{resumed}; "
          f"metrics {json.dumps(entry['metrics'])}")
    print(f"saved {config.checkpoint_dir() / (spec.name + '.pt')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import CourseError

    try:
        return _run(args)
    except CourseError as err:
        if args.traceback:
            raise
        return _fail(str(err).splitlines()[0] if str(err) else type(err).__name__)


def _run(args) -> int:
    from . import models

    if args.command == "list":
        return _list()
    if args.command == "quality":
        return _quality(args.file, args.label)
    if args.command == "bench":
        return _bench(args)
    if args.command == "notebooks":
        return _notebooks(args)
    if args.command == "student":
        from . import student

        written = student.write_edition(args.out)
        print(f"wrote the student edition to {args.out}: {len(written)} chapters in {Path(args.out) / 'book'}, with "
              f"helpers/, checkpoints/ and requirements.txt; hand out the folder, then: python -m helpers grade "
              f"{Path(args.out) / 'book'}")
        return 0
    if args.command == "grade":
        return _grade(args.folder)
    spec = models.get(args.model)
    if args.command == "scramble":
        from . import checkpoints, config

        try:
            path = checkpoints.scrambled_copy(config.checkpoint_dir(), args.out, spec.name, args.seed)
        except ValueError as err:
            return _fail(str(err))
        print(f"scrambled {path}; its manifest entry keeps the recorded metrics. Now run a chapter with "
              f"COURSE_CHECKPOINTS={args.out}: its check cell must fail")
        return 0
    if args.command == "schedules":
        return _schedules(spec, args)
    if args.command == "anomaly-score":
        return _anomaly_score(spec, args)
    if args.command == "time":
        r = models.time_steps(spec.name, args.steps, device=args.device)
        print(f"{spec.name} on {r['device']}: {r['parameters']:,} parameters, {r['train_step_s']:.4f} s "
              f"per training step (batch {r['batch']}, mean of {args.steps})")
        if r["sample_s"] is not None:
            print(f"{spec.name} on {r['device']}: {r['sample_s']:.3f} s to sample {r['n_sample']} "
                  f"with --steps {r['sample_steps']}")
        return 0
    if args.command == "train":
        return _train(spec, args)
    if args.command == "evaluate":
        entry = models.evaluate_model(spec.name, args.device, progress=not args.no_progress, sampler=args.sampler,
                                      steps=args.steps)
        if args.sampler is None and args.steps is None:
            print(f"{spec.name}: evaluated in {entry['eval_seconds']:.0f} s on {entry['eval_hardware']}; "
                  f"metrics {json.dumps({k: v for k, v in entry['metrics'].items() if k != 'by_sampler'})}")
        else:
            key = f"{args.sampler or entry['metrics']['eval_sampler']}-{args.steps or entry['metrics']['eval_steps']}"
            m = entry["metrics"]["by_sampler"][key]
            print(f"{spec.name}: {key} evaluated in {m['eval_seconds']:.0f} s on {m['eval_hardware']}; "
                  f"metrics {json.dumps({k: v for k, v in m.items() if not k.startswith('eval_')})}")
        return 0
    out = Path(args.out)
    if out.suffix != ".npy":
        return _fail(f"--out must end in .npy, got {args.out!r}")
    if not out.parent.exists() or not out.parent.is_dir():
        return _fail(f"cannot write {args.out!r}: folder {str(out.parent)!r} does not exist")
    spec.sampler(args.sampler)  # an unknown sampler, or a model without one, fails before loading
    if args.scale is not None and args.label is None:
        return _fail("--scale needs --label (the digit to guide towards)")
    if args.label is not None and spec.guided_by is None and not spec.conditional:
        return _fail(f"{spec.name} has no guided sampling; --label works with "
                     f"{', '.join(n for n, s in sorted(models.REGISTRY.items()) if s.guided_by or s.conditional)}")
    model, _ = models.load(spec.name, args.device)
    x = models.sample(spec.name, model, args.n, args.steps, args.seed, args.device, sampler=args.sampler,
                      progress=not args.no_progress and sys.stderr.isatty(),  # a bar in a terminal, not in logs
                      label=args.label, scale=args.scale)
    try:
        np.save(out, x)
    except OSError as err:
        return _fail(f"cannot write {args.out!r}: {err.strerror}")
    print(f"wrote {args.out}: {x.shape} float32")
    return 0
