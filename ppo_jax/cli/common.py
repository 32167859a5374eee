"""What every command shares: the user-error type, exit codes, value parsing, the run's environment."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from typing import Sequence

EXIT_USAGE = 2
EXIT_NONFINITE = 3
EXIT_CHECKPOINT = 4


class UserError(Exception):
    """Bad input from the user: printed without a traceback, exit code 2."""


def parse_sets(pairs: Sequence[str]) -> dict:
    """``--set key=value`` pairs as {key: value}, values read as YAML."""
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set {pair!r}: expected key=value, for example --set learning_rate=3e-4")
        key, raw = pair.split("=", 1)
        overrides[key.strip()] = yaml_value(raw)
    return overrides


def yaml_value(raw: str):
    """A command-line value read as YAML (numbers, null, lists), or the text itself."""
    import yaml

    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def seed_list(num_seeds: int, first_seed: int) -> list[int]:
    if num_seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {num_seeds}.")
    if first_seed < 0:
        raise UserError(f"--seed must be ≥ 0, got {first_seed}.")
    return list(range(first_seed, first_seed + num_seeds))


def environment() -> dict:
    """Where and when a run ran, for its summary."""
    import jax

    return {
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.devices()[0].platform,
        "host": platform.node(),
        "jax_version": jax.__version__,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def numerics(config) -> dict:
    """What decides a run's numbers beside its settings' values, for its summary: the
    matmul precision (a setting) and the PRNG implementation (JAX_DEFAULT_PRNG_IMPL)."""
    from ppo_jax.io.checkpoint import prng_impl

    return {"matmul_precision": config.matmul_precision, "prng_impl": prng_impl()}


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["ppo-jax"] + sys.argv[1:])


def enable_compile_cache() -> None:
    from ppo_jax import compile_cache

    compile_cache.enable()


def rounding_notice(config) -> str | None:
    """A note when ``total_timesteps`` is not a whole number of rollouts (it is rounded down)."""
    if config.env_steps == config.total_timesteps:
        return None
    return (
        f"note: total_timesteps {config.total_timesteps:,} rounded down to {config.env_steps:,} env steps: "
        f"{config.num_updates} whole rollouts of num_envs × num_steps = {config.batch_size:,}."
    )


def cpu_device_count() -> int:
    """The cores this process may run on: the default of ``--cpu-devices``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_cpu_devices(count: int | None) -> None:
    """Split a CPU backend into ``count`` devices (default: one per core) so seeds run in parallel.

    XLA reads the flag when JAX starts its backend, so this must run first; a
    device count already given in ``XLA_FLAGS`` is kept. On GPU or TPU it
    changes nothing: only the host platform's device count is set.
    """
    if count is not None and count < 1:
        raise UserError(f"--cpu-devices must be at least 1, got {count}.")
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    count = cpu_device_count() if count is None else count
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
