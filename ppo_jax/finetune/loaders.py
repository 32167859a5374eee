"""Read what a fine-tune starts from, and the policy it is leashed to, from a run directory.

    start = load_start("runs/pretrain", config)          # --init-from runs/pretrain
    reference = load_reference("runs/pretrain", config)  # --kl-ref (default: the init run)
    train = make_train(config, init_from=start, reference=reference)

Both take one seed of the saved run (default: its first) and check, before
anything compiles, that the run's network fits ``config``'s: the same network
settings, the same observation and action shapes (the env may differ: that is
the point of fine-tuning), and for ``--init-from`` the same ``normalize_obs``.
IO only; the trainer never imports this module (it sits above the run loader).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import jax

from ppo_jax.config import ConfigError, PPOConfig
from ppo_jax.finetune.data import Reference, Start, require_reference
from ppo_jax.io.checkpoint import RunDirError
from ppo_jax.runs import load_run  # it imports the trainer, which imports ppo_jax.finetune: never the reverse

NETWORK_FIELDS = ("network", "hidden_sizes", "activation", "shared_torso", "recurrent", "recurrent_size")


def _load(run_dir: str | Path, seed: Optional[int], what: str):
    try:
        run = load_run(run_dir)
    except RunDirError as err:
        raise ConfigError(f"{what} {err}") from None
    if seed is None:
        seed = run.seeds[0]
    if seed not in run.seeds:
        raise ConfigError(f"{what} {run_dir}: the run has no seed {seed}; its seeds are {run.seeds}.")
    index = run.seeds.index(seed)
    return run, jax.tree.map(lambda x: x[index], run.state)


def _check_network(saved: PPOConfig, config: PPOConfig, run_dir, what: str) -> None:
    from ppo_jax.envs import check_config

    show = lambda v: list(v) if isinstance(v, tuple) else repr(v)
    diffs = [
        f"'{name}' is {show(getattr(saved, name))} there, {show(getattr(config, name))} here"
        for name in NETWORK_FIELDS
        if getattr(saved, name) != getattr(config, name)
    ]
    a, b = check_config(saved), check_config(config)
    if a.obs_shape != b.obs_shape:
        diffs.append(f"{saved.env_id} observes {a.obs_shape}, {config.env_id} {b.obs_shape}")
    if (a.discrete, a.action_dim) != (b.discrete, b.action_dim):
        kind = lambda s: f"{s.action_dim} {'discrete actions' if s.discrete else 'action dimensions'}"
        diffs.append(f"{saved.env_id} has {kind(a)}, {config.env_id} {kind(b)}")
    if diffs:
        raise ConfigError(
            f"{what} {run_dir}: its network does not fit this config: {'; '.join(diffs)}. "
            "Use the run's network settings (and an env with the same observation and action shapes)."
        )


def load_start(run_dir: str | Path, config: PPOConfig, seed: Optional[int] = None) -> Start:
    """The network and normalization statistics of one seed of ``run_dir``, to start ``config`` from.

    Raises:
      ConfigError: not a usable run directory, no such seed, or a network or
        ``normalize_obs`` that does not fit ``config``.
    """
    what = "--init-from"
    run, state = _load(run_dir, seed, what)
    _check_network(run.config, config, run_dir, what)
    if run.config.normalize_obs != config.normalize_obs:
        raise ConfigError(
            f"{what} {run_dir}: the run was trained with normalize_obs: {str(run.config.normalize_obs).lower()}, "
            f"this config has {str(config.normalize_obs).lower()}; its network expects inputs on the scale it was "
            f"trained on. Set normalize_obs: {str(run.config.normalize_obs).lower()}."
        )
    return Start(params=state.params, obs_norm=state.norm.obs, ret_norm=state.norm.ret)


def load_reference(run_dir: str | Path, config: PPOConfig, seed: Optional[int] = None) -> Reference:
    """The frozen policy of one seed of ``run_dir``, with its own observation statistics.

    Raises:
      ConfigError: not a usable run directory, no such seed, or a network that does not fit ``config``.
    """
    what = "--kl-ref"
    run, state = _load(run_dir, seed, what)
    _check_network(run.config, config, run_dir, what)
    return Reference(params=state.params, obs_norm=state.norm.obs if run.config.normalize_obs else None)


SOURCES_FILE = "finetune.json"


@dataclass(frozen=True)
class FineTune:
    """What the CLI's ``--init-from RUN_DIR [--init-seed S] [--kl-ref RUN_DIR]`` resolve to."""

    start: Optional[Start] = None
    reference: Optional[Reference] = None
    sources: Optional[dict] = None  # the run directories and seed, as given

    def save(self, out: str | Path) -> None:
        """Remember the sources in ``out``, so that ``--resume`` finds the reference again."""
        if self.sources is not None:
            (Path(out) / SOURCES_FILE).write_text(json.dumps(self.sources, indent=2) + "\n")


def _wants_reference(configs: Sequence[PPOConfig]) -> bool:
    """Penalized, or measurable: a feed-forward run measures ``kl_ref`` at any β."""
    leashed = any(c.kl_ref_coef > 0 or c.kl_ref_target is not None for c in configs)
    return leashed or not any(c.recurrent for c in configs)


def for_run(
    configs: Sequence[PPOConfig],
    init_from: Optional[str] = None,
    init_seed: Optional[int] = None,
    kl_ref: Optional[str] = None,
    resume: Optional[str | Path] = None,
) -> FineTune:
    """Resolve the CLI's fine-tuning options for a run (or sweep) of ``configs``.

    The reference is ``kl_ref`` if given, else the ``init_from`` run (same seed).
    It is loaded whenever there is one, at β = 0 too, so that ``kl_ref`` measures
    how far even an unleashed fine-tune drifts (RLHF's baseline); only recurrent
    runs, which cannot measure it yet, load it just when some config penalizes the KL. ``resume``: a run
    directory whose saved sources are used (its state holds the start already).

    Raises:
      ConfigError: any option that cannot work, before anything compiles.
    """
    config = configs[0]
    if resume is not None:
        path = Path(resume) / SOURCES_FILE
        if not path.is_file():
            require_reference(list(configs), None)
            return FineTune()
        sources = json.loads(path.read_text())
        init_from, init_seed, kl_ref = (
            sources.get("init_from"),
            sources.get("init_seed"),
            sources.get("kl_ref"),
        )
        if init_from is not None and kl_ref is None:
            kl_ref = init_from
        reference = None
        if kl_ref is not None and _wants_reference(configs):
            reference = load_reference(kl_ref, config, init_seed if kl_ref == init_from else None)
        require_reference(list(configs), reference)
        return FineTune(reference=reference, sources=sources)
    if init_seed is not None and init_from is None:
        raise ConfigError("--init-seed picks a seed of the --init-from run; give --init-from RUN_DIR too.")
    start = load_start(init_from, config, init_seed) if init_from is not None else None
    reference = None
    if kl_ref is not None:
        reference = load_reference(kl_ref, config)
    elif init_from is not None and _wants_reference(configs):
        reference = load_reference(init_from, config, init_seed)
    require_reference(list(configs), reference)
    sources = None
    if init_from is not None or kl_ref is not None:
        absolute = lambda p: None if p is None else str(Path(p).absolute())
        sources = {"init_from": absolute(init_from), "init_seed": init_seed, "kl_ref": absolute(kl_ref)}
    return FineTune(start=start, reference=reference, sources=sources)
