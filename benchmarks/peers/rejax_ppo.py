"""rejax's PPO, timed: run with the peers venv's python, prints one JSON line.

    benchmarks/.peers-venv/bin/python benchmarks/peers/rejax_ppo.py '{"num_envs": 4, ...}'

One seed, not vmapped (flax's orthogonal init under vmap can deadlock XLA on a
2-core CPU). rejax's periodic evaluation is replaced by a no-op while timing;
the final policy is evaluated afterwards, untimed. This file runs outside
ppo_jax's environment and imports nothing of ppo_jax.
"""

from __future__ import annotations

import importlib.metadata
import json
import resource
import sys
import time

import jax
import jax.numpy as jnp
from rejax import PPO
from rejax.evaluate import evaluate


def main() -> None:
    s = json.loads(sys.argv[1])
    total = int(s["total_timesteps"])
    algo = PPO.create(
        env=s["env_id"],
        num_envs=s["num_envs"],
        num_steps=s["num_steps"],
        num_epochs=s["update_epochs"],
        num_minibatches=s["num_minibatches"],
        total_timesteps=total,
        learning_rate=s["learning_rate"],
        max_grad_norm=s["max_grad_norm"],
        gamma=s["gamma"],
        gae_lambda=s["gae_lambda"],
        clip_eps=s["clip_eps"],
        ent_coef=s["ent_coef"],
        vf_coef=s["vf_coef"],
        eval_freq=total,
        skip_initial_evaluation=True,
        agent_kwargs={"activation": s["activation"], "hidden_layer_sizes": list(s["hidden_sizes"])},
    )
    algo = algo.replace(eval_callback=lambda algo, ts, rng: jnp.zeros(()))
    key = jax.random.PRNGKey(s.get("seed", 0))
    start = time.perf_counter()
    compiled = jax.jit(algo.train).lower(key).compile()
    compile_seconds = time.perf_counter() - start
    runs = []
    for _ in range(s.get("repeats", 1)):
        start = time.perf_counter()
        ts, _ = compiled(key)
        jax.block_until_ready(ts)
        runs.append(time.perf_counter() - start)
    run_seconds = sorted(runs)[len(runs) // 2]
    # rejax's train does ceil(eval_freq / batch) iterations per evaluation.
    batch = s["num_envs"] * s["num_steps"]
    env_steps = -(-total // batch) * batch
    lengths, returns = evaluate(
        algo.make_act(ts), jax.random.PRNGKey(123), algo.env, algo.env_params, 32,
        algo.env_params.max_steps_in_episode,
    )
    print(json.dumps({
        "implementation": "rejax",
        "rejax": importlib.metadata.version("rejax"),
        "jax": jax.__version__,
        "gymnax": importlib.metadata.version("gymnax"),
        "env_id": s["env_id"],
        "env_steps": env_steps,
        "compile_seconds": round(compile_seconds, 3),
        "run_seconds": round(run_seconds, 3),
        "run_seconds_all": [round(r, 3) for r in runs],
        "steps_per_second": round(env_steps / run_seconds),
        "eval_return_mean": round(float(jnp.mean(returns)), 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }), flush=True)


if __name__ == "__main__":
    main()
