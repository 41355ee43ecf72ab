"""Tests of the evaluation harness on a real OGBench environment (cube-single, 200 steps)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle

from bench.errors import BenchError
from bench.training.evaluation import EvalResult, Evaluator, episode_seed, evaluate

TASK = "cube-single-play-singletask-task1-v0"
LIMIT = 200  # the cube-single episode limit
OBS_DIM = 28
ACTION_DIM = 5
NUM_ENVS = 3

pytestmark = pytest.mark.filterwarnings("ignore:.*precision lowered:UserWarning")


@pytest.fixture(scope="module")
def evaluator():
    with Evaluator(TASK, num_envs=NUM_ENVS) as ev:
        yield ev


def random_policy(h: int):
    """A jitted policy of uniform random actions, flat chunks ``[B, h * action_dim]``."""

    @jax.jit
    def policy(observations, key):
        return jax.random.uniform(key, (observations.shape[0], h * ACTION_DIM), minval=-1, maxval=1)

    return policy


class OraclePolicy:
    """Drives one of ogbench's scripted cube oracles per slot through the harness.

    An oracle is closed loop and cannot see future states, so its chunk is its current
    action repeated h times (exact oracle control for h = 1). The singletask environment
    does not report the target of the cube, so it is added to the info from the task.
    """

    def __init__(self, envs, h: int, oracle_cls=CubeMarkovOracle) -> None:
        self.envs = envs
        self.h = h
        self.oracles = [oracle_cls(env=env) for env in envs]
        self.rows: list[tuple[int, dict]] = []
        self.batch_shapes: set[tuple[int, ...]] = set()
        self.rows_used = 0

    def _with_target(self, slot: int, info) -> dict:
        goal = self.envs[slot].unwrapped.cur_task_info["goal_xyzs"][0]
        return {
            **info,
            "privileged/target_block": 0,
            "privileged/target_block_pos": goal,
            "privileged/target_block_yaw": np.zeros(1),
        }

    def reset(self, slot, observation, info) -> None:
        self.oracles[slot].reset(observation, self._with_target(slot, info))

    def observe(self, slots, infos) -> None:
        self.rows = list(zip(slots, infos, strict=True))
        self.rows_used += len(slots)

    def __call__(self, observations, key):
        self.batch_shapes.add(observations.shape)
        chunks = np.zeros((len(observations), self.h, ACTION_DIM), np.float32)
        for row, (slot, info) in enumerate(self.rows):
            action = self.oracles[slot].select_action(
                observations[row], self._with_target(slot, info)
            )
            chunks[row] = action
        return chunks


@pytest.mark.slow
def test_oracle_solves_the_task_through_the_harness(evaluator):
    np.random.seed(0)  # the oracles sample from numpy's global generator
    oracle = OraclePolicy(evaluator.envs, h=1)
    result = evaluator.evaluate(oracle, num_episodes=10, seed=0, chunk_len=1)
    assert result.success_rate >= 0.9
    # Success ends a singletask episode early, so episodes end at different times ...
    assert np.all(result.length[result.success] < LIMIT)
    assert len(set(result.length.tolist())) > 1
    # ... yet the policy always sees the same batch shape.
    assert oracle.batch_shapes == {(NUM_ENVS, OBS_DIM)}
    # h = 1: one row per environment step, several slots per call.
    assert oracle.rows_used == result.env_steps
    assert result.policy_calls < result.env_steps


@pytest.mark.slow
def test_oracle_with_open_loop_chunks(evaluator):
    h = 5
    np.random.seed(0)
    # The plan oracle tracks a time-indexed plan, which tolerates repeated actions
    # better than the Markov oracle (about half the episodes succeed, seeds 0-2).
    oracle = OraclePolicy(evaluator.envs, h=h, oracle_cls=CubePlanOracle)
    result = evaluator.evaluate(oracle, num_episodes=6, seed=0, chunk_len=h)
    assert result.success.any()
    assert np.all(result.length[result.success] < LIMIT)
    # One chunk per 5 steps, the last one cut short when the episode ends.
    assert oracle.rows_used == sum(math.ceil(n / h) for n in result.length)


def test_random_policy_fails_and_hits_the_time_limit(evaluator):
    result = evaluator.evaluate(random_policy(5), num_episodes=4, seed=0, chunk_len=5)
    assert isinstance(result, EvalResult)
    assert result.success_rate == 0.0
    assert not result.success.any()
    np.testing.assert_array_equal(result.length, LIMIT)
    # cube-single's reward is -1 per step while the cube is off its target.
    np.testing.assert_array_equal(result.episode_return, -result.length)
    assert result.env_steps == 4 * LIMIT
    assert result.policy_seconds > 0 and result.env_seconds > 0


def test_jitted_policy_is_traced_once(evaluator):
    traces = 0

    @jax.jit
    def mlp(observations, key):
        nonlocal traces
        traces += 1  # runs only while tracing
        w = jax.random.normal(jax.random.PRNGKey(0), (OBS_DIM, 5 * ACTION_DIM)) * 0.1
        return jnp.tanh(observations @ w) + 0 * jax.random.uniform(key)

    # 5 episodes on 3 envs leave one slot idle in the second round; a 1-episode
    # evaluation leaves two idle from the start. The batch shape stays [3, obs_dim].
    evaluator.evaluate(mlp, num_episodes=5, seed=0, chunk_len=5)
    evaluator.evaluate(mlp, num_episodes=1, seed=1, chunk_len=5)
    assert traces == 1


def test_chunks_are_executed_open_loop(evaluator):
    calls = []

    def policy(observations, key):
        calls.append(observations.shape)
        return np.zeros((observations.shape[0], 5, ACTION_DIM))

    batched = evaluator.evaluate(policy, num_episodes=NUM_ENVS, seed=0, chunk_len=5)
    assert len(calls) == math.ceil(LIMIT / 5)  # all slots share each call
    assert batched.policy_calls == len(calls)

    calls.clear()
    single = evaluator.evaluate(policy, num_episodes=2, seed=0, chunk_len=5, batched=False)
    assert len(calls) == 2 * math.ceil(LIMIT / 5)
    assert set(calls) == {(1, OBS_DIM)}
    assert single.env_steps == 2 * LIMIT


def test_same_seed_same_results(evaluator):
    def run(seed: int) -> tuple[EvalResult, list[np.ndarray]]:
        starts: list[np.ndarray] = []

        class Recorder:
            def reset(self, slot, observation, info):
                starts.append(observation.copy())

            def __call__(self, observations, key):
                return jax.random.uniform(key, (observations.shape[0], 5 * ACTION_DIM), minval=-1)

        return evaluator.evaluate(Recorder(), num_episodes=4, seed=seed, chunk_len=5), starts

    (a, starts_a), (b, starts_b), (_, starts_c) = run(3), run(3), run(4)
    np.testing.assert_array_equal(np.stack(starts_a), np.stack(starts_b))
    assert a.to_dict().keys() == b.to_dict().keys()
    np.testing.assert_array_equal(a.episode_return, b.episode_return)
    assert not np.array_equal(np.stack(starts_a), np.stack(starts_c))
    assert len({episode_seed(3, i) for i in range(100)}) == 100


def test_wrong_chunk_shape_is_a_user_error(evaluator):
    with pytest.raises(BenchError, match="chunk_len=5"):
        evaluator.evaluate(random_policy(4), num_episodes=1, chunk_len=5)


def test_unknown_task_is_a_user_error():
    with pytest.raises(BenchError, match="unknown task"):
        evaluate("cube-sextuple-play-singletask-task1-v0", random_policy(5), num_episodes=1)


def test_result_to_dict_is_plain_numbers():
    result = EvalResult(
        success=np.array([True, False]),
        length=np.array([10, 200]),
        episode_return=np.array([-5.0, -200.0]),
        policy_calls=42,
        policy_seconds=0.5,
        env_seconds=1.5,
        wall_seconds=2.1,
    )
    d = result.to_dict()
    assert d["success_rate"] == 0.5
    assert d["env_steps"] == 210
    assert d["mean_return"] == -102.5
    assert all(type(v) in (int, float) for v in d.values())
