"""Where a cold ``ppo-jax train`` spends its time before training: imports, settings
and env, building the program, then each program's tracing, lowering and XLA compile.

    python -m benchmarks.compile_profile [CONFIG] [--seeds N] [--set key=value ...]

Prints one JSON line. Run it with a fresh process each time (imports are timed) and
without the executable cache (nothing is loaded: every program is compiled).
"""

import time

_start = time.perf_counter()  # before every other import: the profile times them
import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="?", default="configs/cartpole.yaml")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    times = {}
    mark = time.perf_counter()

    def lap(name):
        nonlocal mark
        now = time.perf_counter()
        times[name] = round(now - mark, 3)
        mark = now

    from ppo_jax.cli import common

    common.set_cpu_devices(None)
    import jax

    from ppo_jax import sharding
    from ppo_jax.config import load_config_from
    from ppo_jax.driver import ChunkedRun, compiler_options, seed_keys

    lap("import_jax_and_ppo_jax")
    config = load_config_from(args.config, common.parse_sets(args.set))
    lap("settings_and_env")
    run = ChunkedRun(config, list(range(args.seeds)))
    lap("build")
    keys = sharding.to_devices(seed_keys(run.seeds), run.mesh)
    init = run._init_fn.trace(keys, run.hp)
    lap("init_trace")
    init = init.lower()
    lap("init_lower")
    init = init.compile()
    lap("init_compile")
    state = init(keys, run.hp)
    jax.block_until_ready(state)
    lap("init_run")
    for length in sorted(set(run.plan)):
        traced = run._chunk_fn(length).trace(state, run.hp)
        lap(f"chunk{length}_trace")
        lowered = traced.lower()
        lap(f"chunk{length}_lower")
        lowered.compile(compiler_options())
        lap(f"chunk{length}_compile")
    times["total"] = round(time.perf_counter() - _start, 3)
    times["load_1min"] = os.getloadavg()[0]
    times["devices"] = run.mesh.size
    print(json.dumps(times))


if __name__ == "__main__":
    main()
