"""Batched NumPy environments for the PyTorch peers: every env of a batch stepped in one call.

An expert PyTorch PPO does not step gymnasium envs one by one through ``SyncVectorEnv``: it uses
a vectorized env, as ppo_jax's gymnax envs are. gymnasium ships one for CartPole
(``CartPoleVectorEnv``, NumPy over the batch) and none for Pendulum, so:

- ``CartPole``: gymnasium's own ``CartPoleVectorEnv``, with its ``NEXT_STEP`` autoreset
  turned into a same-step one (a finished env is reset inside the step that finished it, its
  final observation returned beside the next episode's first), as ppo_jax's envs and the
  suite's ``SyncVectorEnv(autoreset_mode=SAME_STEP)`` do: no wasted transition after each
  episode, so env steps mean the same thing for every implementation;
- ``Pendulum``: gymnasium's ``PendulumEnv`` dynamics written over a batch (g = 10, 200-step time
  limit, reset uniform in [−π, π] × [−1, 1]); ``tests/test_benchmarks_common.py`` checks it
  step for step against ``gym.make("Pendulum-v1")``.

``step(action)`` returns ``(obs, reward, terminated, truncated, final_obs)``: ``final_obs`` is
``obs`` with the rows of finished envs replaced by their last observation.
"""

from __future__ import annotations

import numpy as np


class CartPole:
    """gymnasium's ``CartPoleVectorEnv`` with same-step autoreset."""

    discrete, obs_dim, action_dim = True, 4, 2

    def __init__(self, num_envs: int):
        from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

        self.env = CartPoleVectorEnv(num_envs=num_envs, max_episode_steps=500)

    def reset(self, seed: int) -> np.ndarray:
        return self.env.reset(seed=seed)[0]

    def step(self, action: np.ndarray):
        env = self.env
        obs, reward, term, trunc, _ = env.step(np.asarray(action, np.int64))
        done = term | trunc
        final = obs
        if done.any():
            # What CartPoleVectorEnv would do at the next call (its prev_done), done now.
            env.state[:, done] = env.np_random.uniform(env.low, env.high, size=(4, int(done.sum())))
            env.steps[done] = 0
            env.prev_done[:] = False
            obs = env.state.T.astype(np.float32)
        return obs, reward, term, trunc, final


class Pendulum:
    """Pendulum-v1 over a batch in NumPy (gymnasium's ``PendulumEnv`` dynamics, 200-step limit)."""

    discrete, obs_dim, action_dim = False, 3, 1
    low, high = np.array([-2.0], np.float32), np.array([2.0], np.float32)
    g, m, length, dt, max_speed, max_torque, max_steps = 10.0, 1.0, 1.0, 0.05, 8.0, 2.0, 200

    def __init__(self, num_envs: int):
        self.num_envs = num_envs
        self.rng = np.random.default_rng()
        self.state = np.zeros((2, num_envs))
        self.steps = np.zeros(num_envs, np.int64)

    def _obs(self) -> np.ndarray:
        th, thdot = self.state
        return np.stack([np.cos(th), np.sin(th), thdot], -1).astype(np.float32)

    def _draw(self, n: int) -> np.ndarray:
        return self.rng.uniform([-np.pi, -1.0], [np.pi, 1.0], size=(n, 2)).T

    def reset(self, seed: int) -> np.ndarray:
        self.rng = np.random.default_rng(seed)
        self.state = self._draw(self.num_envs)
        self.steps[:] = 0
        return self._obs()

    def step(self, action: np.ndarray):
        th, thdot = self.state
        u = np.clip(np.asarray(action, np.float64).reshape(self.num_envs), -self.max_torque, self.max_torque)
        normalized = ((th + np.pi) % (2 * np.pi)) - np.pi
        cost = normalized**2 + 0.1 * thdot**2 + 0.001 * u**2
        accel = 3 * self.g / (2 * self.length) * np.sin(th) + 3.0 / (self.m * self.length**2) * u
        thdot = np.clip(thdot + accel * self.dt, -self.max_speed, self.max_speed)
        self.state = np.stack([th + thdot * self.dt, thdot])
        self.steps += 1
        final = self._obs()
        trunc = self.steps >= self.max_steps
        term = np.zeros(self.num_envs, bool)
        obs = final
        if trunc.any():
            self.state[:, trunc] = self._draw(int(trunc.sum()))
            self.steps[trunc] = 0
            obs = self._obs()
        return obs, (-cost).astype(np.float32), term, trunc, final


ENVS = {"CartPole-v1": CartPole, "Pendulum-v1": Pendulum}


def make(env_id: str, num_envs: int):
    if env_id not in ENVS:
        raise SystemExit(f"benchmarks.vec_envs: no batched env for {env_id!r}; written: {', '.join(ENVS)}")
    return ENVS[env_id](num_envs)
