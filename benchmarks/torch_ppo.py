"""PPO in PyTorch on gymnasium vector envs: the same algorithm as ppo_jax.

    python -m benchmarks.torch_ppo configs/cartpole.yaml --seed 0 [--device cpu|cuda] [--time-limit S]

Reads a ppo_jax preset (YAML) and trains one agent with the same math:
separate actor and critic MLPs (orthogonal init, gain √2 hidden, 0.01 policy
head, 1 value head, zero biases); a Categorical head, or a Gaussian with a
learned state-independent log std whose sample is clipped for the env only;
observation normalization (statistics frozen during a rollout, merged after)
and reward scaling by the std of discounted returns, clipped to ±reward_clip,
when the preset says so;
GAE with terminations apart from truncations, a truncated step bootstrapped
from the value of its final observation; epochs of shuffled minibatches,
per-minibatch advantage normalization, clipped surrogate + c1·value − c2·entropy,
global-norm gradient clipping, Adam (eps 1e-5), learning rate annealed
linearly to 0 over the budget.

Written for speed as a PyTorch user would: one forward of actor and critic per
env step, sampling and log-densities written out (no ``torch.distributions``
objects or their argument checks), GAE in numpy, gradients set to None,
foreach gradient clipping; ``--compile`` wraps the
minibatch step (loss + backward, and clip + Adam) in ``torch.compile``. The
suite runs both and reports which pays. ``--device cuda`` runs the networks
on a GPU (the envs stay gymnasium's, on the CPU).

Prints one JSON line: steps/s and, per rollout, (seconds since start, env
steps, episodes finished, their return sum), so that "reached" is computed by
benchmarks.common.reach for every implementation alike.
"""

from __future__ import annotations

import math
import resource
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from benchmarks.common import agent_main

DEFAULTS = dict(
    total_timesteps=500_000,
    num_envs=4,
    num_steps=128,
    update_epochs=4,
    num_minibatches=4,
    hidden_sizes=[64, 64],
    activation="tanh",
    shared_torso=False,
    log_std_init=0.0,
    normalize_obs=False,
    normalize_reward=False,
    normalize_advantages=True,
    anneal_lr=True,
    learning_rate=2.5e-4,
    clip_eps=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    gamma=0.99,
    gae_lambda=0.95,
    max_grad_norm=0.5,
    vf_clip=None,
    target_kl=None,
    network="mlp",
    reward_clip=10.0,  # ppo_jax's default: scaled rewards clipped to ±10 under normalize_reward (null: off)
)


def load_settings(path: str, overrides: dict) -> dict:
    import yaml

    with open(path) as f:
        settings = {**DEFAULTS, **(yaml.safe_load(f) or {}), **overrides}
    if settings["network"] != "mlp" or settings["shared_torso"]:
        raise SystemExit("torch_ppo: only separate MLP actor and critic are written here")
    return settings


# --- running mean / variance (Chan et al. merge), as ppo_jax.core.normalize ---


class RunningMeanStd:
    def __init__(self, shape=()):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, batch: np.ndarray) -> None:
        batch = batch.reshape((-1,) + self.mean.shape)
        b_mean, b_var, b_count = batch.mean(0), batch.var(0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.mean = self.mean + delta * b_count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -10.0, 10.0).astype(np.float32)


# --- networks -------------------------------------------------------------------


def mlp(sizes: list[int], activation: str, out: int, out_gain: float) -> nn.Sequential:
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [_init(nn.Linear(fan_in, fan_out), math.sqrt(2.0)), act()]
    layers.append(_init(nn.Linear(sizes[-1], out), out_gain))
    return nn.Sequential(*layers)


