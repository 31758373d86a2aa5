"""`python -m helpers bench`: training and sampling throughput of the plain eager loop against the
course's faster paths, for the MNIST U-Net (chapters 6-8) and the 2D MLP (chapters 1-2), as ratios.

Training paths (images/s of Adam steps on the model's own loss, at its full budget's batch):
    eager          fp32, contiguous tensors: the plain loop
    channels_last  images stored (B, H, W, C) (convolutional models only)
    bf16           bf16 autocast (`accel.autocast`), channels_last for convolutional models
    compile        torch.compile of the model, on top of the device's fast path (with --compile, or on CUDA)
    batch x4       the device's fast path at four times the batch: more images per kernel launch
Sampling paths (image-steps/s of a fixed-shape reverse step x <- x + a * model(x, t) + b * z):
    eager          torch.no_grad, fp32, a CPU chunk of 128 images (`mnist_common.CPU_CHUNK`; 1000 on a GPU)
    inference      torch.inference_mode and channels_last
    batch x4       the same at four times the chunk
    cuda graph     the whole step captured once and replayed (CUDA only)
    compile        torch.compile of the step (with --compile, or on CUDA)
With --samplers: seconds to draw 128 digits with each named sampler of mnist-vpsde at its default step count
(`sampler_rows`), and each one's time over the 1000-step samplers'.
Each figure is the median of `repeats` timings of `steps` calls after warm-up calls; compile times are
reported apart. On CUDA the achieved TFLOP/s (FLOPs counted by torch.utils.flop_counter) is set against
the device's dense bf16 peak where the table below knows it. A path that is unavailable here (no CUDA, no
compiler) is listed as skipped, with the reason. The book's appendix holds the measured tables.
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from . import accel, config

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, by a substring of the device name.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0}
MODELS = {"mnist U-Net": "mnist-vpsde", "2D MLP": "moons-ddpm"}


@dataclass
class Row:
    """One measured path: `rate` in `unit` (None when skipped), `ratio` to the eager path, a note."""

    model: str
    task: str
    path: str
    rate: float | None
    unit: str
    ratio: float | None = None
    tflops: float | None = None
    note: str = ""


def _synchronize(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def median_seconds(fn: Callable[[], None], device: torch.device, steps: int, repeats: int = 3,
                   warmup: int = 2) -> float:
    """Median over `repeats` of the mean seconds of one call of `fn`, timed over `steps` calls."""
    sync = _synchronize(device)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def _inputs(name: str, batch: int, device: torch.device) -> torch.Tensor:
    """Random inputs shaped like the model's data: images in [-1, 1] (B, 1, 28, 28), or 2D points (B, 2)."""
    g = torch.Generator().manual_seed(0)
    shape = (batch, 1, 28, 28) if name == "mnist-vpsde" else (batch, 2)
    return (torch.rand(shape, generator=g) * 2 - 1).to(device)


def _build(name: str, device: torch.device):
    from . import models

    spec = models.get(name)
    cfg = spec.budget("full")
    torch.manual_seed(0)
    return spec, cfg, spec.build(cfg).to(device)


def flops_per_call(fn: Callable[[], None]) -> float:
    """FLOPs of one call of `fn` (matmuls and convolutions, forward and backward), by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def _why(err: Exception) -> str:
    """The exception's type and the start of its first line, for a table cell."""
    first = (str(err).splitlines() or [""])[0][:60]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _try_compile(module: nn.Module, compile_: bool):
    """(compiled module, None) or (None, why it was skipped)."""
    if not compile_:
        return None, "skipped: pass --compile (compiling takes minutes on a CPU)"
    if not hasattr(torch, "compile"):
        return None, "skipped: this torch has no torch.compile"
    try:
        return torch.compile(module), None
    except Exception as err:  # noqa: BLE001 -- any failure to set up the compiler means 'unavailable'
        return None, f"skipped: torch.compile failed ({_why(err)})"


def _compile_row(rows: list[Row], skipped: Row, module: nn.Module, compile_: bool,
                 warm: Callable[[nn.Module], object], time_it: Callable[[nn.Module, str], object]) -> None:
    """The torch.compile row of a group: `warm(compiled)` compiles (timed), then `time_it(compiled, note)`
    measures and appends the row; without a compiler, or when compiling fails, `skipped` is appended with
    the reason in its note."""
    compiled, why = _try_compile(module, compile_)
    if compiled is None:
        rows.append(dataclasses.replace(skipped, note=why))
        return
    t0 = time.perf_counter()
    try:
        warm(compiled)
        time_it(compiled, f"compiled in {time.perf_counter() - t0:.0f} s")
    except Exception as err:  # noqa: BLE001 -- e.g. no C++ compiler or no Triton: unavailable here
        rows.append(dataclasses.replace(skipped, note=f"skipped: compiling failed ({_why(err)})"))


