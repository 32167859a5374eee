"""The run axis (seeds, or grid points × seeds) spread over every device and host.

Runs never talk to each other, so each device trains its slice of the runs with
the same vmapped program: ``shard_map`` over a one-axis ``Mesh`` named ``runs``,
inputs and outputs split on their leading axis. On one device this is the plain
vmapped program. Across hosts (after ``jax.distributed.initialize``) every
process builds the same host inputs, hands over the slices its own devices
hold, and gathers the (small) per-run outputs back with a collective.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

RUNS = "runs"
SPLIT = PartitionSpec(RUNS)  # leading axis split over devices
REPLICATED = PartitionSpec()
ENVS = "envs"  # the mesh axis of a data-parallel run: one agent's envs split over devices


def run_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    """A one-axis mesh ``runs`` over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (RUNS,))


def devices_dividing(num_runs: int, devices: Optional[Sequence[jax.Device]] = None) -> list[jax.Device]:
    """The most local devices whose count divides ``num_runs`` (no padding needed)."""
    devices = jax.local_devices() if devices is None else list(devices)
    count = max(d for d in range(1, len(devices) + 1) if num_runs % d == 0)
    return devices[:count]


def padded_size(num_runs: int, num_devices: int) -> int:
    """``num_runs`` rounded up to a multiple of ``num_devices``."""
    return math.ceil(num_runs / num_devices) * num_devices


def pad_runs(tree: Any, size: int) -> Any:
    """Repeat the last run of every leaf (numpy, leading run axis) up to ``size`` runs."""

    def pad(x):
        x = np.asarray(x)
        extra = size - x.shape[0]
        if extra <= 0:
            return x
        return np.concatenate([x, np.repeat(x[-1:], extra, axis=0)], axis=0)

    return jax.tree.map(pad, tree)


def to_devices(tree: Any, mesh: Mesh) -> Any:
    """Host arrays (identical on every process) -> global arrays split over ``runs``.

    Each process supplies only the slices that its own devices hold.
    """
    sharding = NamedSharding(mesh, SPLIT)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def to_host(tree: Any) -> Any:
    """Global arrays -> numpy on this process, gathered from every host if needed."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
    return jax.device_get(tree)


def over_runs(fn: Callable, mesh: Mesh, in_specs: tuple, out_specs: Any = SPLIT) -> Callable:
    """``fn`` (already vmapped over runs) applied by each device to its own slice.

    ``check_vma`` is off: the loops inside carry values (zeros, counters) that
    start replicated and become per-run, which the check would refuse although
    no value ever crosses devices (a data-parallel run passes its own specs).
    """
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


class EnvShards(NamedTuple):
    """One agent's envs (and so its rollout and every minibatch) split evenly
    over ``count`` devices of the mapped axis ``axis_name``: data-parallel."""

    count: int  # type: ignore[assignment]  # shadows tuple.count, which nothing here calls
    axis_name: str = ENVS


def env_mesh(count: int, devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    """A one-axis mesh ``envs`` over the first ``count`` local devices."""
    devices = jax.local_devices() if devices is None else list(devices)
    if count > len(devices):
        raise ValueError(f"data-parallel over {count} devices, but this process has {len(devices)}")
    return Mesh(np.asarray(devices[:count]), (ENVS,))


def own_key(key: jax.Array, shards: Optional[EnvShards]) -> jax.Array:
    """This device's key of a data-parallel run (``key`` itself on one device or none)."""
    if shards is None or shards.count == 1:
        return key
    return jax.random.fold_in(key, jax.lax.axis_index(shards.axis_name))
