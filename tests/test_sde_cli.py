"""`python -m helpers sample sde-1d` writes (N,) float32 samples of the shipped chapter-5 checkpoint."""

import numpy as np

from helpers.cli import main


def test_sample_sde_1d_writes_n_samples(tmp_path):
    out = tmp_path / "s.npy"
    assert main(["sample", "sde-1d", "--n", "1000", "--out", str(out), "--steps", "200"]) == 0
    x = np.load(out)
    assert x.shape == (1000,) and x.dtype == np.float32 and np.isfinite(x).all()
    # two modes near -3 and 3 with half the points each (sd of the share 0.016 at n = 1000)
    assert abs((x > 0).mean() - 0.5) < 0.08
    assert abs(np.median(x[x > 0]) - 3) < 0.2 and abs(np.median(x[x < 0]) + 3) < 0.2


def test_sample_sde_1d_ode_sampler_and_bad_sampler(tmp_path, capsys):
    out = tmp_path / "ode.npy"
    assert main(["sample", "sde-1d", "--n", "300", "--out", str(out), "--steps", "50", "--sampler", "heun"]) == 0
    assert np.load(out).shape == (300,)
    assert main(["sample", "sde-1d", "--n", "10", "--out", str(out), "--sampler", "pc"]) == 2
    assert "sde, euler, heun" in capsys.readouterr().err
