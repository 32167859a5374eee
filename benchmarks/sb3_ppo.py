"""Stable-Baselines3's PPO at the settings of a ppo_jax preset, timed.

    python -m benchmarks.sb3_ppo configs/cartpole.yaml --seed 0 [--device cpu] [--time-limit S]

Matched: envs × steps per rollout, epochs, minibatch size, γ, λ, clip ε, value
clip, c2, gradient-norm clip, target KL, advantage normalization, separate
actor and critic MLPs with the preset's sizes, activation and orthogonal init,
log std init, Adam eps 1e-5 (SB3's default for PPO), and VecNormalize when the
preset normalizes observations or rewards. Two settings are translated so
that the same number means the same thing:

- value loss: SB3's is a plain mean squared error, ppo_jax's is ½·MSE, so SB3
  gets ``vf_coef / 2``;
- learning-rate annealing: SB3 evaluates its schedule after each rollout has
  been counted (progress remaining = 1 − (k+1)/N at update k), which would
  anneal one update ahead of ppo_jax's lr·(1 − k/N) and take the last update
  at lr 0; the schedule passed adds back 1/N, so update k uses lr·(1 − k/N);
- reward clip: VecNormalize's ``clip_reward`` gets the preset's ``reward_clip``
  (ppo_jax's default 10, which is also VecNormalize's; ``null``: no clip).

What stays different (SB3's own choices; they affect learning, not speed):

- VecNormalize updates its observation and return statistics at every env
  step and normalizes each step with them; ppo_jax freezes them during a
  rollout and merges the rollout's data afterwards;
- advantage normalization divides by the unbiased std (torch's default),
  ppo_jax by the population std (a factor √(n/(n−1)), 1.0005 at 512 rows);
- target KL: SB3 stops an epoch *before* the step whose approximate KL
  exceeds 1.5 × target_kl; ppo_jax takes that step and stops after it, at
  1 × target_kl;
- SB3 takes one env step per policy call through its VecEnv and Monitor
  wrappers (Python per step), as ``torch_ppo.py`` does through gymnasium.

Prints one JSON line in the format of benchmarks.torch_ppo. ``sbx_ppo.py``
runs the same function with sbx's PPO (its JAX port).
"""

from __future__ import annotations

import contextlib
import resource
import time

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from benchmarks.common import agent_main, cpu_seconds, reach
from benchmarks.torch_ppo import load_settings


class Recorder(BaseCallback):
    """Per rollout: seconds since start, env steps, episodes finished, their return sum."""

    def __init__(self, start: float, time_limit: float, stop_at=None):
        super().__init__()
        self.start, self.time_limit, self.stop_at = start, time_limit, stop_at
        self.reached = False
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
        if self.stop_at is not None and reach(self.rollouts, self.stop_at):
            self.reached = True

    def _on_rollout_start(self) -> None:
        if self.stopped_by_limit or self.reached:
            raise _TimeUp


class _TimeUp(Exception):
    pass


def matched_kwargs(s: dict) -> dict:
    """PPO's keyword arguments for SB3 (and sbx, which takes the same names) at
    the preset's settings, translated where SB3 means something else (above)."""
    lr = s["learning_rate"]
    batch_size = s["num_envs"] * s["num_steps"]
    num_updates = s["total_timesteps"] // batch_size
    return dict(
        learning_rate=(lambda remaining: lr * (remaining + 1.0 / num_updates)) if s["anneal_lr"] else lr,
        n_steps=s["num_steps"],
        batch_size=batch_size // s["num_minibatches"],
        n_epochs=s["update_epochs"],
        gamma=s["gamma"],
        gae_lambda=s["gae_lambda"],
        clip_range=s["clip_eps"],
        clip_range_vf=s["vf_clip"],
        normalize_advantage=s["normalize_advantages"],
        ent_coef=s["ent_coef"],
        vf_coef=s["vf_coef"] / 2,
        max_grad_norm=s["max_grad_norm"],
        target_kl=s["target_kl"],
    )


def make_env(s: dict, seed: int):
    env = make_vec_env(s["env_id"], n_envs=s["num_envs"], seed=seed)
    if s["normalize_obs"] or s["normalize_reward"]:
        clip = s["reward_clip"]
        env = VecNormalize(
            env,
            norm_obs=s["normalize_obs"],
            norm_reward=s["normalize_reward"],
            clip_obs=10.0,
            clip_reward=float("inf") if clip is None else float(clip),
            gamma=s["gamma"],
        )
    return env


def train(s: dict, seed: int, device: str, time_limit: float, stop_at=None) -> dict:
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # import torch._dynamo untimed
    start, cpu0 = time.perf_counter(), cpu_seconds()
    env = make_env(s, seed)
    model = PPO(
        "MlpPolicy",
        env,
        **matched_kwargs(s),
        policy_kwargs=dict(
            net_arch=dict(pi=list(s["hidden_sizes"]), vf=list(s["hidden_sizes"])),
            activation_fn={"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[s["activation"]],
            ortho_init=True,
            log_std_init=s["log_std_init"],
        ),
        seed=seed,
        device=device,
        verbose=0,
    )
    return learn(model, s, seed, device, (start, cpu0), time_limit, "sb3", stop_at)


def learn(model, s: dict, seed: int, device: str, start, time_limit: float, name: str, stop_at=None) -> dict:
    """Train ``model`` for the preset's budget (or until the time limit, or until it
    reached ``stop_at``); the JSON result. ``start``: (perf_counter, CPU seconds) at the start."""
    start, cpu0 = start
    batch_size = s["num_envs"] * s["num_steps"]
    budget = (s["total_timesteps"] // batch_size) * batch_size
    recorder = Recorder(start, time_limit, stop_at)
    with contextlib.suppress(_TimeUp):
        model.learn(total_timesteps=budget, callback=recorder)
    seconds = time.perf_counter() - start
    env_steps = recorder.rollouts[-1][1] if recorder.rollouts else 0
    return {
        "implementation": name,
        "env_id": s["env_id"],
        "seed": seed,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "env_steps": env_steps,
        "budget_env_steps": budget,
        "seconds": round(seconds, 3),
        "steps_per_second": round(env_steps / seconds),
        "settings": {**s, **{k: repr(v) for k, v in matched_kwargs(s).items()}},
        "cpu_over_wall": round((cpu_seconds() - cpu0) / seconds, 3),
        "stopped_by_time_limit": recorder.stopped_by_limit and env_steps < budget,
        "stopped_at_threshold": recorder.reached,
        "rollouts": recorder.rollouts,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    agent_main(__doc__, train, load_settings)


if __name__ == "__main__":
    main()
