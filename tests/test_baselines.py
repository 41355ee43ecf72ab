"""The baselines' defining mechanisms on problems with a known direction."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines.cgql import CGQL, CGQLConfig
from baselines.dac import DAC, DACConfig
from baselines.dsrl import DSRL, DSRLConfig
from baselines.fawac import FAWAC, FAWACConfig
from baselines.fbrac import FBRAC, FBRACConfig
from baselines.fedit import FEdit, FEditConfig
from baselines.fql import FQL, FQLConfig
from baselines.ifql import IFQL, IFQLConfig
from baselines.qsm import QSM, QSMConfig
from baselines.rebrac import ReBRAC, ReBRACConfig
from baselines.rlpd import RLPD, RLPDConfig
from trqam import gaussian_problem
from trqam.critic import expectile_loss
from trqam.ddpm import VP_BETA_MAX, VP_BETA_MIN, NoisePredictor, ddpm_sample, vp_schedule
from trqam.fine_tune import FlowQAgent
from trqam.flow import euler_sample
from trqam.gaussian_problem import (
    A,
    C,
    ExactBase,
    QuadraticCritic,
    data_batch,
    fine_tune,
    initial_field,
    make_agent,
    q_value,
    samples,
)
from trqam.nn import MLP, TanhGaussian
from trqam.onestep import onestep_act
from trqam.sac import LogTemperature


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


# ---- DSRL ------------------------------------------------------------------------------
class ExactNoiseCritic(eqx.Module):
    """``Q_z(s, z) = Q(s, decode(s, z))`` exactly: the exact base's 10-step Euler ODE from z."""

    def __call__(self, obs, z):
        x = z
        for k in range(10):
            x = x + ExactBase()(obs, x, k / 10) / 10
        return QuadraticCritic()(obs, jnp.clip(x, -1.0, 1.0))


@pytest.mark.slow
def test_dsrl_noise_policy_steers_decoded_actions_up_the_critic():
    config = DSRLConfig(flow_steps=10, noise_scale=1.0, chunk_len=1)
    policy = TanhGaussian(1, 2, (64, 64), key=jax.random.key(0))
    agent = make_agent(DSRL, config, None, extra_nets={
        "noise_policy": policy, "noise_critic": ExactNoiseCritic(), "log_alpha": LogTemperature(np.log(0.01))})
    # The distillation target is the critic at the decoded action: exact here, so zero loss.
    _, metrics = agent.critic_loss(agent.nets, gaussian_problem.batch(), jax.random.key(1))
    assert float(metrics["noise_critic/distill_loss"]) < 1e-10
    before = q_value(agent.act(agent.nets, jnp.zeros((4096, 1)), jax.random.key(2))).mean()
    agent, _ = fine_tune(agent, 400, net="noise_policy", lr=3e-3)
    decoded = agent.act(agent.nets, jnp.zeros((4096, 1)), jax.random.key(2))
    bc = q_value(samples(ExactBase(), 4096)).mean()
    assert q_value(decoded).mean() > max(before, bc) + 0.05, (q_value(decoded).mean(), before, bc)


# ---- CGQL ------------------------------------------------------------------------------
class TimedQuadraticCritic(eqx.Module):
    """The quadratic critic, taking (and ignoring) the flow time appended to the action."""

    def __call__(self, obs, action_and_time):
        return QuadraticCritic()(obs, action_and_time[:2])


def test_cgql_guidance_moves_samples_up_the_critic_gradient():
    mean_q = {}
    for guidance in (0.0, 0.01, 0.03):
        config = CGQLConfig(flow_steps=10, chunk_len=1, guidance=guidance, inv_temp=10.0, mode="simple")
        agent = make_agent(CGQL, config, None, critic=TimedQuadraticCritic())
        actions = agent.act(agent.nets, jnp.zeros((4096, 1)), jax.random.key(0))
        mean_q[guidance] = q_value(actions).mean()
    # Without guidance the sampler is the BC flow's Euler ODE from the same noise.
    noise = jax.random.normal(jax.random.key(0), (4096, 2))
    unguided = q_value(euler_sample(ExactBase(), jnp.zeros((4096, 1)), noise, 10)).mean()
    assert mean_q[0.0] == pytest.approx(unguided, abs=1e-5)
    assert mean_q[0.03] > mean_q[0.01] > mean_q[0.0] + 0.01, mean_q


