"""PPO in PyTorch, written as a PyTorch expert after speed writes it: the same algorithm as ppo_jax.

    python -m benchmarks.torch_ppo configs/cartpole.yaml --seed 0 [--device cpu|cuda] [--compile] [--time-limit S]

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

What makes it fast, as an expert would do it:

- batched NumPy envs (``benchmarks/vec_envs.py``: gymnasium's own ``CartPoleVectorEnv``, and
  Pendulum's dynamics over the batch), one call per step for the whole batch;
- the rollout's storage preallocated once (``[T, B, ...]`` tensors written in place);
- one forward of actor and critic per env step, sampling (Gumbel-max, Gaussian) and
  log-densities written out (no ``torch.distributions`` objects or their argument checks);
- ``--compile``: the action step (forward + sampling) and the minibatch loss + backward under
  ``torch.compile``; the compile counts in the time, as ppo_jax's does;
- fused Adam (one kernel per step: 3× faster than foreach for these 9k parameters on one CPU
  thread, measured back to back on the loaded 2-core VM, 2026-12-04); the learning rate stays a Python float (the optimizer is not compiled), so
  annealing never recompiles and ``--device cuda --compile`` needs no capturable tensor rate;
- foreach gradient clipping, gradients set to ``None``, GAE in NumPy (T tiny steps).

``--device cuda`` runs the networks on a GPU (the envs stay NumPy on the CPU: neither
gymnasium nor this script has a CUDA CartPole).

Prints one JSON line: steps/s, the resolved settings, where the time went (env steps, the
action step, the learner), CPU time ÷ wall time, and per rollout (seconds since start, env
steps, episodes finished, their return sum), so that "reached" is computed by
benchmarks.common.reach for every implementation alike.
"""

from __future__ import annotations

import math
import resource
import time

import numpy as np
import torch
from torch import nn

from benchmarks import vec_envs
from benchmarks.common import agent_main, cpu_seconds, reach

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
            # Gumbel-max: argmax of logits + Gumbel noise (−log of an Exp(1) draw) is a
            # categorical sample, in elementwise ops and an argmax that torch.compile fuses
            logp_all = torch.log_softmax(out, -1)
            gumbel = -torch.log(torch.empty_like(out).exponential_())
            action = (logp_all + gumbel).argmax(-1)
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


def make_optimizer(params, lr: float, device: str) -> torch.optim.Adam:
    """Adam, eps 1e-5, fused (one kernel per step) on the CPU and on CUDA."""
    return torch.optim.Adam(params, lr=lr, eps=1e-5, fused=torch.device(device).type in ("cpu", "cuda"))


def make_steps(model: ActorCritic, optimizer, s: dict, compile_steps: bool):
    """The action step (forward + sampling) and one minibatch step (forward,
    backward, global-norm clip, Adam); with ``compile_steps`` the action step and
    the loss + backward under ``torch.compile`` (fused Adam stays one kernel)."""
    params = list(model.parameters())

    def act(obs):
        out, value = model(obs)
        action, log_prob = model.sample(out)
        return action, log_prob, value

    def loss_and_grad(*batch):
        loss, approx_kl = minibatch_loss(model, s, *batch)
        loss.backward()
        return approx_kl

    if compile_steps:
        act = torch.compile(act, dynamic=False)
        loss_and_grad = torch.compile(loss_and_grad, dynamic=False)

    def update(*batch):
        optimizer.zero_grad(set_to_none=True)
        approx_kl = loss_and_grad(*batch)
        nn.utils.clip_grad_norm_(params, s["max_grad_norm"], foreach=True)
        optimizer.step()
        return approx_kl

    return act, update


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


