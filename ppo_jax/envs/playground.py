"""MuJoCo Playground's environments as gymnax ``Environment``s: ``playground:CartpoleBalance``, ...

Its JAX implementation (``impl: jax``, MJX on XLA), not Warp. The raw
environment from ``mujoco_playground.registry.load`` is wrapped, not
Playground's ``wrap_for_brax_training`` (Brax's ``EpisodeWrapper`` and an
auto-reset that overwrites the observation an episode ended in). Playground's
``done`` is a termination; the time limit is ours, from the environment's
config: ``episode_length`` (in simulator control steps) over ``action_repeat``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from mujoco_playground import registry  # a missing package names the extra (ppo_jax.envs.suite_module)

from ppo_jax.envs import EnvError
from ppo_jax.envs.brax import PipelineEnv


def make(name: str, obs_key: str = "state", **config_overrides):
    """``(env, params)`` for Playground's environment ``name`` (``CartpoleBalance``, ``Go1JoystickFlatTerrain``, ...).

    Args:
      name: a name in ``mujoco_playground.registry.ALL_ENVS``.
      obs_key: for environments whose observation is a dict, the entry the
        policy sees (Playground's own PPO feeds its policy ``state``).
      **config_overrides: entries of the environment's config
        (``episode_length``, ``action_repeat``, ``ctrl_dt``, ...); ``impl`` is
        always ``jax``.

    Actions are in [-1, 1], the range Playground's environments take
    (their PPO squashes actions with tanh).
    """
    if name not in registry.ALL_ENVS:
        raise EnvError(
            f"playground:{name}: not one of MuJoCo Playground's environments; known: "
            f"{', '.join(sorted(registry.ALL_ENVS))}"
        )
    impl = config_overrides.pop("impl", "jax")
    if impl != "jax":
        raise EnvError(
            f"playground:{name}: impl {impl!r} is not supported; ppo_jax runs Playground's JAX "
            "implementation (impl: jax), not Warp"
        )
    config = registry.get_default_config(name)
    unknown = sorted(set(config_overrides) - set(config.keys()))
    if unknown:
        raise EnvError(f"playground:{name}: unknown config entries {unknown}; known: {sorted(config.keys())}")
    inner = registry.load(name, config_overrides={**config_overrides, "impl": "jax"})
    config = inner._config
    action_repeat = int(config.get("action_repeat", 1))
    max_steps = math.ceil(int(config.episode_length) / action_repeat)

    def obs_fn(obs):
        if isinstance(obs, Mapping):
            if obs_key not in obs:
                raise EnvError(
                    f"playground:{name}: the observation has entries {sorted(obs)}; "
                    f"obs_key {obs_key!r} is not one of them"
                )
            return obs[obs_key]
        return obs

    env = PipelineEnv(inner, f"playground:{name}", max_steps, action_repeat=action_repeat, obs_fn=obs_fn)
    return env, env.default_params
