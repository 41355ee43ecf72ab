"""The closed-form problem of docs/ALGORITHMS.md section 5: the SOC tests check QAM and TRQAM
against it, and `bench.reporting.closed_form` draws the paper's claims on it where a CPU-sized
OGBench run is too short to show them.

Base policy N(mu, S) in 2-D, given by its exact affine flow velocity; critic
Q(a) = -1/2 (a - c)^T A (a - c). The tilted policy pi_base exp(beta Q) is Gaussian with
precision S^-1 + beta A, so its mean, covariance and KL to the base are known exactly.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from trqam.agent import Batch
from trqam.flow import euler_sample
from trqam.nn import MLP

MU = jnp.array([0.2, -0.1])
S = jnp.array([[0.09, 0.03], [0.03, 0.04]])
C = jnp.array([0.5, 0.3])
A = jnp.diag(jnp.array([4.0, 2.0]))
NUM_STEPS = 40  # Euler error is small enough at N = 40 (docs/ALGORITHMS.md s5)


class ExactBase(eqx.Module):
    """``v(x, t) = mu + (t S - (1 - t) I) C_t^{-1} (x - t mu)``, ``C_t = (1-t)^2 I + t^2 S``."""

    action_dim: int = eqx.field(static=True, default=2)

    def __call__(self, obs, x, t):
        c_t = (1 - t) ** 2 * jnp.eye(2) + t**2 * S
        return MU + (t * S - (1 - t) * jnp.eye(2)) @ jnp.linalg.solve(c_t, x - t * MU)


class Corrected(eqx.Module):
    """The fine-tuned field: the exact base plus a small MLP correction started at zero."""

    correction: MLP
    action_dim: int = eqx.field(static=True, default=2)

    def __call__(self, obs, x, t):
        return ExactBase()(obs, x, t) + self.correction(jnp.concatenate([x, jnp.reshape(t, (1,))]))


def initial_field(key) -> Corrected:
    mlp = MLP(3, 2, (64, 64), layer_norm=False, key=key)
    zero = (jnp.zeros_like(mlp.layers[-1].weight), jnp.zeros_like(mlp.layers[-1].bias))
    return Corrected(eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp, zero))


class QuadraticCritic(eqx.Module):
    """A one-member 'ensemble' ``Q(a) = -1/2 (a - c)^T A (a - c) + delta . a``."""

    delta: jax.Array = eqx.field(default_factory=lambda: jnp.zeros(2))

    def __call__(self, obs, action):
        return jnp.reshape(-0.5 * (action - C) @ A @ (action - C) + self.delta @ action, (1,))


def tilted(beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of N(mu, S) exp(beta Q)."""
    precision = jnp.linalg.inv(S) + beta * A
    cov = jnp.linalg.inv(precision)
    mean = cov @ (jnp.linalg.solve(S, MU) + beta * (A @ C))
    return np.asarray(mean), np.asarray(cov)


def gaussian_kl(m1, c1, m0, c0) -> float:
    """KL(N(m1, c1) || N(m0, c0))."""
    d = m1 - m0
    return float(0.5 * (np.trace(np.linalg.solve(c0, c1)) + d @ np.linalg.solve(c0, d) - len(m1)
                        + np.log(np.linalg.det(c0) / np.linalg.det(c1))))


def beta_for_kl(budget: float) -> float:
    """The beta at which KL(tilted || base) equals ``budget`` (bisection; KL grows with beta)."""
    lo, hi = 1e-4, 1e4
    for _ in range(200):
        mid = (lo * hi) ** 0.5
        m, c = tilted(mid)
        lo, hi = (mid, hi) if gaussian_kl(m, c, np.asarray(MU), np.asarray(S)) < budget else (lo, mid)
    return (lo * hi) ** 0.5


def batch(size: int = 256) -> Batch:
    """A batch with a dummy one-dimensional observation and h = 1 (only shapes matter)."""
    return Batch(jnp.zeros((size, 1)), jnp.zeros((size, 2)), jnp.zeros(size), jnp.ones(size),
                 jnp.zeros((size, 1)), jnp.ones((size, 1)))


