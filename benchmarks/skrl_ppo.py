"""skrl's PPO (a third-party PyTorch PPO, from PyPI) at its own defaults, timed.

    python -m benchmarks.skrl_ppo configs/cartpole.yaml --seed 0 [--device cpu] [--time-limit S]

From the preset only what every implementation shares: the env, the number of envs, the
env-step budget and the networks' sizes and activation (separate policy and value MLPs, as
ppo_jax's). Everything PPO decides is skrl's ``PPO_CFG`` default, untouched (skrl 2.1: 16
rollout steps per env, 8 epochs × 2 minibatches, lr 1e-3 constant, clip 0.2, value clip 0.2,
value-loss scale 2.5, no entropy bonus, no bootstrap at truncation, global-norm clip 0.5), and
so are its Gaussian policy's log-std and its env handling: the envs are
``gymnasium.make_vec(env_id, num_envs)`` (CartPole: gymnasium's ``CartPoleVectorEnv``; Pendulum:
``SyncVectorEnv``), wrapped by ``skrl.envs.wrappers.torch.wrap_env``, trained by skrl's
``SequentialTrainer``. skrl steps them with gymnasium's next-step autoreset, as it is built to:
the step after an episode's end is a reset step, and it counts as env steps here as it does
for skrl. This is the comparison "a PyTorch PPO as its authors ship it", not the same
algorithm at the same settings (that is ``torch_ppo.py``).

Prints one JSON line in the format of ``benchmarks.torch_ppo``; rollouts are skrl's (16 steps
× num_envs).
"""

from __future__ import annotations

import contextlib
import resource
import time

import gymnasium
import numpy as np
import torch
from torch import nn

from benchmarks.common import agent_main, cpu_seconds, reach
from benchmarks.torch_ppo import load_settings


class _Recorder(gymnasium.vector.VectorWrapper):
    """Wraps a gymnasium vector env: finished episodes' raw returns, and every
    ``every`` steps a row (seconds since start, env steps, episodes, return sum)."""

    def __init__(self, env, start: float, every: int, time_limit: float, stop_at=None):
        super().__init__(env)
        self.start, self.every, self.time_limit, self.stop_at = start, every, time_limit, stop_at
        self.reached = False
        self.returns = np.zeros(env.num_envs)
        self.rows, self.steps, self.count, self.total = [], 0, 0.0, 0.0
        self.stopped_by_limit = False

    def step(self, action):
        if self.stopped_by_limit or self.reached:
            raise _TimeUp
        out = self.env.step(action)
        _, reward, term, trunc, _ = out
        done = np.asarray(term) | np.asarray(trunc)
        self.returns += reward
        self.count += done.sum()
        self.total += self.returns[done].sum()
        self.returns[done] = 0.0
        self.steps += self.env.num_envs
        if self.steps % (self.every * self.env.num_envs) == 0:
            elapsed = time.perf_counter() - self.start
            self.rows.append([round(elapsed, 3), self.steps, float(self.count), float(self.total)])
            self.count = self.total = 0.0
            # skrl updates after this step; the next step is refused
            self.stopped_by_limit = elapsed > self.time_limit
            self.reached = self.stop_at is not None and reach(self.rows, self.stop_at) is not None
        return out


class _TimeUp(Exception):
    pass


def _mlp(sizes, activation, out):
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], out))


def _models(env, s: dict, device: str) -> dict:
    """skrl's own model classes (its mixins), with the preset's MLP sizes."""
    from skrl.models.torch import CategoricalMixin, DeterministicMixin, GaussianMixin, Model

    sizes = [env.observation_space.shape[0]] + list(s["hidden_sizes"])
    discrete = isinstance(env.action_space, gymnasium.spaces.Discrete)
    n_out = env.action_space.n if discrete else env.action_space.shape[0]

    class Policy(CategoricalMixin if discrete else GaussianMixin, Model):
        def __init__(self):
            Model.__init__(
                self, observation_space=env.observation_space, action_space=env.action_space, device=device
            )
            (CategoricalMixin if discrete else GaussianMixin).__init__(self)
            self.net = _mlp(sizes, s["activation"], n_out)
            if not discrete:
                self.log_std_parameter = nn.Parameter(torch.zeros(n_out))

        def compute(self, inputs, role=""):
            out = self.net(inputs["observations"])
            return out, ({} if discrete else {"log_std": self.log_std_parameter})

    class Value(DeterministicMixin, Model):
        def __init__(self):
            Model.__init__(
                self, observation_space=env.observation_space, action_space=env.action_space, device=device
            )
            DeterministicMixin.__init__(self)
            self.net = _mlp(sizes, s["activation"], 1)

        def compute(self, inputs, role=""):
            return self.net(inputs["observations"]), {}

    return {"policy": Policy().to(device), "value": Value().to(device)}


def train(s: dict, seed: int, device: str, time_limit: float, stop_at=None) -> dict:
    from skrl.agents.torch.ppo import PPO, PPO_CFG
    from skrl.envs.wrappers.torch import wrap_env
    from skrl.memories.torch import RandomMemory
    from skrl.trainers.torch import SequentialTrainer
    from skrl.utils import set_seed

    torch.optim.Adam([nn.Parameter(torch.zeros(1))])  # import torch._dynamo untimed
    cfg = PPO_CFG()
    cfg.experiment.write_interval = 0  # no TensorBoard files, no checkpoints: not part of PPO's time
    cfg.experiment.checkpoint_interval = 0
    start, cpu0 = time.perf_counter(), cpu_seconds()
    set_seed(seed)
    recorder = _Recorder(
        gymnasium.make_vec(s["env_id"], num_envs=s["num_envs"]), start, cfg.rollouts, time_limit, stop_at
    )
    env = wrap_env(recorder, wrapper="gymnasium")
    memory = RandomMemory(memory_size=cfg.rollouts, num_envs=env.num_envs, device=device)
    agent = PPO(
        models=_models(env, s, device),
        memory=memory,
        observation_space=env.observation_space,
        action_space=env.action_space,
        device=device,
        cfg=cfg,
    )
    timesteps = s["total_timesteps"] // s["num_envs"]
    trainer = SequentialTrainer(
        env=env, agents=agent, cfg={"timesteps": timesteps, "headless": True, "disable_progressbar": True}
    )
    with contextlib.suppress(_TimeUp):
        trainer.train()
    seconds = time.perf_counter() - start
    env_steps = recorder.rows[-1][1] if recorder.rows else 0
    return {
        "implementation": "skrl",
        "env_id": s["env_id"],
        "seed": seed,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "settings": {
            "env_id": s["env_id"],
            "num_envs": s["num_envs"],
            "total_timesteps": timesteps * s["num_envs"],
            "hidden_sizes": s["hidden_sizes"],
            "activation": s["activation"],
            "skrl_ppo_cfg": {k: repr(v) for k, v in vars(cfg).items() if k != "experiment"},
        },
        "env_steps": env_steps,
        "budget_env_steps": timesteps * s["num_envs"],
        "seconds": round(seconds, 3),
        "steps_per_second": round(env_steps / seconds) if seconds else None,
        "cpu_over_wall": round((cpu_seconds() - cpu0) / seconds, 3),
        "stopped_by_time_limit": recorder.stopped_by_limit and env_steps < timesteps * s["num_envs"],
        "stopped_at_threshold": recorder.reached,
        "rollouts": recorder.rows,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    agent_main(__doc__, train, load_settings)


if __name__ == "__main__":
    main()
