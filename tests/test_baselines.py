"""The baselines' defining mechanisms on problems with a known direction."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines.fql import FQL, FQLConfig
from baselines.ifql import IFQL, IFQLConfig
from tests.gaussian_problem import A, C, ExactBase, fine_tune, initial_field, make_agent, samples
from trqam.critic import expectile_loss
from trqam.nn import MLP
from trqam.onestep import onestep_act


def _q(actions: np.ndarray) -> np.ndarray:
    d = actions - np.asarray(C)
    return -0.5 * np.einsum("bi,ij,bj->b", d, np.asarray(A), d)


@pytest.mark.slow
def test_fql_one_step_policy_trades_q_against_staying_near_the_data():
    """With the exact base flow as BC policy and the quadratic critic, FQL's one-step policy
    reaches higher Q than BC samples, and moves back towards the BC flow as alpha grows."""
    results = {}
    for alpha in (0.3, 30.0):
        config = FQLConfig(flow_steps=10, alpha=alpha, chunk_len=1)
        onestep = MLP(1 + 2, 2, (64, 64), layer_norm=False, key=jax.random.key(0))
        agent = make_agent(FQL, config, initial_field(jax.random.key(0)), extra_nets={"onestep": onestep})
        agent, metrics = fine_tune(agent, 800, net="onestep", lr=3e-3)
        actions = np.asarray(onestep_act(agent.nets["onestep"], jnp.zeros((4096, 1)), jax.random.key(5)))
        results[alpha] = (_q(actions).mean(), float(metrics["onestep/distill_loss"]))
    bc_q = _q(samples(ExactBase(), 4096)).mean()
    (q_low, dist_low), (q_high, dist_high) = results[0.3], results[30.0]
    assert q_low > bc_q + 0.02, (q_low, bc_q)  # higher Q than the data's policy
    assert q_low > q_high  # a larger alpha gives up Q ...
    assert dist_high < 0.5 * dist_low  # ... to stay near the BC flow


def test_expectile_sits_above_the_mean_for_kappa_above_half():
    x = jax.random.normal(jax.random.key(0), (20000,))
    grid = jnp.linspace(-2, 2, 801)

    def minimiser(kappa):
        losses = jax.vmap(lambda v: jnp.mean(expectile_loss(x - v, kappa)))(grid)
        return float(grid[jnp.argmin(losses)])

    mean = float(x.mean())
    assert minimiser(0.9) > mean + 0.5  # the 0.9-expectile of N(0, 1) is ~0.86
    assert abs(minimiser(0.5) - mean) < 0.01  # the 0.5-expectile is the mean
    assert minimiser(0.1) < mean - 0.5


def test_ifql_acts_with_the_best_of_its_samples():
    config = IFQLConfig(flow_steps=10, num_samples=32, chunk_len=1)
    agent = make_agent(IFQL, config, initial_field(jax.random.key(0)))
    chosen = np.asarray(agent.act(agent.nets, jnp.zeros((512, 1)), jax.random.key(1)))
    bc_q = _q(samples(ExactBase(), 20000))
    # The best of 32 draws beats the BC policy's 90th percentile for almost every state.
    assert np.mean(_q(chosen) > np.quantile(bc_q, 0.9)) > 0.9
    assert _q(chosen).mean() > bc_q.mean() + 0.3
