"""FLOPs of a compiled program, and the machine's matmul ceiling.

XLA's cost analysis (`compiled.cost_analysis()["flops"]`) counts the body of a loop once,
whatever its trip count, so for an update with Euler steps and SDE rollouts inside
`lax.scan` it is a lower bound. `jaxpr_flops` walks the program's jaxpr instead and
multiplies every scan body by its length: matrix products count 2*M*N*K, arithmetic
elementwise operations one per output element, data movement (gathers, reshapes,
broadcasts, copies) nothing. With ``loops_once=True`` it counts loop bodies once, as
XLA does; the two then agree closely, which is how the count is checked.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

# Primitives that move or select data: no floating-point work.
MOVEMENT = {
    "broadcast_in_dim", "reshape", "squeeze", "expand_dims", "transpose", "slice", "dynamic_slice",
    "dynamic_update_slice", "gather", "scatter", "concatenate", "pad", "convert_element_type", "copy",
    "copy_p", "iota", "select_n", "rev", "bitcast_convert_type", "stop_gradient", "random_bits",
    "random_seed", "random_wrap", "random_unwrap", "random_fold_in", "random_split", "threefry2x32",
    "shift_right_logical", "shift_left", "or", "and", "xor", "not", "eq", "ne", "lt", "le", "gt", "ge",
    "argmax", "argmin", "sort", "device_put", "split", "clamp",
}
# Transcendental and other elementwise ops count one FLOP per output element, as XLA does.


def _size(aval) -> int:
    return int(math.prod(getattr(aval, "shape", ())))


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        values = value if isinstance(value, tuple | list) else (value,)
        for v in values:
            if isinstance(v, jax.extend.core.ClosedJaxpr):
                yield v.jaxpr
            elif isinstance(v, jax.extend.core.Jaxpr):
                yield v


def jaxpr_flops(jaxpr, *, loops_once: bool = False) -> float:
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval
            contracted = math.prod(lhs.shape[d] for d in lhs_contract)
            total += 2.0 * _size(eqn.outvars[0].aval) * contracted
        elif name == "scan":
            body = jaxpr_flops(eqn.params["jaxpr"].jaxpr, loops_once=loops_once)
            total += body * (1 if loops_once else eqn.params["length"])
        elif name == "while":
            total += jaxpr_flops(eqn.params["body_jaxpr"].jaxpr, loops_once=loops_once)  # trip count unknown: once
        elif name == "cond":
            total += max(jaxpr_flops(b.jaxpr, loops_once=loops_once) for b in eqn.params["branches"])
        elif any(True for _ in _sub_jaxprs(eqn)):  # pjit, custom_jvp/vjp calls, remat: their inner program
            total += sum(jaxpr_flops(j, loops_once=loops_once) for j in _sub_jaxprs(eqn))
        elif name.startswith("reduce_") or name in ("cumsum", "cummax", "cumlogsumexp", "argmax"):
            total += sum(_size(v.aval) for v in eqn.invars)
        elif name not in MOVEMENT:
            total += sum(_size(v.aval) for v in eqn.outvars)
    return total


def program_flops(fn, *args, loops_once: bool = False) -> float:
    """FLOPs of ``fn(*args)`` (a jittable function of arrays)."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr, loops_once=loops_once)


def xla_flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))


def matmul_ceiling(sizes=(512, 1024, 2048), repeats: int = 5) -> dict[str, float]:
    """The best float32 matmul rate of this device (FLOP/s) over square sizes ``sizes``, each
    timed as a chain of products inside one program (no host round trips)."""
    best, by_size = 0.0, {}
    for n in sizes:
        chain = max(1, int(4e10 // (2 * n**3)))  # ~40 GFLOP per call

        @jax.jit
        def products(a, b, chain=chain, scale=1.0 / n):
            return jax.lax.fori_loop(0, chain, lambda _, x: (x @ b) * scale, a)

        a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
        products(a, a).block_until_ready()
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            products(a, a).block_until_ready()
            times.append(time.perf_counter() - began)
        rate = 2.0 * n**3 * chain / min(times)
        by_size[n] = rate
        best = max(best, rate)
    return {"flop_per_s": best, **{f"n{n}": r for n, r in by_size.items()}}
