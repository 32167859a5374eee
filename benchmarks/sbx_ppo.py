"""sbx's PPO (Stable-Baselines3's JAX port) at the settings of a ppo_jax preset, timed.

    benchmarks/.peers-venvs/sbx/bin/python -m benchmarks.sbx_ppo configs/cartpole.yaml --seed 0 [--time-limit S]

Runs in the sbx peer venv (``benchmarks/peers/sbx.txt``: the same jax/jaxlib
as ppo_jax), with the same env wrappers, callback and translated settings as
``sb3_ppo.py`` (``vf_coef / 2``, the learning-rate schedule shifted to
ppo_jax's, VecNormalize's reward clip from the preset). What sbx 0.28 does
its own way, beyond SB3's differences listed there:

- actor and critic are two flax modules with two optimizers, each with its own
  global-norm gradient clip (ppo_jax clips the norm over both together);
- hidden layers keep flax's default init (LeCun normal); with ``ortho_init``
  only the policy head is orthogonal (gain 0.01), the value head is default;
- ``target_kl`` means a KL-adaptive learning rate in sbx, not an early stop,
  so it is not passed (no preset run here with sbx sets it);
- value clipping is not implemented (``clip_range_vf`` is ignored);
- each minibatch step is one jitted function, called from Python per
  minibatch; the rollout steps gymnasium envs from Python, as SB3 does.

Prints one JSON line in the format of benchmarks.torch_ppo.
"""

from __future__ import annotations

import time

import flax.linen as nn
import jax
from sbx import PPO

from benchmarks.common import agent_main, cpu_seconds
from benchmarks.sb3_ppo import learn, make_env, matched_kwargs
from benchmarks.torch_ppo import load_settings


def train(s: dict, seed: int, device: str, time_limit: float, stop_at=None) -> dict:
    start, cpu0 = time.perf_counter(), cpu_seconds()
    env = make_env(s, seed)
    kwargs = {**matched_kwargs(s), "target_kl": None}
    model = PPO(
        "MlpPolicy",
        env,
        **kwargs,
        policy_kwargs=dict(
            net_arch=dict(pi=list(s["hidden_sizes"]), vf=list(s["hidden_sizes"])),
            activation_fn={"tanh": nn.tanh, "relu": nn.relu}[s["activation"]],
            ortho_init=True,
            log_std_init=s["log_std_init"],
        ),
        seed=seed,
        verbose=0,
    )
    result = learn(model, s, seed, device, (start, cpu0), time_limit, "sbx", stop_at)
    result.update(device=str(jax.devices()[0].platform), jax=jax.__version__)
    return result


def main() -> None:
    agent_main(__doc__, train, load_settings)


if __name__ == "__main__":
    main()
