"""Each seed's saved critic on 2,000 states its own (stochastic) policy visits: the share of
hidden units with |h| > 0.99 per layer, and the spread of the value over those states.

    python docs/tuning/cartpole/issue22/probe_critic.py RUN_DIR SEED,SEED,...
"""

import sys

import gymnax
import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax.runs import load_run


def visited(run, env, params, seed, n=2000):
    policy = run.policy(seed, stochastic=True)
    step = jax.jit(env.step)
    key = jax.random.PRNGKey(seed)
    obs, state = env.reset(key, params)
    states, returns, ret = [], [], 0.0
    for _ in range(n):
        key, k_act, k_step = jax.random.split(key, 3)
        states.append(np.asarray(obs))
        obs, state, reward, terminated, truncated, _ = step(k_step, state, policy(obs, k_act), params)
        ret += float(reward)
        if bool(terminated) or bool(truncated):
            returns.append(ret)
            ret = 0.0
    return np.stack(states), returns


def main(run_dir, seeds):
    run = load_run(run_dir)
    env, params = gymnax.make("CartPole-v1")
    for seed in seeds:
        states, returns = visited(run, env, params, seed)
        p = run.params_of(seed).network["params"]
        h, saturated = jnp.asarray(states), []
        for name in sorted(p["critic_torso"]):
            layer = p["critic_torso"][name]
            h = jnp.tanh(h @ layer["kernel"] + layer["bias"])
            saturated.append(float((jnp.abs(h) > 0.99).mean()))
        value = h @ p["value_head"]["kernel"][:, 0] + p["value_head"]["bias"][0]
        print(
            f"seed {seed}: episodes {np.round(returns, 0).tolist()[:6]} | critic units |h|>0.99: "
            f"layer1 {saturated[0]:.2f} layer2 {saturated[1]:.2f} | value on visited states "
            f"mean {float(value.mean()):.1f} std {float(value.std()):.2f}"
        )


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")])
