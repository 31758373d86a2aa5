"""DDIM, DPM-Solver++(2M) and (3M) (`samplers.exponential`) and their time steps, against what is known exactly.

- Order of accuracy: on chapter 5's two-Gaussian mixture, with its exact score, the error at t = eps against the
  exact probability flow (scipy's DOP853 at tolerance 1e-12) falls like N^-p with the number of network calls N;
  the fitted p is about 1 for DDIM, 2 for DPM-Solver++(2M) and 3 for (3M), within 4 standard errors of the fit.
- The exponential integrator's Taylor weights, ODE and SDE, against numerical quadrature of their kernels.
- DDIM's family keeps the marginals q(x_t | x_0) for every eta (Song, Meng and Ermon 2021, Lemma 1), and eta = 1
  is the DDPM posterior step (Ho et al. 2020, eq. 7): checked on data that is one point, where the denoiser is
  exact, in standard errors of the sample moments.
- The log-SNR and its inverse, for the VP-SDE and for a DDPM's own steps; the three time schedules; bad inputs.
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp

from helpers import samplers
from helpers.data import GaussianMixture1D
from helpers.schedules import DDPMSchedule, DiscreteVP
from helpers.sde import EPS, VPSDE, exact_score

MIX = GaussianMixture1D(weights=[0.5, 0.5], means=[-3.0, 3.0], stds=[0.5, 0.5])
SDE = VPSDE(0.1, 20.0)
CALLS = [16, 32, 64, 128, 256, 512]
CALLS_3M = [64, 128, 256, 512, 1024, 2048]  # at 16-512 the third order's error is not yet asymptotic (slope 3.15)


@pytest.fixture(scope="module")
def exact_flow():
    """200 draws x_1 ~ N(0, 1) (float64) and their images at t = eps under the exact probability-flow ODE."""
    x1 = torch.randn(200, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    score = exact_score(MIX, SDE)

    def drift(t, y):
        x = torch.as_tensor(y).reshape(-1, 1)
        return SDE.ode_drift(x, torch.full((len(x),), t, dtype=torch.float64), score).numpy().ravel()

    ref = solve_ivp(drift, (1.0, EPS), x1.numpy().ravel(), method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]
    return x1, ref


def fitted_order(calls, errors) -> tuple[float, float]:
    """(p, its standard error) from least squares of log e = c - p log N + d / N: the error expansion
    e = C N^-p (1 + d' / N + ...) with its next term, so that the slope is the asymptotic order."""
    n = np.asarray(calls, dtype=float)
    design = np.stack([np.ones_like(n), -np.log(n), 1.0 / n], 1)
    y = np.log(errors)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    cov = (resid @ resid) / (len(y) - design.shape[1]) * np.linalg.inv(design.T @ design)
    return float(coef[1]), float(math.sqrt(cov[1, 1]))


@pytest.mark.parametrize("solver, order, calls", [(samplers.ddim, 1.0, CALLS), (samplers.dpm_solver_pp_2m, 2.0, CALLS),
                                                  (samplers.dpm_solver_pp_3m, 3.0, CALLS_3M)],
                         ids=["ddim", "dpm_solver_pp_2m", "dpm_solver_pp_3m"])
def test_error_against_the_exact_flow_falls_with_the_solvers_order(exact_flow, solver, order, calls):
    x1, ref = exact_flow
    score = exact_score(MIX, SDE)
    errors = []
    for n in calls:
        x, traj = solver(score, SDE, x1.clone(), n, None, schedule="logsnr")
        assert traj.nfev == n
        errors.append(float(np.abs(x.numpy().ravel() - ref).mean()))
    p, se = fitted_order(calls, errors)
    print(f"{solver.__name__}: mean |error| at N = {calls}: {['%.2e' % e for e in errors]}; order {p:.3f} +- {se:.4f}")
    assert abs(p - order) < 4 * se, (p, se)
    assert all(b < a for a, b in zip(errors, errors[1:]))


def test_the_order_test_tells_the_two_solvers_apart(exact_flow):
    """Each solver's order is many standard errors from the other's: the test above would fail a swap."""
    x1, ref = exact_flow
    score = exact_score(MIX, SDE)
    fits = []
    for solver in (samplers.ddim, samplers.dpm_solver_pp_2m):
        errors = [float(np.abs(solver(score, SDE, x1.clone(), n, None, schedule="logsnr")[0].numpy().ravel() - ref).mean())
                  for n in CALLS]
        fits.append(fitted_order(CALLS, errors))
    (p1, se1), (p2, se2) = fits
    assert p2 - p1 > 20 * max(se1, se2)


@pytest.mark.parametrize("h", [1e-3, 0.05, 0.4, 1.0, 3.0])
def test_taylor_weights_are_the_integrals_of_their_kernels(h):
    """w_k = int_0^h kernel(u) u^k / k! du, kernel e^-(h - u) (ODE) or 2 e^-2(h - u) (SDE), by quadrature."""
    for stochastic, kernel in ((False, lambda u: math.exp(-(h - u))), (True, lambda u: 2 * math.exp(-2 * (h - u)))):
        got = samplers.taylor_weights(h, stochastic)
        for k, w in enumerate(got):
            want = quad(lambda u: kernel(u) * u**k / math.factorial(k), 0.0, h, epsabs=0, epsrel=1e-13)[0]
            assert w == pytest.approx(want, rel=1e-9), (stochastic, k)


def test_third_order_needs_its_curvature_weight(exact_flow, monkeypatch):
    """The order test tells a wrong w_2 from the right one: with half of it, DPM-Solver++(3M) is second
    order only, its fitted slope many standard errors below 3."""
    import helpers.samplers.exponential as exponential

    x1, ref = exact_flow
    score = exact_score(MIX, SDE)
    right = exponential.taylor_weights
    monkeypatch.setattr(exponential, "taylor_weights", lambda h, stochastic=False: (*right(h, stochastic)[:2],
                                                                                     0.5 * right(h, stochastic)[2]))
    errors = [float(np.abs(samplers.dpm_solver_pp_3m(score, SDE, x1.clone(), n, None)[0].numpy().ravel() - ref).mean())
              for n in CALLS_3M]
    p, se = fitted_order(CALLS_3M, errors)
    assert 3.0 - p > 20 * se and abs(p - 2.0) < 0.3, (p, se)


# --------------------------------------------------------------------------- DDIM's marginals, exactly


def point_score(x0: float, process):
    """The exact score of the marginals of data that is the one point x0: (alpha x0 - x) / sigma^2, whose
    data prediction is x0 itself at every t > 0."""
    def score(x, t):
        a = process.alpha(t.double()).to(x).reshape(-1, *([1] * (x.ndim - 1)))
        s = process.marginal_std(t.double()).to(x).reshape(-1, *([1] * (x.ndim - 1)))
        return (a * x0 - x) / s**2
    return score


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_keeps_the_forward_marginals_for_every_eta(eta):
    schedule = DDPMSchedule(T=20, beta_1=0.01, beta_T=0.3)
    process, x0, n = DiscreteVP(schedule), 1.5, 40_000
    g = torch.Generator().manual_seed(int(10 * eta))
    a1, s1 = float(process.alpha(1.0)), float(process.marginal_std(1.0))
    x = a1 * x0 + s1 * torch.randn(n, 1, generator=g, dtype=torch.float64)  # exactly q(x_T | x_0)
    _, traj = samplers.ddim(point_score(x0, process), process, x, 20, g, eta=eta, t_end=1 / 20, denoise=True,
                            keep_every=1)
    assert torch.allclose(traj.times, torch.arange(20, -1, -1, dtype=torch.float64) / 20)
    for t, states in zip(traj.times, traj.states):
        mean, std = float(process.alpha(t)) * x0, float(process.marginal_std(t))
        got_mean, got_var = float(states.mean()), float(states.var())
        assert abs(got_mean - mean) < 4 * max(std, 1e-12) / math.sqrt(n) + 1e-12
        assert abs(got_var - std**2) < 4 * std**2 * math.sqrt(2 / (n - 1)) + 1e-12


def test_stochastic_dpm_solver_is_ddim_with_eta_one_where_the_data_prediction_is_constant():
    """With data that is one point, x0_theta is the same at every step, the second-order term vanishes, and
    SDE-DPM-Solver++(2M) takes DDIM's eta = 1 steps: the same numbers from the same generator state."""
    schedule = DDPMSchedule(T=20, beta_1=0.01, beta_T=0.3)
    process = DiscreteVP(schedule)
    x = torch.randn(500, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a, _ = samplers.ddim(point_score(0.8, process), process, x, 12, torch.Generator().manual_seed(5), eta=1.0,
                         schedule="logsnr", t_end=1 / 20, denoise=True)
    b, _ = samplers.dpm_solver_pp_2m(point_score(0.8, process), process, x, 12, torch.Generator().manual_seed(5),
                                     schedule="logsnr", t_end=1 / 20, denoise=True, stochastic=True)
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_ddim_with_eta_one_is_the_ddpm_posterior_step():
    """From one x_T (all 40,000 chains at the same point), one eta = 1 step draws q(x_{T-1} | x_T, x_0):
    mean sqrt(alpha_bar_{T-1}) beta_T / (1 - alpha_bar_T) x_0 + sqrt(alpha_T) (1 - alpha_bar_{T-1}) / (1 - alpha_bar_T) x_T
    and variance beta-tilde = (1 - alpha_bar_{T-1}) / (1 - alpha_bar_T) beta_T (Ho et al. 2020, eq. 7)."""
    schedule = DDPMSchedule(T=20, beta_1=0.01, beta_T=0.3)
    process, x0, xT, n = DiscreteVP(schedule), -0.7, 0.4, 40_000
    x = torch.full((n, 1), xT, dtype=torch.float64)
    _, traj = samplers.ddim(point_score(x0, process), process, x, 20, torch.Generator().manual_seed(1), eta=1.0,
                            t_end=1 / 20, denoise=True, keep_every=1)
    ab, ab_prev, beta = (float(v) for v in (schedule.alpha_bars[-1], schedule.alpha_bars[-2], schedule.betas[-1]))
    mean = math.sqrt(ab_prev) * beta / (1 - ab) * x0 + math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab) * xT
    var = (1 - ab_prev) / (1 - ab) * beta
    step = traj.states[1]
    assert abs(float(step.mean()) - mean) < 4 * math.sqrt(var / n)
    assert abs(float(step.var()) - var) < 4 * var * math.sqrt(2 / (n - 1))


def test_deterministic_solvers_draw_no_noise_and_ddim_eta_zero_needs_no_generator():
    x = torch.randn(5, 1, generator=torch.Generator().manual_seed(0))
    score = exact_score(MIX, SDE)
    a, _ = samplers.ddim(score, SDE, x, 10, None)
    b, _ = samplers.dpm_solver_pp_2m(score, SDE, x, 10, None)
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    c, _ = samplers.ddim(score, SDE, x, 10, g)
    assert torch.equal(a, c) and torch.equal(g.get_state(), state) and torch.isfinite(b).all()


# ----------------------------------------------------------------------------- log-SNR and time steps


def test_log_snr_and_its_inverse_for_the_vp_sde():
    t = torch.tensor([1e-3, 0.01, 0.3, 0.77, 1.0], dtype=torch.float64)
    lam = SDE.log_snr(t)
    assert torch.allclose(lam, torch.log(SDE.alpha(t) / SDE.marginal_std(t)), rtol=1e-12)
    assert torch.allclose(SDE.time_of_log_snr(lam), t, rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match="lam"):
        SDE.time_of_log_snr(torch.tensor([float(lam[-1]) - 0.1]))


def test_discrete_vp_is_the_ddpm_on_its_grid_and_inverts_between():
    schedule = DDPMSchedule()
    process = DiscreteVP(schedule)
    i = torch.tensor([1, 2, 100, 999, 1000])
    assert torch.allclose(process.alpha(i / 1000), schedule.alpha_bars[i - 1].sqrt(), rtol=1e-12)
    assert torch.allclose(process.marginal_std(i / 1000), (1 - schedule.alpha_bars[i - 1]).sqrt(), rtol=1e-10)
    assert float(process.alpha(0.0)) == 1.0 and math.isinf(float(process.log_snr(0.0)))
    t = torch.tensor([1e-3, 0.0105, 0.5003, 0.9999, 1.0], dtype=torch.float64)
    assert torch.allclose(process.time_of_log_snr(process.log_snr(t)), t, atol=1e-10)


@pytest.mark.parametrize("schedule", samplers.SCHEDULES)
def test_every_schedule_runs_from_one_to_t_end_and_is_what_it_says(schedule):
    ts = samplers.solver_times(SDE, 10, schedule, t_end=EPS)
    assert len(ts) == 11 and float(ts[0]) == 1.0 and float(ts[-1]) == EPS and bool((ts[1:] < ts[:-1]).all())
    if schedule == "time":
        steps = ts.diff()
    elif schedule == "logsnr":
        steps = SDE.log_snr(ts).diff()
    else:
        steps = torch.exp(-SDE.log_snr(ts) / 7.0).diff()  # (sigma / alpha)^(1/rho), rho = 7
    assert torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-8)