def test_cgql_linex_distillation_is_minimised_at_the_target():
    """The linex loss per member, exp(d) + beta Q with d = beta (Q_target - Q), has its minimum at Q = Q_target."""
    beta, target = 10.0, 0.3
    grid = jnp.linspace(0.0, 0.6, 601)
    loss = jnp.exp(beta * (target - grid)) + beta * grid
    assert abs(float(grid[jnp.argmin(loss)]) - target) < 1e-3


# ---- ReBRAC ----------------------------------------------------------------------------
@pytest.mark.slow
class OffsetCritic(eqx.Module):
    """The quadratic critic minus 1: ReBRAC divides its Q term by mean |Q|, which the bare
    quadratic (maximum exactly 0) would blow up near its optimum."""

    def __call__(self, obs, action):
        return QuadraticCritic()(obs, action) - 1.0


def test_rebrac_bc_term_pulls_actions_to_the_data_as_alpha_grows():
    distance, q = {}, {}
    for alpha in (0.01, 10.0):
        config = ReBRACConfig(flow_steps=10, chunk_len=1, alpha=alpha)
        actor = MLP(1, 2, (64, 64), layer_norm=False, key=jax.random.key(0))
        agent = make_agent(ReBRAC, config, None, critic=OffsetCritic(), extra_nets={"actor": actor})
        agent, _ = fine_tune(agent, 400, net="actor", lr=3e-3)  # dataset actions are all at 0
        action = np.asarray(agent.act(agent.nets, jnp.zeros((1, 1)), jax.random.key(0)))
        distance[alpha], q[alpha] = float(np.linalg.norm(action)), float(q_value(action)[0])
    assert distance[10.0] < 0.5 * distance[0.01], distance
    assert q[0.01] > q[10.0], q
    # With a weak BC term the actor goes (nearly) to the critic's optimum c.
    assert distance[0.01] > 0.8 * float(np.linalg.norm(np.asarray(C)))


# ---- FAWAC -----------------------------------------------------------------------------
class ConstantValue(eqx.Module):
    value: float

    def __call__(self, obs):
        return jnp.full((1,), self.value)


def test_fawac_weights_are_exp_advantage_capped_at_100():
    config = FAWACConfig(flow_steps=10, chunk_len=1, inv_temp=6.4)
    data = data_batch(2048)
    q = q_value(data.actions)
    v = float(np.quantile(q, 0.2))  # advantages up to ~0.9: exp(6.4 * 0.9) > 100
    agent = make_agent(FAWAC, config, None, extra_nets={"value": ConstantValue(v)})
    weights = np.asarray(agent.advantage_weights(agent.nets, data))
    expected = np.minimum(np.exp(6.4 * (q - v)), 100.0)
    np.testing.assert_allclose(weights, expected, rtol=1e-4)
    assert weights.max() == pytest.approx(100.0) and (weights == weights.max()).sum() > 10  # the cap binds
    assert weights[q < v].max() < 1.0  # below-average actions are down-weighted


# ---- FBRAC, FEdit ----------------------------------------------------------------------
@pytest.mark.slow
def test_fbrac_backpropagates_q_through_every_euler_step():
    config = FBRACConfig(flow_steps=10, chunk_len=1, alpha=1.0)
    agent = make_agent(FBRAC, config, None)
    agent = eqx.tree_at(lambda a: a.nets["actor_slow"], agent, initial_field(jax.random.key(0)))
    before = q_value(samples(agent.nets["actor_slow"], 4096)).mean()
    agent, metrics = fine_tune(agent, 300, net="actor_slow", lr=3e-3)
    after = q_value(samples(agent.nets["actor_slow"], 4096)).mean()
    assert after > before + 0.05, (before, after)


