"""The env suites: one table of each suite's id prefix, adapter, pip extra and packages.

``envs`` reads it to import a suite's adapter (and to name the extra a missing package
needs); the compile cache reads it to key a suite's programs by the versions of the
packages traced into them (a suite missing here would turn the executable cache off
for it). pyproject.toml's extras cannot import Python: ``tests/test_envs_interface.py``
checks that each extra lists the table's packages. Adding a suite is one row here, its
adapter module and its extra.
"""

from __future__ import annotations

from typing import NamedTuple


class Suite(NamedTuple):
    """One env suite, named in env ids as ``prefix:name``."""

    module: str  # the adapter; it imports its suite at the top, so a missing package fails its import
    extra: str  # pyproject's optional-dependencies extra that installs the suite
    packages: tuple[str, ...]  # the distributions that hold its code (their requirements are added)


SUITES: dict[str, Suite] = {
    "brax": Suite("ppo_jax.envs.brax", "brax", ("brax", "mujoco", "mujoco-mjx")),
    "playground": Suite(
        "ppo_jax.envs.playground", "playground", ("playground", "mujoco", "mujoco-mjx", "brax")
    ),
    "jumanji": Suite("ppo_jax.envs.jumanji", "jumanji", ("jumanji",)),
    "craftax": Suite("ppo_jax.envs.craftax", "craftax", ("craftax",)),
    "navix": Suite("ppo_jax.envs.navix", "navix", ("navix",)),
    "xminigrid": Suite("ppo_jax.envs.xminigrid", "xminigrid", ("xminigrid",)),
}