def _init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs, evaluated together: ``forward`` returns the
    policy head's output and the value in one call, and the distribution's
    sampling, log-density and entropy are written out (no
    ``torch.distributions`` objects, whose construction and argument checks
    cost more than these networks' matmuls)."""

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool, s: dict):
        super().__init__()
        sizes = [obs_dim] + list(s["hidden_sizes"])
        self.discrete = discrete
        self.actor = mlp(sizes, s["activation"], action_dim, 0.01)
        self.critic = mlp(sizes, s["activation"], 1, 1.0)
        if not discrete:
            self.log_std = nn.Parameter(torch.full((action_dim,), float(s["log_std_init"])))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(obs), self.critic(obs).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def sample(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An action and its log-probability from the policy head's output."""
        if self.discrete:
            logp_all = torch.log_softmax(out, -1)
            action = torch.multinomial(logp_all.exp(), 1).squeeze(-1)
            return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        action = out + self.log_std.exp() * torch.randn_like(out)
        return action, self.log_prob(out, action)

    def log_prob(self, out: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return torch.log_softmax(out, -1).gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
        z = (action - out) * torch.exp(-self.log_std)
        return (-0.5 * z**2 - self.log_std - _HALF_LOG_2PI).sum(-1)

    def entropy(self, out: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            logp = torch.log_softmax(out, -1)
            return -(logp.exp() * logp).sum(-1)
        return (0.5 + _HALF_LOG_2PI + self.log_std).sum(-1).expand(out.shape[:-1])


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def minibatch_loss(model: ActorCritic, s: dict, obs, action, old_log_prob, old_value, adv, target):
    """Clipped surrogate + c1·½·(value error)² − c2·entropy, as ppo_jax's loss."""
    out, value = model(obs)
    log_ratio = model.log_prob(out, action) - old_log_prob
    ratio = log_ratio.exp()
    if s["normalize_advantages"]:
        adv = (adv - adv.mean()) / (adv.std(unbiased=False) + 1e-8)
    clipped = ratio.clamp(1 - s["clip_eps"], 1 + s["clip_eps"])
    policy_loss = -torch.min(ratio * adv, clipped * adv).mean()
    squared = (value - target) ** 2
    if s["vf_clip"] is not None:
        v_clip = old_value + (value - old_value).clamp(-s["vf_clip"], s["vf_clip"])
        squared = torch.max(squared, (v_clip - target) ** 2)
    value_loss = 0.5 * squared.mean()
    entropy = model.entropy(out).mean()
    loss = policy_loss + s["vf_coef"] * value_loss - s["ent_coef"] * entropy
    approx_kl = (torch.expm1(log_ratio) - log_ratio).mean().detach()
    return loss, approx_kl


def make_update_step(model: ActorCritic, optimizer, s: dict, compile_update: bool):
    """One minibatch step (forward, backward, global-norm clip, Adam), compiled
    with ``torch.compile`` when asked (the loss, its backward and the optimizer
    step as one graph each)."""
    params = list(model.parameters())

    def loss_and_grad(*batch):
        loss, approx_kl = minibatch_loss(model, s, *batch)
        loss.backward()
        return approx_kl

    def clip_and_step():
        nn.utils.clip_grad_norm_(params, s["max_grad_norm"], foreach=True)
        optimizer.step()

    if compile_update:
        loss_and_grad = torch.compile(loss_and_grad, dynamic=False)
        clip_and_step = torch.compile(clip_and_step, dynamic=False)

    def step(*batch):
        optimizer.zero_grad(set_to_none=True)
        approx_kl = loss_and_grad(*batch)
        clip_and_step()
        return approx_kl

    return step


# --- training ---------------------------------------------------------------------


def gae(rewards, values, next_values, terminated, dones, gamma, lam):
    """Time-major [T, B] numpy arrays; δ_t = r_t + γ(1−term_t)V(s'_t) − V(s_t),
    A_t = δ_t + γλ(1−done_t)A_{t+1}. In numpy: T tiny steps cost less there
    than as torch ops."""
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values
    advantages = np.zeros_like(rewards)
    next_adv = np.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        next_adv = deltas[t] + gamma * lam * (1.0 - dones[t]) * next_adv
        advantages[t] = next_adv
    return advantages, advantages + values


def train(s: dict, seed: int, device: str, time_limit: float, compile_update: bool = False) -> dict:
    # torch.optim imports torch._dynamo on first use (~2 s): an import, kept out
    # of the timed run as imports are for every implementation.
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    start = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    B, T = s["num_envs"], s["num_steps"]
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make(s["env_id"]) for _ in range(B)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    discrete = isinstance(envs.single_action_space, gym.spaces.Discrete)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    action_dim = int(envs.single_action_space.n) if discrete else int(np.prod(envs.single_action_space.shape))
    model = ActorCritic(obs_dim, action_dim, discrete, s).to(device)
    # Compiled: a tensor learning rate, so that annealing it does not recompile the step
    # (CPU only: CUDA's default foreach Adam refuses a tensor rate without capturable).
    lr0 = torch.tensor(float(s["learning_rate"])) if compile_update else float(s["learning_rate"])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr0, eps=1e-5)
    update_step = make_update_step(model, optimizer, s, compile_update)
    obs_rms, ret_rms = RunningMeanStd((obs_dim,)), RunningMeanStd(())
    observe = obs_rms.normalize if s["normalize_obs"] else (lambda x: x.astype(np.float32))
    if not discrete:
        low, high = envs.single_action_space.low, envs.single_action_space.high

    batch_size = B * T
    minibatch_size = batch_size // s["num_minibatches"]
    num_updates = s["total_timesteps"] // batch_size
    raw_obs, _ = envs.reset(seed=seed)
    episode_return = np.zeros(B)
    discounted = np.zeros(B)
    rollouts, env_steps, stopped_by_limit = [], 0, False
    tensor = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)

    for update in range(num_updates):
        buf = {
            k: []
            for k in (
                "obs",
                "action",
                "log_prob",
                "value",
                "reward",
                "term",
                "done",
                "final_obs",
                "raw_obs",
                "seen",
            )
        }
        count = return_sum = 0.0
        with torch.no_grad():
            for _ in range(T):
                obs = observe(raw_obs)
                out, value = model(tensor(obs))
                action, log_prob = model.sample(out)
                buf["log_prob"].append(log_prob)
                buf["value"].append(value)
                env_action = action.cpu().numpy()
                if not discrete:
                    env_action = np.clip(env_action, low, high)
                next_obs, reward, term, trunc, info = envs.step(env_action)
                term = term.astype(bool)
                done = term | trunc
                final = np.array(next_obs, copy=True)
                if done.any():
                    final[done] = np.stack(info["final_obs"][done])
                episode_return += reward
                count += done.sum()
                return_sum += episode_return[done].sum()
                episode_return[done] = 0.0
                if s["normalize_reward"]:
                    discounted = discounted * s["gamma"] + reward
                buf["seen"].append(discounted.copy())
                discounted[done] = 0.0
                for k, v in (
                    ("obs", obs),
                    ("action", action),
                    ("reward", reward),
                    ("term", term),
                    ("done", done),
                    ("final_obs", final),
                    ("raw_obs", raw_obs),
                ):
                    buf[k].append(v)
                raw_obs = next_obs
        env_steps += batch_size
        rollouts.append((time.perf_counter() - start, env_steps, float(count), float(return_sum)))

        # The rollout's final observations are normalized with the statistics
        # the rollout was collected under; then the statistics take its data in.
        final_obs = tensor(np.stack([observe(f) for f in buf["final_obs"]]))
        if s["normalize_obs"]:
            obs_rms.update(np.stack(buf["raw_obs"]))
        rewards = np.stack(buf["reward"]).astype(np.float32)
        if s["normalize_reward"]:
            ret_rms.update(np.stack(buf["seen"]))
            rewards = rewards / np.sqrt(ret_rms.var + 1e-8)
            if s["reward_clip"] is not None:
                rewards = np.clip(rewards, -s["reward_clip"], s["reward_clip"])
        with torch.no_grad():
            next_values = model.value(final_obs).cpu().numpy()
            values = torch.stack(buf["value"])
        advantages, targets = gae(
            rewards,
            values.cpu().numpy(),
            next_values,
            np.stack(buf["term"]).astype(np.float32),
            np.stack(buf["done"]).astype(np.float32),
            s["gamma"],
            s["gae_lambda"],
        )
        advantages, targets = tensor(advantages), tensor(targets)
        flat = lambda x: x.reshape((batch_size,) + x.shape[2:])
        b_obs = flat(tensor(np.stack(buf["obs"])))
        b_action = flat(torch.stack(buf["action"]))
        b_log_prob, b_value = flat(torch.stack(buf["log_prob"])), flat(values)
        b_adv, b_target = flat(advantages), flat(targets)

        lr = s["learning_rate"] * (1.0 - update / num_updates) if s["anneal_lr"] else s["learning_rate"]
        for group in optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        stop = False
        for _ in range(s["update_epochs"]):
            perm = torch.as_tensor(rng.permutation(batch_size), device=device)
            for i in range(s["num_minibatches"]):
                idx = perm[i * minibatch_size : (i + 1) * minibatch_size]
                approx_kl = update_step(
                    b_obs[idx], b_action[idx], b_log_prob[idx], b_value[idx], b_adv[idx], b_target[idx]
                )
                # this step is kept; the rest of the rollout's are not taken
                if s["target_kl"] is not None and approx_kl > s["target_kl"]:
                    stop = True
                    break
            if stop:
                break
        if time.perf_counter() - start > time_limit:
            stopped_by_limit = update + 1 < num_updates
            break

    seconds = time.perf_counter() - start
    envs.close()
    return {
        "implementation": "torch",
        "env_id": s["env_id"],
        "seed": seed,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "torch_compile": compile_update,
        "env_steps": env_steps,
        "budget_env_steps": num_updates * batch_size,
        "seconds": round(seconds, 3),
        "steps_per_second": round(env_steps / seconds),
        "stopped_by_time_limit": stopped_by_limit,
        "rollouts": [[round(t, 3), n, c, r] for t, n, c, r in rollouts],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    agent_main(__doc__, train, load_settings)


if __name__ == "__main__":
    main()
