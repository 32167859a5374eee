"""XLA flags that must be set before JAX starts its CPU backend.

XLA's CPU runtime can wedge forever in ``block_until_ready`` when its Eigen
thread pool runs the large vmapped programs PPO compiles (seen here with
jax 0.10.2 on a 2-core machine: a training run stuck with every thread in a
futex wait). Single-threaded Eigen avoids it, and costs little: programs this
small run on one core anyway. Set ``PPO_JAX_KEEP_XLA_FLAGS=1`` to opt out.
"""

import os

_FLAG = "--xla_cpu_multi_thread_eigen"


def apply() -> None:
    if os.environ.get("PPO_JAX_KEEP_XLA_FLAGS"):
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}=false".strip()
