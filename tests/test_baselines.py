"""The baselines' defining mechanisms on problems with a known direction."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines.fql import FQL, FQLConfig
from tests.gaussian_problem import A, C, ExactBase, fine_tune, initial_field, make_agent, samples
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
        actions = np.asarray(onestep_act(agent.nets["onestep"], jnp.zeros((4096, 1)), 2, jax.random.key(5)))
        results[alpha] = (_q(actions).mean(), float(metrics["onestep/distill_loss"]))
    bc_q = _q(samples(ExactBase(), 4096)).mean()
    (q_low, dist_low), (q_high, dist_high) = results[0.3], results[30.0]
    assert q_low > bc_q + 0.02, (q_low, bc_q)  # higher Q than the data's policy
    assert q_low > q_high  # a larger alpha gives up Q ...
    assert dist_high < 0.5 * dist_low  # ... to stay near the BC flow
