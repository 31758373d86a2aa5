"""Every generative sampler of the course, behind one contract.

A sampler takes (score or model, its process, x_T, steps, generator) and returns (x, Trajectory):
    ddpm_ancestral(eps_model, schedule, x_T, steps, generator)    DDPM, Ho et al. Alg. 2       ch. 1, 6
    annealed_langevin(score, sigmas, x_T, steps, generator)       NCSN, Song & Ermon Alg. 1    ch. 2
    euler_maruyama(score, sde, x_T, steps, generator)             reverse SDE, eq. 6           ch. 5, 7
    euler_maruyama_forward_law(sde, t0, t1, steps)                its forward chain's law      ch. 5, 7
    ode_solve(score, sde, x_T, steps, generator, method)          probability flow, eq. 13     ch. 5, 7
    ode_solve_rk45(score, sde, x_T, generator)                    the same, adaptive RK45      ch. 7
    vpsde_ancestral(score, sde, x_T, steps, generator)            ancestral on the VP-SDE      ch. 7
    pc_sample(score, sde, x_T, steps, generator)                  predictor-corrector          ch. 7
    ddim(score, process, x_T, steps, generator, eta)              DDIM, Song, Meng, Ermon eq. 12   ch. 6-8
    dpm_solver_pp_2m(score, process, x_T, steps, generator)       DPM-Solver++(2M), Lu et al. Alg. 2  ch. 7, 8
    dpm_solver_pp_3m(score, process, x_T, steps, generator)       DPM-Solver++(3M), third order       ch. 7
    reverse_sample(score, sde, shape, steps, generator, method)   draws x_1, then one of the above
The last three step on `timesteps.solver_times` (uniform in t, in log-SNR, or EDM's rho = 7) and take any
process with alpha, sigma and log-SNR: the VP-SDE, or a DDPM's own steps (`schedules.DiscreteVP`).
Every one also takes keep_every (states kept in the Trajectory) and progress (a bar). The device is x_T's.
The update rules they share are written once in `kernels.py`; the models' named samplers
(`models.get(name).samplers`) wrap these with a model's own score and prior.
The MCMC chains of chapter 3 (`langevin.ula`, `langevin.mala`) are not generative samplers: they
return their whole history for the chain diagnostics.
"""

from .annealed import annealed_langevin, level_times
from .ddpm import ddpm_ancestral, respaced_steps
from .exponential import (FEW_STEP_SOLVERS, data_prediction, ddim, dpm_solver_pp_2m, dpm_solver_pp_3m,
                          taylor_weights)
from .kernels import Trajectory, time_grid
from .timesteps import SCHEDULES, solver_times
from .vpsde import (euler_maruyama, euler_maruyama_forward_law, ode_solve, ode_solve_rk45, pc_sample, reverse_sample,
                    vpsde_ancestral)

__all__ = ["FEW_STEP_SOLVERS", "SCHEDULES", "Trajectory", "annealed_langevin", "data_prediction", "ddim",
           "ddpm_ancestral", "dpm_solver_pp_2m", "dpm_solver_pp_3m", "euler_maruyama", "euler_maruyama_forward_law",
           "level_times", "ode_solve", "ode_solve_rk45", "pc_sample", "respaced_steps", "reverse_sample",
           "solver_times", "taylor_weights", "time_grid", "vpsde_ancestral"]
