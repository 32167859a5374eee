"""Start and Reference: what a fine-tune hands the trainer, as data, and the checks that they fit.

``Start`` holds the network parameters and normalization statistics a run starts from
(instead of fresh ones); ``Reference`` the frozen policy of the KL penalty
(``kl_ref_coef``). Both are plain pytrees, made by the caller: from a run directory with
``finetune.loaders`` (the CLI's ``--init-from`` and ``--kl-ref``) or by hand. The trainer
imports this module, so it imports nothing that reads files.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
from flax import struct

from ppo_jax import core
from ppo_jax.config import ConfigError, PPOConfig


@struct.dataclass
class Start:
    """Parameters and statistics a run starts from; its optimizer starts fresh."""

    params: Any  # network parameters of one seed, the structure of ``Networks.init``
    obs_norm: core.RunningMeanStd  # [*obs_shape]; used when normalize_obs is on
    ret_norm: core.RunningMeanStd  # []; used when normalize_reward is on


@struct.dataclass
class Reference:
    """A frozen policy: the same networks with other parameters, and its own
    frozen observation statistics (None: it saw raw observations)."""

    params: Any
    obs_norm: Optional[core.RunningMeanStd]


def check_params(expected: Any, given: Any, what: str) -> None:
    """Raise ``ConfigError`` unless ``given`` has the structure, shapes and dtypes of ``expected``.

    ``expected`` is a pytree of arrays or ``jax.ShapeDtypeStruct`` (e.g.
    ``jax.eval_shape(networks.init, key)``).
    """
    want = jax.tree_util.tree_flatten_with_path(expected)[0]
    got = dict(jax.tree_util.tree_flatten_with_path(given)[0])
    hint = " The network settings (hidden_sizes, network, activation, shared_torso, recurrent, recurrent_size) and the env's observation and action shapes must match the run the parameters come from."
    if len(got) != len(want) or any(path not in got for path, _ in want):
        missing = [jax.tree_util.keystr(p) for p, _ in want if p not in got]
        extra = [jax.tree_util.keystr(p) for p in got if p not in dict(want)]
        raise ConfigError(
            f"{what}: the parameters do not fit this config's network: missing {missing or 'nothing'}, "
            f"unexpected {extra or 'nothing'}.{hint}"
        )
    for path, leaf in want:
        other = got[path]
        if tuple(other.shape) != tuple(leaf.shape) or other.dtype != leaf.dtype:
            raise ConfigError(
                f"{what}: parameter {jax.tree_util.keystr(path)} is {tuple(other.shape)} {other.dtype}, this "
                f"config's network needs {tuple(leaf.shape)} {leaf.dtype}.{hint}"
            )


def check_obs_norm(rms: Optional[core.RunningMeanStd], obs_shape: tuple[int, ...], what: str) -> None:
    if rms is not None and tuple(rms.mean.shape) != tuple(obs_shape):
        raise ConfigError(
            f"{what}: observation statistics are over shape {tuple(rms.mean.shape)}, this env observes {tuple(obs_shape)}."
        )


def require_reference(configs: list[PPOConfig], reference: Optional[Reference]) -> None:
    """A KL penalty without a reference would silently do nothing: refuse it."""
    if reference is not None:
        return
    for config in configs:
        if config.kl_ref_coef > 0 or config.kl_ref_target is not None:
            raise ConfigError(
                f"kl_ref_coef = {config.kl_ref_coef} penalizes the KL to a reference policy, but none was given: "
                "pass --init-from RUN_DIR (the reference is the run it starts from) or --kl-ref RUN_DIR, or in "
                "Python reference=ppo_jax.finetune.loaders.load_reference(RUN_DIR); or set kl_ref_coef: 0."
            )