@pytest.mark.slow
def test_fedit_edits_stay_within_the_edit_scale_and_raise_q():
    config = FEditConfig(flow_steps=10, chunk_len=1, edit_scale=0.2)
    edit = TanhGaussian(1 + 2, 2, (64, 64), key=jax.random.key(0))
    agent = make_agent(FEdit, config, None, extra_nets={"edit": edit, "log_alpha": LogTemperature(np.log(0.01))})
    agent, _ = fine_tune(agent, 400, net="edit", lr=3e-3)
    obs, key = jnp.zeros((4096, 1)), jax.random.key(4)
    flow_actions = FlowQAgent.act(agent, agent.nets, obs, jax.random.split(key)[0])  # the unedited BC flow
    edited = agent.act(agent.nets, obs, key)
    assert np.abs(np.asarray(edited - flow_actions)).max() <= 0.2 + 1e-6
    assert q_value(edited).mean() > q_value(flow_actions).mean() + 0.05


# ---- QSM / DAC -------------------------------------------------------------------------
def test_vp_schedule_matches_its_closed_form():
    for n in (10, 100):
        s = vp_schedule(n)
        t = np.arange(n + 1)
        expected = np.exp(-VP_BETA_MIN * t / n - 0.5 * (VP_BETA_MAX - VP_BETA_MIN) * t**2 / n**2)
        np.testing.assert_allclose(np.asarray(s.alpha_bars), expected, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(s.betas[1:]), 1 - np.exp(np.diff(np.log(expected))), rtol=1e-4)


def _exact_noise(schedule, mean, std):
    """The optimal noise prediction for data N(mean, std^2 I): E[eps | x_t]."""
    def eps(obs, x, t):
        alpha_bar = schedule.alpha_bars[t.astype(jnp.int32)]
        return jnp.sqrt(1 - alpha_bar) * (x - jnp.sqrt(alpha_bar) * mean) / (alpha_bar * std**2 + 1 - alpha_bar)
    return eps


def test_ddpm_sampler_with_the_exact_noise_prediction_recovers_the_data():
    mean, std, n = jnp.array([0.2, -0.3]), 0.15, 40000
    obs, noise = jnp.zeros((n, 1)), jax.random.normal(jax.random.key(0), (n, 2))
    # Fine steps: the sampler converges to the data distribution.
    fine = vp_schedule(400)
    x = np.asarray(ddpm_sample(_exact_noise(fine, mean, std), fine, obs, noise, jax.random.key(1)))
    np.testing.assert_allclose(x.mean(0), mean, atol=0.005)
    np.testing.assert_allclose(x.std(0), std, rtol=0.03)
    # 10 steps (the methods' setting): each step is affine in x plus sqrt(beta_t) noise, so the
    # sample's exact mean and variance follow by recursion; the sampler must match them.
    s = vp_schedule(10)
    # (DAC's posterior sampler clips the predicted clean action, which stays far inside [-1, 1] here.)
    x = np.asarray(ddpm_sample(_exact_noise(s, mean, std), s, obs, noise, jax.random.key(1), sampler="posterior"))
    ab, al, be = (np.asarray(a, np.float64) for a in (s.alpha_bars, s.alphas, s.betas))
    m, var = np.zeros(2), 1.0
    for t in range(10, 0, -1):
        # eps = sqrt(1-ab) (x - sqrt(ab) mean) / (ab std^2 + 1 - ab), so x0_hat = (x - sqrt(1-ab) eps) / sqrt(ab)
        # = a0 x + b0; the posterior mean is c0 x0_hat + c1 x.
        a0 = (1 - (1 - ab[t]) / (ab[t] * std**2 + 1 - ab[t])) / np.sqrt(ab[t])
        b0 = (1 - ab[t]) * np.sqrt(ab[t]) * np.asarray(mean) / (ab[t] * std**2 + 1 - ab[t]) / np.sqrt(ab[t])
        c0, c1 = np.sqrt(ab[t - 1]) * be[t] / (1 - ab[t]), np.sqrt(al[t]) * (1 - ab[t - 1]) / (1 - ab[t])
        gain = c0 * a0 + c1
        m, var = gain * m + c0 * b0, gain**2 * var + (be[t] if t > 1 else 0.0)
    np.testing.assert_allclose(x.mean(0), m, atol=0.004)
    np.testing.assert_allclose(x.var(0), var, rtol=0.03)


