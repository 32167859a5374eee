"""The pipeline's settings: one YAML file, one section per stage, checked before anything compiles.

    data:   prompt_len, response_len, max_words          (shared by every stage)
    model:  d_model, num_layers, num_heads, mlp_ratio    (shared by every stage)
    sft:    ...   reward: ...   ppo: ...                 (each stage's own)

Every stage writes the whole file it ran with into its directory; a later stage
refuses a directory whose ``data`` or ``model`` differ from its own, since the
parameters would not fit or would mean something else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ppo_jax.config import ConfigError
from ppo_jax.networks.transformer import TransformerConfig
from ppo_jax.rlhf import text


@dataclasses.dataclass(frozen=True)
class Data:
    prompt_len: int = 16
    response_len: int = 24
    max_words: int = 4  # supervised responses are the next 1 … max_words words, then EOS


@dataclasses.dataclass(frozen=True)
class Model:
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4


@dataclasses.dataclass(frozen=True)
class SFT:
    steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    seed: int = 0
    eval_examples: int = 4096


@dataclasses.dataclass(frozen=True)
class Reward:
    num_pairs: int = 8192
    held_out_pairs: int = 2048
    label_temperature: float = 0.5  # τ of the Bradley–Terry labeler (ppo_jax.rlhf.labeler)
    temperature: float = 1.0  # of the reference that writes the pairs
    epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 3e-4
    seed: int = 0
    norm_samples: int = 2048  # reference responses that set the normalization


@dataclasses.dataclass(frozen=True)
class PPO:
    num_updates: int = 100
    batch_size: int = 64  # prompts (= responses) per rollout
    num_minibatches: int = 4
    update_epochs: int = 4
    learning_rate: float = 1e-4
    clip_eps: float = 0.2
    vf_coef: float = 0.1
    vf_clip: float = 0.2
    max_grad_norm: float = 1.0
    kl_coef: float = 0.05  # β, the start of the controller when kl_target is set
    kl_target: float | None = 6.0  # nats per response; null: β stays fixed
    kl_horizon: int = 10000
    temperature: float = 0.7
    gamma: float = 1.0
    gae_lambda: float = 0.95
    eval_prompts: int = 512
    samples_per_update: int = 16  # responses kept per update, for the gold score along training
    seed: int = 0


SECTIONS = {"data": Data, "model": Model, "sft": SFT, "reward": Reward, "ppo": PPO}


@dataclasses.dataclass(frozen=True)
class RLHFConfig:
    data: Data = Data()
    model: Model = Model()
    sft: SFT = SFT()
    reward: Reward = Reward()
    ppo: PPO = PPO()

    @property
    def transformer(self) -> TransformerConfig:
        m = self.model
        return TransformerConfig(
            text.VOCAB_SIZE,
            self.data.prompt_len + self.data.response_len,
            m.d_model,
            m.num_layers,
            m.num_heads,
            m.mlp_ratio,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def with_sets(self, sets: Mapping[str, Any]) -> RLHFConfig:
        """``{"ppo.kl_coef": 0.0, ...}`` applied and checked."""
        raw = self.to_dict()
        for dotted, value in sets.items():
            section, _, key = dotted.partition(".")
            if section not in SECTIONS or key not in raw[section]:
                raise ConfigError(f"--set {dotted}: no such setting; expected section.key, e.g. ppo.kl_coef.")
            raw[section][key] = value
        return from_dict(raw, "--set")


def _section(cls, raw: Any, where: str):
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {raw!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}.")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        default = getattr(cls(), name)
        kind = float if isinstance(default, float) or name == "kl_target" else type(default)
        if value is None and name == "kl_target":
            values[name] = None
        elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{where}.{name}: expected an integer, got {value!r}.")
        elif kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{where}.{name}: expected a number, got {value!r}.")
        else:
            values[name] = kind(value)
    return cls(**values)


def from_dict(raw: Mapping[str, Any], where: str) -> RLHFConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with sections {', '.join(SECTIONS)}.")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}.")
    config = RLHFConfig(**{k: _section(cls, raw.get(k), f"{where}: {k}") for k, cls in SECTIONS.items()})
    validate(config, where)
    return config


def load(path: str | Path) -> RLHFConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return from_dict(raw or {}, str(path))


def is_pipeline_config(path: str | Path) -> bool:
    """Whether ``path`` is a YAML mapping of this module's sections (an RLHF pipeline config), so that
    a command taking either kind (``ppo-jax sweep``) can tell it from a ``ppo-jax train`` preset."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, Mapping) and bool(raw) and set(raw) <= set(SECTIONS)


def _positive(where: str, **values) -> None:
    for name, value in values.items():
        if value is None or value <= 0:
            raise ConfigError(f"{where}: {name} must be > 0, got {value}.")


def validate(c: RLHFConfig, where: str) -> None:
    d, m, s, r, p = c.data, c.model, c.sft, c.reward, c.ppo
    _positive(f"{where}: data", prompt_len=d.prompt_len, response_len=d.response_len, max_words=d.max_words)
    _positive(f"{where}: model", d_model=m.d_model, num_layers=m.num_layers, num_heads=m.num_heads)
    if m.d_model % m.num_heads:
        raise ConfigError(f"{where}: model.d_model {m.d_model} is not a multiple of num_heads {m.num_heads}.")
    _positive(f"{where}: sft", steps=s.steps, batch_size=s.batch_size, learning_rate=s.learning_rate)
    if not 0 <= s.warmup_steps < s.steps:
        raise ConfigError(
            f"{where}: sft.warmup_steps must be in [0, steps = {s.steps}), got {s.warmup_steps}."
        )
    _positive(f"{where}: reward", num_pairs=r.num_pairs, batch_size=r.batch_size, temperature=r.temperature)
    if not r.label_temperature > 0:
        raise ConfigError(f"{where}: reward.label_temperature must be > 0, got {r.label_temperature}.")
    _positive(f"{where}: ppo", num_updates=p.num_updates, batch_size=p.batch_size, temperature=p.temperature)
    if p.batch_size % p.num_minibatches:
        raise ConfigError(
            f"{where}: ppo.batch_size {p.batch_size} is not a multiple of num_minibatches {p.num_minibatches}."
        )
    if p.kl_coef < 0 or (p.kl_target is not None and p.kl_target <= 0):
        raise ConfigError(f"{where}: ppo.kl_coef must be ≥ 0 and kl_target > 0 or null.")


def check_same_shapes(config: RLHFConfig, stage_config: RLHFConfig, stage_dir: Path, stage: str) -> None:
    """Refuse a stage directory whose data or model settings differ from ``config``'s."""
    for section in ("data", "model"):
        mine, theirs = getattr(config, section), getattr(stage_config, section)
        if mine != theirs:
            diff = [
                f"{section}.{k}: {getattr(theirs, k)} there, {getattr(mine, k)} here"
                for k in dataclasses.asdict(mine)
                if getattr(mine, k) != getattr(theirs, k)
            ]
            raise ConfigError(
                f"{stage_dir}: this {stage} stage ran with other {section} settings ({'; '.join(diff)}); "
                f"its parameters do not fit. Use the same config for every stage, or re-run '{stage}'."
            )
