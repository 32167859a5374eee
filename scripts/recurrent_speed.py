"""Training steps/s of a recurrent run beside the feed-forward one, and where the time goes.

    PYTHONPATH=. python scripts/recurrent_speed.py [--updates 20] [--seeds 4] [--all]

Each setting trains CartPole-v1 (full observation) with the CartPole preset's
shapes (16 envs × 128 steps, 4 epochs × 8 minibatches) for ``--updates``
updates of ``--seeds`` vmapped seeds, through the CLI's chunked driver (compile
first, then time the run). The rollout alone (the same ``collect`` the step
uses, vmapped over the seeds) is timed too; the update is the rest.
Prints a Markdown table. Measures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import time

import jax

import ppo_jax
from ppo_jax.driver import ChunkedRun, seed_keys
from ppo_jax.rollout import RolloutOptions, collect, collect_recurrent

SETTINGS = [
    ("feed-forward", {}),
    ("gru 128", {"recurrent": "gru"}),
    ("lstm 128", {"recurrent": "lstm"}),
    ("gru 128, bptt_chunk 32", {"recurrent": "gru", "bptt_chunk": 32}),
]


def rollout_seconds(program, state, hp, repeats: int) -> float:
    config = program.config
    options = RolloutOptions(config.num_steps, config.normalize_obs, config.normalize_reward)
    common = dict(networks=program.networks, vec_env=program.vec_env, options=options)
    if config.recurrent is None:
        one = lambda s: collect(s.key, s.params, s.env, s.norm, hp.gamma, **common)[2].value
    else:
        one = lambda s: (
            collect_recurrent(s.key, s.params, s.env, s.memory, s.norm, hp.gamma, **common)[3].value
        )
    run = jax.jit(jax.vmap(one))
    jax.block_until_ready(run(state))
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(run(state))
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--all", action="store_true", help="also LSTM and GRU with bptt_chunk 32")
    args = parser.parse_args()
    base = ppo_jax.load_config("configs/cartpole.yaml")
    print("| setting | train steps/s (all seeds) | s per update | rollout s | update s | compile s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, changes in SETTINGS if args.all else SETTINGS[:2]:
        config = base.replace(total_timesteps=base.batch_size * args.updates, **changes)
        run = ChunkedRun(config, seeds=list(range(args.seeds)), target_chunks=1)
        state = run.compile()
        hp = config.hyperparams()
        init_state = jax.jit(jax.vmap(run.program.init, in_axes=(0, None)))(seed_keys(run.seeds), hp)
        run.run(state)
        per_update = run.train_seconds / args.updates
        rollout = rollout_seconds(run.program, init_state, hp, repeats=5)
        steps = args.updates * config.batch_size * args.seeds / run.train_seconds
        print(
            f"| {name} | {steps:,.0f} | {per_update:.3f} | {rollout:.3f} | {per_update - rollout:.3f} "
            f"| {run.compile_seconds:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
