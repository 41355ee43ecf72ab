"""Stochastic optimal control over flow policies: the pieces QAM, BAM and TRQAM share.

docs/ALGORITHMS.md sections 2-3. With N flow steps, ``dt = 1/N``, shifted times ``t_k = k/N``
and the memoryless noise schedule ``g_k = sqrt(2 (1 - t_k + dt) / (t_k + dt))``:

* `memoryless_rollout`: the forward SDE
  ``x_{k+1} = x_k + dt (2 v_ft(x_k, t_k) - x_k / (t_k + dt)) + sqrt(dt) g_k eps_k``
  for k < N-1, then one deterministic base ODE step to ``x_N``.
* `lean_adjoint`: ``adj_k = adj_{k+1} + dt J_k^T adj_{k+1}`` backwards, ``J_k`` the
  Jacobian in x of ``2 v_base(x, t_k + dt) - x / (t_k + dt)`` at ``x_k``.
* `adjoint_matching_loss`: ``sum_k || 2 dv_k / sigma_k + sigma_k adj_k ||^2``.
* `path_kl`: the Girsanov estimator ``mean_B sum_k (2 dt / g_k^2) ||dv_k||^2 / h``.

A velocity field is any ``field(obs, x, t) -> velocity`` on single examples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

Field = Callable[[Array, Array, Array], Array]


def time_grid(num_steps: int) -> tuple[Float[Array, " N"], Float[Array, " N"]]:
    """Shifted times ``t_k = k/N`` and noise scales ``g_k`` for k = 0..N-1."""
    dt = 1.0 / num_steps
    t = jnp.arange(num_steps, dtype=jnp.float32) * dt
    g = jnp.sqrt(2.0 * (1.0 - t + dt) / (t + dt))
    return t, g


def _batched(field: Field) -> Callable:
    return jax.vmap(field, in_axes=(0, 0, None))


class Rollout(NamedTuple):
    states: Float[Array, "N B D"]  # x_0 .. x_{N-1}: where the loss is evaluated
    final: Float[Array, "B D"]  # x_N, the action before clipping


def memoryless_rollout(
    v_ft: Field, v_base: Field, obs: Float[Array, "B O"], x0: Float[Array, "B D"], num_steps: int, key: PRNGKeyArray
) -> Rollout:
    """Sample the fine-tuned memoryless SDE from ``x0``.

    Differentiable (BAM backpropagates through it); adjoint matching wraps the result in
    `jax.lax.stop_gradient`, since ``x_k`` carries no gradient there.
    """
    dt = 1.0 / num_steps
    ts, gs = time_grid(num_steps)
    noise = jax.random.normal(key, (num_steps - 1, *x0.shape))
    ft, base = _batched(v_ft), _batched(v_base)

    def sde_step(x, inputs):
        t, g, eps = inputs
        x_next = x + dt * (2.0 * ft(obs, x, t) - x / (t + dt)) + jnp.sqrt(dt) * g * eps
        return x_next, x

    x_last, earlier = jax.lax.scan(sde_step, x0, (ts[:-1], gs[:-1], noise))
    final = x_last + dt * base(obs, x_last, ts[-1])
    states = jnp.concatenate([earlier, x_last[None]], axis=0)
    return Rollout(states, final)


def lean_adjoint(
    v_base: Field, obs: Float[Array, "B O"], states: Float[Array, "N B D"], terminal: Float[Array, "B D"], num_steps: int
) -> Float[Array, "N B D"]:
    """``adj_k`` for k = 0..N-1 from ``adj_N = terminal``, integrating backwards."""
    dt = 1.0 / num_steps
    ts, _ = time_grid(num_steps)
    base = _batched(v_base)

    def back_step(adj, inputs):
        x, t = inputs

        def drift(y):
            return 2.0 * base(obs, y, t + dt) - y / (t + dt)

        _, vjp = jax.vjp(drift, x)
        adj = adj + dt * vjp(adj)[0]
        return adj, adj

    _, adjoints = jax.lax.scan(back_step, terminal, (states, ts), reverse=True)
    return jax.lax.stop_gradient(adjoints)


def control_gap(
    v_ft: Field, v_base: Field, obs: Float[Array, "B O"], states: Float[Array, "N B D"], num_steps: int
) -> Float[Array, "N B D"]:
    """``dv_k = v_ft(x_k, t_k) - v_base(x_k, t_k)``; gradient flows into ``v_ft`` only.

    Both fields see the N x B states as one batch of N*B rows (``s`` repeated per step, ``t_k``
    per row): the same values as mapping over the steps, and about 15% faster for TRQAM's whole
    update at the quick size (issue 32; `benchmarks/test_authors.py`).
    """
    ts, _ = time_grid(num_steps)
    n, b = states.shape[:2]
    rows = (jnp.broadcast_to(obs, (n, *obs.shape)).reshape(n * b, -1),  # [N*B, O]
            states.reshape(n * b, -1),  # [N*B, D]
            jnp.repeat(ts, b))  # [N*B]
    dv = jax.vmap(v_ft)(*rows) - jax.lax.stop_gradient(jax.vmap(v_base)(*rows))
    return dv.reshape(states.shape)


def adjoint_matching_loss(
    dv: Float[Array, "N B D"], adjoints: Float[Array, "N B D"], sigma: Float[Array, " N"]
) -> Float[Array, ""]:
    """``sum_k || 2 dv_k / sigma_k + sigma_k adj_k ||^2``, summed over dims, mean over batch."""
    s = sigma[:, None, None]
    residual = 2.0 * dv / s + s * adjoints
    return jnp.mean(jnp.sum(residual**2, axis=(0, 2)))


def path_kl(dv: Float[Array, "N B D"], num_steps: int, chunk_len: int) -> Float[Array, ""]:
    """Girsanov estimate of KL(fine-tuned path || base path), per action step (Theorem 1)."""
    dt = 1.0 / num_steps
    _, g = time_grid(num_steps)
    per_step = (2.0 * dt / g[:, None] ** 2) * jnp.sum(dv**2, axis=-1)  # [N, B]
    return jnp.mean(jnp.sum(per_step, axis=0)) / chunk_len
