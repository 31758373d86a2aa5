"""The fast path of training (helpers.accel, config.fast_path) and `python -m helpers bench` on a CPU.

The GPU-only paths (CUDA graphs, the bf16 peak fraction) cannot run here; what can, runs on the CPU."""

import pytest
import torch
from torch import nn

from helpers import accel, bench, config
from helpers.errors import ConfigError
from helpers.training import train


def _conv_regression(fast_path: bool):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 1))
    target = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))

    def draw(g):
        idx = torch.randint(0, 64, (16,), generator=g)
        return target[idx], target[idx].mean((1, 2, 3)).unsqueeze(1)

    def loss_fn(m, batch, g):
        x, y = batch
        return ((m(x).float() - y) ** 2).mean()

    result = train(model, loss_fn, draw, steps=60, lr=1e-2, generator=config.generator(0), progress=False,
                   fast_path=fast_path)
    return model, result


def test_fast_path_on_cpu_trains_in_bf16_autocast_with_fp32_weights_in_channels_last():
    model, result = _conv_regression(fast_path=True)
    conv = model[2].weight  # (4, 4, 3, 3): its two layouts differ
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert result.losses[-1] < 0.2 * result.losses[0]
    _, plain = _conv_regression(fast_path=False)
    assert plain.losses[0] == pytest.approx(result.losses[0], rel=0.05)  # same start, bf16's rounding apart


def test_autocast_is_bf16_only_when_asked():
    x = torch.randn(4, 4)
    with accel.autocast(torch.device("cpu"), True):
        assert (x @ x).dtype == torch.bfloat16
    with accel.autocast(torch.device("cpu"), False):
        assert (x @ x).dtype == torch.float32


def test_fast_path_is_on_for_cuda_off_for_cpu_and_overridden_by_the_environment(monkeypatch):
    monkeypatch.delenv("COURSE_FAST_PATH", raising=False)
    assert config.fast_path(torch.device("cuda")) and not config.fast_path(torch.device("cpu"))
    monkeypatch.setenv("COURSE_FAST_PATH", "1")
    assert config.fast_path(torch.device("cpu"))
    monkeypatch.setenv("COURSE_FAST_PATH", "0")
    assert not config.fast_path(torch.device("cuda"))
    monkeypatch.setenv("COURSE_FAST_PATH", "yes")
    with pytest.raises(ConfigError, match="COURSE_FAST_PATH"):
        config.fast_path(torch.device("cpu"))


def test_flop_count_of_a_linear_layer_forward_and_backward():
    layer = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    assert bench.flops_per_call(lambda: layer(x)) == 2 * 5 * 4 * 3
    # backward: the input's gradient is not needed (x is a leaf without grad), the weight's is: 2 * 5 * 4 * 3
    assert bench.flops_per_call(lambda: layer(x).sum().backward()) == 2 * (2 * 5 * 4 * 3)


def test_bench_on_cpu_measures_every_available_path_and_says_why_others_are_skipped():
    rows = bench.run(torch.device("cpu"), steps=1, compile_=False, which=("2D MLP",))
    assert [r.task for r in rows].count("train") >= 3 and [r.task for r in rows].count("sample") >= 4
    for group in ("train", "sample"):
        first = next(r for r in rows if r.task == group)
        assert first.path.startswith("eager") and first.ratio == 1.0
    for r in rows:
        if r.rate is None:
            assert r.note.startswith("skipped:") and r.ratio is None
        else:
            assert r.rate > 0 and r.tflops > 0
    assert {r.path for r in rows if r.rate is None} == {"compile", "cuda graph"}
    assert bench.peak_tflops(torch.device("cpu")) is None
    assert len(bench.table(rows, torch.device("cpu")).splitlines()) == len(rows) + 2


def test_a_compile_that_fails_is_listed_as_skipped_with_its_reason():
    rows, timed = [], []
    skipped = bench.Row("2D MLP", "train", "compile", None, "points/s")

    def broken(net):
        raise RuntimeError("no C++ compiler found\nmore detail")

    bench._compile_row(rows, skipped, nn.Linear(2, 2), True, broken, lambda net, note: timed.append(note))
    assert not timed and rows[0].rate is None
    assert rows[0].note == "skipped: compiling failed (RuntimeError: no C++ compiler found)"
    bench._compile_row(rows, skipped, nn.Linear(2, 2), False, broken, lambda net, note: timed.append(note))
    assert rows[1].note.startswith("skipped: pass --compile")
    bench._compile_row(rows, skipped, nn.Linear(2, 2), True, lambda net: None, lambda net, note: timed.append(note))
    assert len(rows) == 2 and timed == ["compiled in 0 s"]  # time_it appends the measured row itself


def test_bench_samplers_times_each_sampler_and_sets_it_against_the_slowest():
    rows = bench.sampler_rows(torch.device("cpu"), n=2, which=("dpm2m", "em"), steps={"em": 40})
    assert [r.path for r in rows] == ["dpm2m", "em"]
    assert all(r.rate > 0 for r in rows) and max(r.ratio for r in rows) == 1.0
    assert rows[0].note.startswith("20 network calls") and rows[1].note.startswith("40 network calls")