class Storage:
    """One rollout's data, allocated once: torch tensors the policy writes, NumPy
    arrays the envs write, ``[T, B, ...]``."""

    def __init__(self, T: int, B: int, obs_dim: int, action_shape: tuple, action_dtype, device: str):
        f32 = dict(dtype=torch.float32, device=device)
        self.obs = torch.zeros((T, B, obs_dim), **f32)
        self.action = torch.zeros((T, B) + action_shape, dtype=action_dtype, device=device)
        self.log_prob = torch.zeros((T, B), **f32)
        self.value = torch.zeros((T, B), **f32)
        self.final_obs = np.zeros((T, B, obs_dim), np.float32)
        self.raw_obs = np.zeros((T, B, obs_dim), np.float32)
        self.reward = np.zeros((T, B), np.float32)
        self.term = np.zeros((T, B), np.float32)
        self.done = np.zeros((T, B), np.float32)
        self.seen = np.zeros((T, B), np.float64)


class Timer:
    """Seconds spent in each part of training (perf_counter; CUDA work is waited for
    where its result reaches the host)."""

    def __init__(self):
        self.seconds = {"env": 0.0, "act": 0.0, "learn": 0.0}

    def add(self, part: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[part] += now - since
        return now


def collect(env, model, act, store: Storage, state: dict, s: dict, timer: Timer, device: str) -> tuple:
    """One rollout of T steps into ``store``; the episodes it finished: (count, return sum)."""
    count = return_sum = 0.0
    raw_obs = state["raw_obs"]
    for t in range(store.reward.shape[0]):
        tick = time.perf_counter()
        obs = state["observe"](raw_obs)
        store.raw_obs[t] = raw_obs
        store.obs[t].copy_(torch.from_numpy(obs))
        action, log_prob, value = act(store.obs[t])
        store.action[t], store.log_prob[t], store.value[t] = action, log_prob, value
        env_action = action.cpu().numpy()
        if not env.discrete:
            env_action = np.clip(env_action, env.low, env.high)
        tick = timer.add("act", tick)
        raw_obs, reward, term, trunc, final = env.step(env_action)
        done = term | trunc
        store.final_obs[t], store.reward[t], store.term[t], store.done[t] = final, reward, term, done
        ret = state["episode_return"]
        ret += reward
        count += done.sum()
        return_sum += ret[done].sum()
        ret[done] = 0.0
        if s["normalize_reward"]:
            state["discounted"] = state["discounted"] * s["gamma"] + reward
        store.seen[t] = state["discounted"]
        state["discounted"][done] = 0.0
        timer.add("env", tick)
    state["raw_obs"] = raw_obs
    return float(count), float(return_sum)


def advantages(model, store: Storage, state: dict, s: dict, device: str):
    """GAE over the rollout: final observations normalized with the statistics it was
    collected under, then the statistics take its data in; rewards scaled."""
    T, B = store.reward.shape
    final_obs = state["observe"](store.final_obs.reshape(T * B, -1))
    if s["normalize_obs"]:
        state["obs_rms"].update(store.raw_obs)
    rewards = store.reward
    if s["normalize_reward"]:
        state["ret_rms"].update(store.seen)
        rewards = rewards / np.sqrt(state["ret_rms"].var + 1e-8)
        if s["reward_clip"] is not None:
            rewards = np.clip(rewards, -s["reward_clip"], s["reward_clip"])
    with torch.no_grad():
        next_values = model.value(torch.from_numpy(final_obs).to(device)).reshape(T, B).cpu().numpy()
    values = store.value.cpu().numpy()
    adv, target = gae(
        rewards.astype(np.float32), values, next_values, store.term, store.done, s["gamma"], s["gae_lambda"]
    )
    return torch.from_numpy(adv).to(device), torch.from_numpy(target).to(device)


def learn(update, optimizer, store: Storage, adv, target, s: dict, lr: float, rng) -> None:
    """Epochs of shuffled minibatches over the rollout (early stop at ``target_kl``)."""
    T, B = store.reward.shape
    n, mb = T * B, T * B // s["num_minibatches"]
    flat = lambda x: x.reshape((n,) + x.shape[2:])
    batch = [flat(x) for x in (store.obs, store.action, store.log_prob, store.value, adv, target)]
    for group in optimizer.param_groups:
        group["lr"] = lr
    device = store.obs.device
    for _ in range(s["update_epochs"]):
        perm = torch.from_numpy(rng.permutation(n)).to(device)
        for i in range(s["num_minibatches"]):
            idx = perm[i * mb : (i + 1) * mb]
            approx_kl = update(*(x[idx] for x in batch))
            # this step is kept; the rest of the rollout's are not taken
            if s["target_kl"] is not None and approx_kl > s["target_kl"]:
                return


def setup(s: dict, seed: int, device: str, compile_steps: bool):
    torch.manual_seed(seed)
    env = vec_envs.make(s["env_id"], s["num_envs"])
    model = ActorCritic(env.obs_dim, env.action_dim, env.discrete, s).to(device)
    optimizer = make_optimizer(model.parameters(), float(s["learning_rate"]), device)
    act, update = make_steps(model, optimizer, s, compile_steps)
    obs_rms, ret_rms = RunningMeanStd((env.obs_dim,)), RunningMeanStd(())
    state = {
        "raw_obs": env.reset(seed=seed),
        "observe": obs_rms.normalize if s["normalize_obs"] else (lambda x: x.astype(np.float32)),
        "obs_rms": obs_rms,
        "ret_rms": ret_rms,
        "episode_return": np.zeros(s["num_envs"]),
        "discounted": np.zeros(s["num_envs"]),
    }
    shape, dtype = ((), torch.int64) if env.discrete else ((env.action_dim,), torch.float32)
    store = Storage(s["num_steps"], s["num_envs"], env.obs_dim, shape, dtype, device)
    return env, model, optimizer, act, update, state, store


def train(
    s: dict, seed: int, device: str, time_limit: float, compile_update: bool = False, stop_at=None
) -> dict:
    # torch.optim imports torch._dynamo on first use (~2 s): an import, kept out
    # of the timed run as imports are for every implementation.
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    start, cpu0 = time.perf_counter(), cpu_seconds()
    env, model, optimizer, act, update, state, store = setup(s, seed, device, compile_update)
    rng = np.random.default_rng(seed)
    timer = Timer()
    batch_size = s["num_envs"] * s["num_steps"]
    num_updates = s["total_timesteps"] // batch_size
    rollouts, env_steps, stopped_by_limit = [], 0, False
    for k in range(num_updates):
        with torch.no_grad():
            count, return_sum = collect(env, model, act, store, state, s, timer, device)
        env_steps += batch_size
        rollouts.append((time.perf_counter() - start, env_steps, count, return_sum))
        tick = time.perf_counter()
        adv, target = advantages(model, store, state, s, device)
        lr = s["learning_rate"] * (1.0 - k / num_updates) if s["anneal_lr"] else s["learning_rate"]
        learn(update, optimizer, store, adv, target, s, float(lr), rng)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        timer.add("learn", tick)
        if time.perf_counter() - start > time_limit:
            stopped_by_limit = k + 1 < num_updates
            break
        if stop_at is not None and reach(rollouts, stop_at):
            break
    seconds = time.perf_counter() - start
    return {
        "implementation": "torch_compile" if compile_update else "torch",
        "env_id": s["env_id"],
        "seed": seed,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "torch_compile": compile_update,
        "settings": s,
        "env_steps": env_steps,
        "budget_env_steps": num_updates * batch_size,
        "seconds": round(seconds, 3),
        "steps_per_second": round(env_steps / seconds),
        "seconds_in": {k: round(v, 3) for k, v in timer.seconds.items()},
        "cpu_over_wall": round((cpu_seconds() - cpu0) / seconds, 3),
        "stopped_by_time_limit": stopped_by_limit,
        "stopped_at_threshold": stop_at is not None and bool(reach(rollouts, stop_at)),
        "rollouts": [[round(t, 3), n, c, r] for t, n, c, r in rollouts],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    agent_main(__doc__, train, load_settings)


if __name__ == "__main__":
    main()
