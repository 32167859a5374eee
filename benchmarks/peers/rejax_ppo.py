"""rejax's PPO, timed: run with the peers venv's python, prints one JSON line.

    benchmarks/.peers-venv/bin/python benchmarks/peers/rejax_ppo.py '{"num_envs": 4, ...}'

By default one seed, not vmapped. With ``"seeds": n`` (n > 1), n seeds in rejax's
own way, ``jax.jit(jax.vmap(algo.train))``, on one device, with one change: each
seed's initial train state is built outside the vmap (``jax.jit(algo.init_state)``
per key, then stacked), and only the training is vmapped
(``train(train_state=...)``, an argument of rejax's own ``train``). flax's
orthogonal init is a LAPACK QR, and batched QR under vmap has deadlocked XLA's
CPU thread pool on a 2-core machine (with ppo_jax's own init, on an earlier
setup; rejax's plain ``jax.jit(jax.vmap(algo.train))(keys)`` did not hang in 3
tries on jax 0.10.2 here, so this is a precaution); built per seed, no QR is
ever batched. The
initial states are the same as rejax's ``train(key)`` would build (``init_state(key)``
per key), and the training program is rejax's untouched; the init is untimed.

rejax's periodic evaluation is replaced by a no-op while timing; the final
policy is evaluated afterwards, untimed. This file runs outside ppo_jax's
environment and imports nothing of ppo_jax.
"""

from __future__ import annotations

import importlib.metadata
import json
import resource
import statistics
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
    seeds = int(s.get("seeds", 1))
    init_seconds = None
    if seeds == 1:
        key = jax.random.PRNGKey(s.get("seed", 0))
        fn, arg = jax.jit(algo.train), key
    else:
        # One initial state per seed, outside the vmap (see the docstring); the
        # jitted init traces once, so every state has the same tree structure.
        start = time.perf_counter()
        init = jax.jit(algo.init_state)
        states = [init(jax.random.PRNGKey(s.get("seed", 0) + i)) for i in range(seeds)]
        arg = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
        jax.block_until_ready(arg)
        init_seconds = time.perf_counter() - start
        fn = jax.jit(jax.vmap(lambda ts: algo.train(train_state=ts)))
    start = time.perf_counter()
    compiled = fn.lower(arg).compile()
    compile_seconds = time.perf_counter() - start
    runs = []
    for _ in range(s.get("repeats", 1)):
        start = time.perf_counter()
        ts, _ = compiled(arg)
        jax.block_until_ready(ts)
        runs.append(time.perf_counter() - start)
    run_seconds = statistics.median(runs)  # as ppo_jax's jobs (sorted(runs)[n // 2] took the slower of 2)
    # rejax's train does ceil(eval_freq / batch) iterations per evaluation.
    batch = s["num_envs"] * s["num_steps"]
    env_steps = -(-total // batch) * batch

    def final_returns(ts):
        return evaluate(
            algo.make_act(ts),
            jax.random.PRNGKey(123),
            algo.env,
            algo.env_params,
            32,
            algo.env_params.max_steps_in_episode,
        )[1]

    returns = final_returns(ts) if seeds == 1 else jax.jit(jax.vmap(final_returns))(ts)
    print(
        json.dumps(
            {
                "implementation": "rejax",
                "seeds": seeds,
                "vmapped": seeds > 1,
                **({"init_outside_vmap_seconds": round(init_seconds, 3)} if init_seconds is not None else {}),
                "rejax": importlib.metadata.version("rejax"),
                "jax": jax.__version__,
                "gymnax": importlib.metadata.version("gymnax"),
                "env_id": s["env_id"],
                "env_steps": env_steps,
                "env_steps_all_seeds": env_steps * seeds,
                "compile_seconds": round(compile_seconds, 3),
                "run_seconds": round(run_seconds, 3),
                "run_seconds_all": [round(r, 3) for r in runs],
                # aggregate over the seeds
                "steps_per_second": round(seeds * env_steps / run_seconds),
                "eval_return_mean": round(float(jnp.mean(returns)), 2),
                **(
                    {"eval_return_mean_per_seed": [round(float(r), 2) for r in jnp.mean(returns, axis=-1)]}
                    if seeds > 1
                    else {}
                ),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