def train_rows(label: str, name: str, device: torch.device, steps: int, compile_: bool) -> list[Row]:
    """Training throughput of `name`'s network on `device` along the paths of the module docstring."""
    spec, cfg, model = _build(name, device)
    loss_fn, batch = spec.loss(cfg), cfg["train"]["batch"]
    conv = accel.has_conv(model)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    fast = config.fast_path(device)

    def step_of(net, x, bf16):
        def step():
            with accel.autocast(device, bf16):
                loss = loss_fn(net, x, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    def layout(on: bool):
        model.to(memory_format=torch.channels_last if on else torch.contiguous_format)

    x = _inputs(name, batch, device)
    x_cl = accel.to_layout(x, conv)
    rows, unit = [], "images/s" if conv else "points/s"

    def measure(path, net, inputs, bf16, note=""):
        sec = median_seconds(step_of(net, inputs, bf16), device, steps)
        rows.append(Row(label, "train", path, len(inputs) / sec, unit, note=note))
        return sec

    layout(False)
    measure("eager", model, x, False)
    eager_flops = flops_per_call(step_of(model, x, False)) / batch
    if conv:
        layout(True)
        measure("channels_last", model, x_cl, False)
    measure("bf16" + (" + channels_last" if conv else ""), model, x_cl, True)
    layout(fast and conv)
    xin = x_cl if fast else x
    _compile_row(rows, Row(label, "train", "compile", None, unit), model, compile_,
                 warm=lambda net: (step_of(net, xin, fast)(), _synchronize(device)()),
                 time_it=lambda net, note: measure("compile" + (" + fast path" if fast else ""), net, xin, fast, note))
    big = accel.to_layout(_inputs(name, 4 * batch, device), fast and conv)
    measure(f"batch x4 ({4 * batch})" + (" + fast path" if fast else ""), model, big, fast)
    layout(False)
    for r in rows:
        r.tflops = eager_flops * r.rate / 1e12 if r.rate else None
    return rows


def sample_rows(label: str, name: str, device: torch.device, steps: int, compile_: bool) -> list[Row]:
    """Sampling throughput (image-steps/s) of one fixed-shape reverse step of `name`'s network."""
    _, _, model = _build(name, device)
    model.eval()
    conv = accel.has_conv(model)
    chunk = 128 if device.type == "cpu" else 1000
    rows, unit = [], "image-steps/s" if conv else "point-steps/s"

    def step_of(x, t, net):
        def step():
            x.add_(0.01 * net(x, t) + 0.001 * torch.randn_like(x))  # x <- x + a model(x, t) + b z, in place
        return step

    def measure(path, batch, ctx, cl, net=None, note=""):
        model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        x = accel.to_layout(_inputs(name, batch, device), cl)
        t = torch.full((batch,), 0.5, device=device)
        with ctx():
            sec = median_seconds(step_of(x, t, model if net is None else net), device, steps)
        rows.append(Row(label, "sample", path, batch / sec, unit, note=note))

    with torch.no_grad():
        fwd_flops = flops_per_call(lambda: model(_inputs(name, chunk, device), torch.full((chunk,), 0.5, device=device))) / chunk
    measure(f"eager (chunk {chunk})", chunk, torch.no_grad, False)
    measure("inference" + (" + channels_last" if conv else ""), chunk, torch.inference_mode, conv)
    measure(f"batch x4 ({4 * chunk})", 4 * chunk, torch.inference_mode, conv)
    if device.type != "cuda":
        rows.append(Row(label, "sample", "cuda graph", None, unit, note="skipped: CUDA only"))
    else:
        model.to(memory_format=torch.channels_last if conv else torch.contiguous_format)
        x = accel.to_layout(_inputs(name, chunk, device), conv)
        t = torch.full((chunk,), 0.5, device=device)
        step = step_of(x, t, model)
        with torch.inference_mode():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            sec = median_seconds(graph.replay, device, steps)
        rows.append(Row(label, "sample", "cuda graph", chunk / sec, unit))
    def warm(net):
        with torch.inference_mode():
            net(_inputs(name, chunk, device), torch.full((chunk,), 0.5, device=device))

    _compile_row(rows, Row(label, "sample", "compile", None, unit), model, compile_, warm,
                 time_it=lambda net, note: measure("compile", chunk, torch.inference_mode, conv, net, note))
    model.to(memory_format=torch.contiguous_format)
    for r in rows:
        r.tflops = fwd_flops * r.rate / 1e12 if r.rate else None
    return rows


def run(device: torch.device, steps: int = 5, compile_: bool | None = None,
        which: tuple[str, ...] = tuple(MODELS)) -> list[Row]:
    """Every row for the models `which` (keys of MODELS) on `device`, ratios against each group's eager row.

    compile_: include torch.compile (default: on CUDA only, where it compiles in seconds rather than minutes).
    """
    compile_ = device.type == "cuda" if compile_ is None else compile_
    rows = []
    for label in which:
        for fn in (train_rows, sample_rows):
            group = fn(label, MODELS[label], device, steps, compile_)
            base = group[0].rate
            for r in group:
                r.ratio = r.rate / base if r.rate else None
            rows += group
    return rows


SAMPLER_BENCH = ("dpm2m", "sde-dpm2m", "ddim", "em")  # mnist-vpsde's samplers timed by `bench --samplers`


def sampler_rows(device: torch.device, n: int = 128, name: str = "mnist-vpsde",
                 which: tuple[str, ...] = SAMPLER_BENCH, steps: dict[str, int] | None = None) -> list[Row]:
    """Seconds to draw n digits with each named sampler of `name`, side by side on `device`: a row per sampler
    at its default step count (`steps` overrides some), rate in digits/s, and `ratio` = its time over the
    slowest one's (the 1000-step samplers'): dpm2m's ratio is the fraction of the 1000-step time it needs
    (chapter 7). The U-Net is freshly built (the time does not depend on the weights); n = 128 is one CPU
    chunk (`mnist_common.CPU_CHUNK`) and 1000 digits are drawn as 8 of them, so the ratios hold for 1000.
    """
    spec, cfg, net = _build(name, device)
    net.eval()
    sync = _synchronize(device)
    rows, times = [], {}
    for sampler in which:
        sync()
        start = time.perf_counter()
        _, traj = spec.sampler(sampler)(net, cfg, (n,) + tuple(spec.sample_shape), (steps or {}).get(sampler),
                                        torch.Generator().manual_seed(0), device)
        sync()
        times[sampler] = time.perf_counter() - start
        rows.append(Row(name, f"sample {n} digits", sampler, n / times[sampler], "digits/s",
                        note=f"{traj.nfev} network calls a digit, {times[sampler]:.1f} s"))
    slowest = max(times.values())
    for r in rows:
        r.ratio = times[r.path] / slowest
    return rows


def peak_tflops(device: torch.device) -> float | None:
    """The dense bf16 peak of a CUDA device from BF16_PEAK_TFLOPS, or None (CPU, or a device not listed)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def describe(device: torch.device) -> str:
    """One line: device, threads, torch version, date."""
    import datetime

    what = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})")
    return f"{what}, torch {torch.__version__}, {datetime.date.today().isoformat()}"


def table(rows: list[Row], device: torch.device) -> str:
    """The rows as a Markdown table, with the fraction of peak on a CUDA device whose peak is known."""
    peak = peak_tflops(device)
    head = "| model | task | path | throughput | vs eager | TFLOP/s | note |\n|---|---|---|---|---|---|---|"
    lines = [head]
    for r in rows:
        rate = (f"{r.rate:,.0f} {r.unit}" if r.rate >= 100 else f"{r.rate:.3g} {r.unit}") if r.rate else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio else "-"
        fl = "-" if r.tflops is None else (f"{r.tflops:.3g}" + (f" ({r.tflops / peak:.1%} of peak)" if peak else ""))
        lines.append(f"| {r.model} | {r.task} | {r.path} | {rate} | {ratio} | {fl} | {r.note} |")
    note = ("" if device.type != "cuda" or peak else
            f"\nThe bf16 peak of {torch.cuda.get_device_name(device)} is not in bench.BF16_PEAK_TFLOPS: no fraction.")
    return "\n".join(lines) + note