def _train_ddpm(cls, config) -> np.ndarray:
    net = NoisePredictor(1, 2, (64, 64), layer_norm=False, key=jax.random.key(0), time_dim=16)
    agent = make_agent(cls, config, None, extra_nets={"ddpm": net})
    agent, _ = fine_tune(agent, 1500, net="ddpm", lr=3e-3, data=data_batch(256))
    return q_value(agent.act(agent.nets, jnp.zeros((4096, 1)), jax.random.key(1)))


@pytest.mark.slow
def test_qsm_and_dac_guidance_moves_ddpm_samples_up_the_critic():
    """Data from N(mu, S), the quadratic critic: a denoiser trained with the critic's gradient
    samples higher-Q actions than the data, and more so the weaker its BC term."""
    data_q = q_value(data_batch(4096).actions).mean()
    qsm = _train_ddpm(QSM, QSMConfig(flow_steps=10, chunk_len=1, inv_temp=1.0, alpha=1.0)).mean()
    assert qsm > data_q + 0.2, (qsm, data_q)
    dac_weak_bc = _train_ddpm(DAC, DACConfig(flow_steps=10, chunk_len=1, alpha=1.0)).mean()
    dac_strong_bc = _train_ddpm(DAC, DACConfig(flow_steps=10, chunk_len=1, alpha=100.0)).mean()
    assert dac_weak_bc > max(dac_strong_bc, data_q) + 0.1, (dac_weak_bc, dac_strong_bc, data_q)


# ---- RLPD ------------------------------------------------------------------------------
class TwoCritics(eqx.Module):
    """Two members around the quadratic Q, apart by ``2 (gap * a_0 + offset)``: their std is
    ``|gap * a_0 + offset|``; with ``gap = offset = 0`` they agree exactly everywhere."""

    gap: float
    offset: float = 0.1

    def __call__(self, obs, action):
        q = gaussian_problem.QuadraticCritic()(obs, action)[0]
        spread = self.gap * action[0] + self.offset
        return jnp.stack([q + spread, q - spread])


def test_rlpd_sac_actor_climbs_the_pessimistic_ensemble_q():
    """SAC on the closed-form critic: the actor moves towards c; the ensemble's disagreement
    (std grows with |a_0|) pulls the first coordinate back towards 0 through mean - rho * std."""
    means = {}
    for gap in (0.0, 2.0):
        config = RLPDConfig(chunk_len=1, rho=0.5)
        actor = TanhGaussian(1, 2, (64, 64), key=jax.random.key(0))
        agent = make_agent(RLPD, config, None, critic=TwoCritics(gap),
                           extra_nets={"actor": actor, "log_alpha": LogTemperature(jnp.log(0.05))})
        before = np.asarray(agent.act(agent.nets, jnp.zeros((4096, 1)), jax.random.key(1)))
        agent, metrics = fine_tune(agent, 400, net="actor", lr=3e-3)
        after = np.asarray(agent.act(agent.nets, jnp.zeros((4096, 1)), jax.random.key(1)))
        assert q_value(after).mean() > q_value(before).mean() + 0.1 or gap > 0
        means[gap] = after.mean(axis=0)
    np.testing.assert_allclose(means[0.0], np.asarray(gaussian_problem.C), atol=0.08)
    # The std grows with a_0: pessimism (rho 0.5) shrinks a_0 from 0.5 to about 0.25.
    assert means[2.0][0] < means[0.0][0] - 0.15 and abs(means[2.0][1] - means[0.0][1]) < 0.08


