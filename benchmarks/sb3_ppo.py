"""Stable-Baselines3's PPO at the settings of a ppo_jax preset, timed.

    python -m benchmarks.sb3_ppo configs/cartpole.yaml --seed 0 [--device cpu] [--time-limit S]

Matched: envs × steps per rollout, epochs, minibatch size, learning rate
annealed linearly to 0, γ, λ, clip ε, value clip, c1, c2, gradient-norm clip,
target KL, advantage normalization, separate 64-64 actor and critic with the
preset's activation and orthogonal init, log std init; VecNormalize when the
preset normalizes observations or rewards. SB3's own choices stay (Adam eps
1e-5 is its default for PPO; its VecNormalize updates statistics every step).

Prints one JSON line in the format of benchmarks.torch_ppo.
"""

from __future__ import annotations

import resource
import time

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from benchmarks.common import agent_main
from benchmarks.torch_ppo import load_settings


class Recorder(BaseCallback):
    """Per rollout: seconds since start, env steps, episodes finished, their return sum."""

    def __init__(self, start: float, time_limit: float):
        super().__init__()
        self.start, self.time_limit = start, time_limit
        self.rollouts, self.count, self.return_sum = [], 0.0, 0.0
        self.stopped_by_limit = False

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:  # Monitor: the raw return of a finished episode
                self.count += 1
                self.return_sum += info["episode"]["r"]
        return True

    def _on_rollout_end(self) -> None:
        elapsed = time.perf_counter() - self.start
        self.rollouts.append([round(elapsed, 3), self.num_timesteps, self.count, self.return_sum])
        self.count = self.return_sum = 0.0
        # The update of this rollout still runs; the next rollout is refused.
        if elapsed > self.time_limit:
            self.stopped_by_limit = True

    def _on_rollout_start(self) -> None:
        if self.stopped_by_limit:
            raise _TimeUp


class _TimeUp(Exception):
    pass


def train(s: dict, seed: int, device: str, time_limit: float) -> dict:
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # import torch._dynamo untimed
    start = time.perf_counter()
    env = make_vec_env(s["env_id"], n_envs=s["num_envs"], seed=seed)
    if s["normalize_obs"] or s["normalize_reward"]:
        env = VecNormalize(env, norm_obs=s["normalize_obs"], norm_reward=s["normalize_reward"],
                           clip_obs=10.0, gamma=s["gamma"])
    lr = s["learning_rate"]
    batch_size = s["num_envs"] * s["num_steps"]
    model = PPO(
        "MlpPolicy", env,
        learning_rate=(lambda remaining: lr * remaining) if s["anneal_lr"] else lr,
        n_steps=s["num_steps"],
        batch_size=batch_size // s["num_minibatches"],
        n_epochs=s["update_epochs"],
        gamma=s["gamma"], gae_lambda=s["gae_lambda"],
        clip_range=s["clip_eps"], clip_range_vf=s["vf_clip"],
        normalize_advantage=s["normalize_advantages"],
        ent_coef=s["ent_coef"], vf_coef=s["vf_coef"], max_grad_norm=s["max_grad_norm"],
        target_kl=s["target_kl"],
        policy_kwargs=dict(
            net_arch=dict(pi=list(s["hidden_sizes"]), vf=list(s["hidden_sizes"])),
            activation_fn={"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[s["activation"]],
            ortho_init=True, log_std_init=s["log_std_init"],
        ),
        seed=seed, device=device, verbose=0,
    )
    budget = (s["total_timesteps"] // batch_size) * batch_size
    recorder = Recorder(start, time_limit)
    try:
        model.learn(total_timesteps=budget, callback=recorder)
    except _TimeUp:
        pass
    seconds = time.perf_counter() - start
    env_steps = recorder.rollouts[-1][1] if recorder.rollouts else 0
    return {
        "implementation": "sb3",
        "env_id": s["env_id"],
        "seed": seed,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "env_steps": env_steps,
        "budget_env_steps": budget,
        "seconds": round(seconds, 3),
        "steps_per_second": round(env_steps / seconds),
        "stopped_by_time_limit": recorder.stopped_by_limit and env_steps < budget,
        "rollouts": recorder.rollouts,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    agent_main(__doc__, train, load_settings)


if __name__ == "__main__":
    main()