def test_on_a_ddpm_the_times_lie_on_its_grid_and_end_at_zero():
    process = DiscreteVP(DDPMSchedule())
    for schedule in samplers.SCHEDULES:
        ts = samplers.solver_times(process, 10, schedule, t_end=1e-3, denoise=True)
        assert float(ts[0]) == 1.0 and float(ts[-2]) == 1e-3 and float(ts[-1]) == 0.0 and len(ts) == 11
        assert torch.allclose(ts * 1000, torch.round(ts * 1000), atol=1e-9)
    every = samplers.solver_times(process, 1000, "time", t_end=1e-3, denoise=True)
    assert torch.allclose(every * 1000, torch.arange(1000, -1, -1, dtype=torch.float64))


@pytest.mark.parametrize("kwargs, argument", [({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"),
                                              ({"schedule": "cosine"}, "schedule"), ({"eta": 1.5}, "eta"),
                                              ({"eta": -0.1}, "eta"), ({"t_end": 0.0}, "t_end")])
def test_bad_inputs_are_refused_naming_the_argument(kwargs, argument):
    options = {"steps": 5, **kwargs}
    steps = options.pop("steps")
    x = torch.zeros(2, 1)
    with pytest.raises(ValueError, match=argument):
        samplers.ddim(exact_score(MIX, SDE), SDE, x, steps, None, **options)
    if argument != "eta":
        for solver in (samplers.dpm_solver_pp_2m, samplers.dpm_solver_pp_3m):
            with pytest.raises(ValueError, match=argument):
                solver(exact_score(MIX, SDE), SDE, x, steps, None, **options)


def test_a_step_much_longer_in_log_snr_than_the_last_is_taken_at_first_order():
    """Steps uniform in t end on a step with r = h_prev / h < 1/2 (MIN_STEP_RATIO): DPM-Solver++(2M) takes it as
    DDIM would, from the state before it; the steps before it (r >= 1/2) keep the second-order correction."""
    x = torch.randn(50, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    score = exact_score(MIX, SDE)
    ts = samplers.solver_times(SDE, 20, "time")
    lam = SDE.log_snr(ts)
    r = (lam.diff()[:-1] / lam.diff()[1:])
    assert float(r[-1]) < 0.5 and bool((r[:-1] >= 0.5).all())
    _, traj = samplers.dpm_solver_pp_2m(score, SDE, x, 20, None, schedule="time", keep_every=1)

    def first_order(x_s, s, t):
        a_s, s_s = float(SDE.alpha(s)), float(SDE.marginal_std(s))
        a_t, s_t = float(SDE.alpha(t)), float(SDE.marginal_std(t))
        x0 = samplers.data_prediction(score, x_s, float(s), a_s, s_s)
        return a_t * x0 + s_t * (x_s - a_s * x0) / s_s

    assert torch.allclose(traj.states[-1], first_order(traj.states[-2], ts[-2], ts[-1]), atol=1e-12)
    assert not torch.allclose(traj.states[-2], first_order(traj.states[-3], ts[-3], ts[-2]), atol=1e-6)
