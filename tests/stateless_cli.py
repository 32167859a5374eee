"""``python -m tests.stateless_cli ARGS``: the ``ppo-jax`` CLI with ``CartPole-v1-stateless`` registered
(see ``tests/memory_envs.py``), for measurements made before ``obs_indices`` is merged."""

import sys

from tests import memory_envs

if __name__ == "__main__":
    memory_envs.register()
    from ppo_jax.cli import main

    sys.exit(main(sys.argv[1:]))