@functools.cache
def _adam(lr: float) -> optax.GradientTransformation:
    """One optimizer object per learning rate, so `_actor_step` compiles once per agent structure."""
    return optax.adam(lr)


@eqx.filter_jit
def _actor_step(agent, opt_state, key, data: Batch, optimizer: optax.GradientTransformation, net: str):
    """One Adam step on ``agent.nets[net]`` by the agent's own actor loss, then its after-update hook."""
    inputs_key, loss_key = jax.random.split(key)
    inputs = agent.actor_inputs(data, inputs_key)

    def loss(trained):
        return agent.actor_loss({**agent.nets, net: trained}, data, inputs, loss_key)

    (_, metrics), grads = eqx.filter_value_and_grad(loss, has_aux=True)(agent.nets[net])
    updates, opt_state = optimizer.update(grads, opt_state)
    trained = eqx.apply_updates(agent.nets[net], updates)
    agent = eqx.tree_at(lambda a: a.nets[net], agent, trained)
    agent, metrics = agent.after_update(metrics)
    return agent, opt_state, metrics


def fine_tune(agent, steps: int, *, seed: int = 0, lr: float = 1e-3, net: str = "actor_fast", data: Batch | None = None,
              trace: list[dict[str, float]] | None = None, trace_every: int = 10):
    """Train only ``agent.nets[net]`` by the agent's own actor loss (its critic and base are exact).
    With ``trace``, appends the metrics of every ``trace_every``-th step to it. Agents that differ
    only in array values (a critic's ``delta``, initial weights) share one compiled step."""
    optimizer = _adam(lr)
    opt_state = optimizer.init(eqx.filter(agent.nets[net], eqx.is_array))
    data = batch() if data is None else data
    for i in range(steps):
        agent, opt_state, metrics = _actor_step(agent, opt_state, jax.random.fold_in(jax.random.key(seed), i), data,
                                                optimizer, net)
        if trace is not None and (i + 1) % trace_every == 0:
            trace.append({"step": i + 1, **{k: float(v) for k, v in metrics.items()}})
    return agent, metrics


def make_agent(cls, config, field, critic=None, extra_nets=None, extra_targets=None):
    """An agent whose base and critic are the exact ones of this problem."""
    critic = critic if critic is not None else QuadraticCritic()
    extra = cls.extra_fields(config)
    return cls(nets={"critic": critic, "actor_slow": ExactBase(), "actor_fast": field, **(extra_nets or {})},
               targets={"critic": critic, "actor_slow": ExactBase(), **(extra_targets or {})}, opt_state=None,
               config=config, **extra)


def data_batch(size: int = 256, seed: int = 3) -> Batch:
    """Like `batch`, with dataset actions drawn from the base N(mu, S)."""
    actions = jax.random.multivariate_normal(jax.random.key(seed), MU, S, (size,))
    return Batch(jnp.zeros((size, 1)), actions, jnp.zeros(size), jnp.ones(size), jnp.zeros((size, 1)),
                 jnp.ones((size, 1)))


def q_value(actions) -> np.ndarray:
    """The quadratic critic's Q of each action (no ``delta``)."""
    d = np.asarray(actions) - np.asarray(C)
    return -0.5 * np.einsum("bi,ij,bj->b", d, np.asarray(A), d)


def samples(field, n: int = 20000, seed: int = 99) -> np.ndarray:
    """ODE samples of a field from fixed noise."""
    noise = jax.random.normal(jax.random.key(seed), (n, 2))
    return np.asarray(euler_sample(field, jnp.zeros((n, 1)), noise, NUM_STEPS))


def reweighted_base(beta: float, n: int = 20000, seed: int = 99) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the discretised base sampler reweighted by exp(beta Q)."""
    x = samples(ExactBase(), n, seed)
    q = -0.5 * np.einsum("bi,ij,bj->b", x - np.asarray(C), np.asarray(A), x - np.asarray(C))
    w = np.exp(beta * (q - q.max()))
    w /= w.sum()
    mean = w @ x
    return mean, (w[:, None] * (x - mean)).T @ (x - mean)