def test_rlpd_trains_where_the_critics_agree_exactly():
    """Issue 16 item 11 (reports/investigations/rlpd-issue16/): RLPD with 2 critics stopped
    when one sampled action got two bit-identical Q values, because ``jnp.std``'s gradient at
    zero spread is NaN and reaches the actor through its actions. Here the two members agree
    on every action: every update meets that case, and the actor must still climb to c."""
    agent = make_agent(RLPD, RLPDConfig(chunk_len=1, rho=0.5), None, critic=TwoCritics(0.0, offset=0.0),
                       extra_nets={"actor": TanhGaussian(1, 2, (64, 64), key=jax.random.key(0)),
                                   "log_alpha": LogTemperature(jnp.log(0.05))})
    agent, metrics = fine_tune(agent, 400, net="actor", lr=3e-3)
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    after = np.asarray(agent.act(agent.nets, jnp.zeros((4096, 1)), jax.random.key(1)))
    np.testing.assert_allclose(after.mean(axis=0), np.asarray(gaussian_problem.C), atol=0.08)


def test_tanh_gaussian_log_prob_inverts_its_sampler():
    """Closed form: the log-probability of a sample, computed back from the action alone
    (atanh, the Gaussian density, the tanh Jacobian), is the one the sampler returned."""
    from trqam.nn import TanhGaussian

    head = TanhGaussian(4, 3, (16, 16), key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (8, 4))
    actions, log_probs = head.sample_batch(x, jax.random.key(2))
    np.testing.assert_allclose(jax.vmap(head.log_prob)(x, actions), log_probs, rtol=1e-4, atol=1e-4)


def test_rlpd_bc_term_is_the_qam_papers_per_domain_weight_and_pulls_towards_the_data():
    """Issue 30 item 1: RLPD's bc_alpha per domain (the authors' reproduce_rlpd.py), and its BC term's
    gradient raises the log-likelihood of the dataset chunk."""
    from bench.config.methods import METHODS
    from bench.config.profiles import get_profile
    from bench.tasks import resolve_task

    weights = {abbr: METHODS["rlpd"].make_config(get_profile("qam-paper").for_task(resolve_task(f"{abbr}-task1")),
                                                 resolve_task(f"{abbr}-task1")).bc_alpha
               for abbr in ("p33", "scene", "c2", "al", "hm", "c3", "c4", "p44", "ag", "hl")}
    assert weights == {"p33": 0.01, "scene": 0.3, "c2": 0.1, "al": 0.0, "hm": 0.03, "c3": 0.0, "c4": 0.0,
                       "p44": 0.0, "ag": 0.01, "hl": 0.0}
    data = data_batch()  # dataset actions drawn from the base N(mu, S), away from the critic's optimum c
    clipped = jnp.clip(data.actions, -1 + 1e-5, 1 - 1e-5)
    likelihood = {}
    for bc_alpha in (0.0, 1.0):
        actor = TanhGaussian(1, 2, (64, 64), key=jax.random.key(0))
        agent = make_agent(RLPD, RLPDConfig(chunk_len=1, rho=0.0, bc_alpha=bc_alpha), None,
                           extra_nets={"actor": actor, "log_alpha": LogTemperature(jnp.log(0.05))})
        agent, _ = fine_tune(agent, 300, net="actor", lr=3e-3, data=data)
        likelihood[bc_alpha] = float(jax.vmap(agent.nets["actor"].log_prob)(data.observations, clipped).mean())
    assert likelihood[1.0] > likelihood[0.0] + 0.5, likelihood
