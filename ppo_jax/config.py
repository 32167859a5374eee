"""Settings: one frozen dataclass, split into static and traced settings.

Static settings fix shapes and program structure (env, sizes, network, flags):
changing one recompiles. Traced settings are numbers that enter the compiled
program as arguments (``Hyperparams``), so they can be vmapped over as a grid.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import yaml
from flax import struct


class ConfigError(ValueError):
    """A user error in the settings: names the setting, the value and what is valid."""


def _static(default, help_: str):
    return dataclasses.field(default=default, metadata={"traced": False, "help": help_})


def _traced(default, help_: str):
    return dataclasses.field(default=default, metadata={"traced": True, "help": help_})


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Every setting of a PPO run. Defaults are the classic CartPole settings."""

    # --- static: shapes and structure -------------------------------------
    env_id: str = _static(
        "CartPole-v1", "gymnax id, 'suite:name' (e.g. jumanji:Snake-v1) or 'package.module:ClassOrFactory'"
    )
    env_kwargs: dict[str, Any] = dataclasses.field(
        default_factory=dict,
        metadata={"traced": False, "help": "keyword arguments of the env's constructor (suite or user env)"},
    )
    obs_indices: Optional[tuple[int, ...]] = _static(
        None, "keep only these features of a flat observation (null: all)"
    )
    max_episode_steps: Optional[int] = _static(
        None, "time limit in steps (null: the env params' max_steps_in_episode)"
    )
    total_timesteps: int = _static(500_000, "environment steps over all envs")
    num_envs: int = _static(4, "parallel environments")
    num_steps: int = _static(128, "steps per env per rollout")
    update_epochs: int = _static(4, "passes over each rollout")
    num_minibatches: int = _static(4, "minibatches per epoch")
    network: str = _static(
        "mlp", "torso: 'mlp', 'cnn' (image observations) or 'transformer' (token-id observations)"
    )
    hidden_sizes: tuple[int, ...] = _static((64, 64), "MLP widths (CNN: dense widths)")
    activation: str = _static("tanh", "'tanh' or 'relu'")
    shared_torso: bool = _static(False, "one torso for actor and critic")
    recurrent: Optional[str] = _static(None, "recurrent core after the torso: 'gru', 'lstm' or null (none)")
    recurrent_size: int = _static(128, "width of the recurrent core's state")
    bptt_chunk: Optional[int] = _static(
        None, "recurrent runs: backpropagate through chunks of this many steps (null: the whole rollout)"
    )
    d_model: int = _static(64, "network: transformer: width of the residual stream")
    num_layers: int = _static(2, "network: transformer: causal attention blocks")
    num_heads: int = _static(4, "network: transformer: attention heads (a divisor of d_model)")
    log_std_init: float = _static(0.0, "initial log std of the Gaussian head")
    normalize_obs: bool = _static(False, "running mean/var observation normalization")
    normalize_reward: bool = _static(False, "scale rewards by the std of discounted returns")
    reward_clip: Optional[float] = _static(
        10.0,
        "with normalize_reward: clip scaled rewards to [-reward_clip, reward_clip] (CleanRL: 10; null = off)",
    )
    normalize_advantages: bool = _static(True, "per-minibatch advantage normalization")
    anneal_lr: bool = _static(True, "linear learning-rate decay to 0")
    matmul_precision: str = _static(
        "highest",
        "float32 matmul/conv precision of the whole program, env included, as JAX names it: 'highest' "
        "(full float32), 'tensorfloat32' or 'bfloat16' (faster on GPUs/TPUs, may change learning), "
        "'default' (the backend's own), or a jax.lax.DotAlgorithmPreset name",
    )

    # --- traced: numbers that may be vmapped as a grid ---------------------
    learning_rate: float = _traced(2.5e-4, "Adam step size")
    clip_eps: float = _traced(0.2, "ratio clipping ε")
    ent_coef: float = _traced(0.01, "entropy bonus coefficient c2")
    vf_coef: float = _traced(0.5, "value loss coefficient c1")
    gamma: float = _traced(0.99, "discount γ")
    gae_lambda: float = _traced(0.95, "GAE λ")
    max_grad_norm: float = _traced(0.5, "global gradient-norm clip")
    vf_clip: Optional[float] = _traced(None, "value clipping range (None = off)")
    target_kl: Optional[float] = _traced(
        None,
        "stop a rollout's minibatch steps before one whose approx_kl > 1.5 × target_kl (SB3's rule; None = off)",
    )
    kl_ref_coef: float = _traced(0.0, "β of the per-step KL penalty to a frozen reference policy (0 = off)")
    kl_ref_target: Optional[float] = _traced(
        None, "adaptive β: target of kl_ref, the mean per-step KL to the reference (None = fixed β)"
    )
    kl_ref_horizon: float = _traced(10_000.0, "adaptive β: env steps over which β closes the KL gap")

    # --- derived ------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    @property
    def env_steps(self) -> int:
        """Environment steps actually taken: whole rollouts only."""
        return self.num_updates * self.batch_size

    def hyperparams(self) -> "Hyperparams":
        return Hyperparams.from_config(self)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        if self.obs_indices is not None:
            out["obs_indices"] = list(self.obs_indices)
        return out

    def replace(self, **changes) -> "PPOConfig":
        return from_dict({**self.to_dict(), **changes})


# The values jax_default_matmul_precision takes: the precision names, then the dot algorithm presets.
MATMUL_PRECISIONS = ("highest", "float32", "high", "tensorfloat32", "bfloat16", "default") + tuple(
    name for name in jax.lax.DotAlgorithmPreset.__members__ if name != "DEFAULT"
)

STATIC_FIELDS = tuple(f.name for f in dataclasses.fields(PPOConfig) if not f.metadata["traced"])
TRACED_FIELDS = tuple(f.name for f in dataclasses.fields(PPOConfig) if f.metadata["traced"])


@struct.dataclass
class Hyperparams:
    """The traced settings as float32 arrays: an argument of the compiled program.

    ``vf_clip``, ``target_kl`` and ``kl_ref_target`` hold NaN when off; whether they are on is
    static (read from the config), so NaN never reaches the math.
    """

    learning_rate: jnp.ndarray
    clip_eps: jnp.ndarray
    ent_coef: jnp.ndarray
    vf_coef: jnp.ndarray
    gamma: jnp.ndarray
    gae_lambda: jnp.ndarray
    max_grad_norm: jnp.ndarray
    vf_clip: jnp.ndarray
    target_kl: jnp.ndarray
    kl_ref_coef: jnp.ndarray
    kl_ref_target: jnp.ndarray  # NaN when off (fixed β)
    kl_ref_horizon: jnp.ndarray

    @classmethod
    def from_config(cls, config: PPOConfig) -> "Hyperparams":
        values = {}
        for name in TRACED_FIELDS:
            value = getattr(config, name)
            values[name] = jnp.asarray(math.nan if value is None else value, jnp.float32)
        return cls(**values)


# ---------------------------------------------------------------------------
# Building and checking configs
# ---------------------------------------------------------------------------

_FIELD_TYPES = typing.get_type_hints(PPOConfig)
_CONTINUOUS_ONLY = ("log_std_init",)


def _unknown_key_message(key: str, where: str) -> str:
    known = [f.name for f in dataclasses.fields(PPOConfig)]
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{where}: unknown setting '{key}'.{hint} Known settings: {', '.join(known)}."


def _coerce(name: str, value: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the field's type, or raise ConfigError."""
    kind = _FIELD_TYPES[name]
    optional = typing.get_origin(kind) is typing.Union and type(None) in typing.get_args(kind)
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: '{name}' must be {expected}, got {value!r}.")

    if typing.get_origin(kind) is tuple:
        return _to_int_tuple(value, bad)
    if kind is dict or typing.get_origin(kind) is dict:
        return _to_mapping(value, bad)
    convert = _CONVERSIONS.get(kind)
    if convert is None:
        raise AssertionError(f"no coercion for {name}: {kind}")
    return convert(value, bad)


def _to_bool(value: Any, bad: Callable[[str], ConfigError]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad("true or false")


def _to_int(value: Any, bad: Callable[[str], ConfigError]) -> int:
    if isinstance(value, bool):
        raise bad("an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise bad("an integer") from None
        if number.is_integer():
            return int(number)
    raise bad("an integer")


def _to_float(value: Any, bad: Callable[[str], ConfigError]) -> float:
    if isinstance(value, bool):
        raise bad("a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise bad("a number") from None
    raise bad("a number")


def _to_str(value: Any, bad: Callable[[str], ConfigError]) -> str:
    if isinstance(value, str):
        return value
    raise bad("a string")


def _to_int_tuple(value: Any, bad: Callable[[str], ConfigError]) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise bad("a list of integers such as [64, 64]")
    try:
        return tuple(_coerce_int_item(v) for v in value)
    except (TypeError, ValueError):
        raise bad("a list of integers such as [64, 64]") from None


def _to_mapping(value: Any, bad: Callable[[str], ConfigError]) -> dict:
    if value is None:
        return {}
    if isinstance(value, str):  # from --set: a YAML/JSON mapping such as {backend: mjx}
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise bad("a mapping such as {backend: mjx}") from None
        value = {} if value is None else value
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise bad("a mapping of names to values such as {backend: mjx}")
    return dict(value)


_CONVERSIONS: dict[Any, Callable[[Any, Callable[[str], ConfigError]], Any]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
}


def _coerce_int_item(v: Any) -> int:
    if isinstance(v, bool):
        raise TypeError
    if isinstance(v, str):
        v = float(v.strip())
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError
        v = int(v)
    if not isinstance(v, int):
        raise TypeError
    return v


def from_dict(
    values: dict[str, Any], where: str = "config", env: Any = None, env_params: Any = None
) -> PPOConfig:
    """Build a validated config from plain values; unknown keys are refused.

    ``env``/``env_params``: an env instance the config will train (see ``validate``).
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of setting: value, got {type(values).__name__}.")
    kwargs = {}
    for key, value in values.items():
        if key not in _FIELD_TYPES:
            raise ConfigError(_unknown_key_message(str(key), where))
        kwargs[key] = _coerce(key, value, where)
    config = PPOConfig(**kwargs)
    validate(config, where, env, env_params)
    return config


def load_config(path: str | Path | None = None, **overrides: Any) -> PPOConfig:
    """Read a YAML preset strictly, apply ``overrides``, and validate.

    Args:
      path: a YAML file of ``setting: value`` lines, or None for the defaults.
      **overrides: settings that replace the file's.

    Returns:
      The validated, frozen ``PPOConfig``.

    Raises:
      ConfigError: unreadable or malformed file, unknown keys, bad values; the
        message names where the bad value came from (the file or the keyword).
    """
    return load_config_from(path, overrides, source=KEYWORD_SOURCE)


KEYWORD_SOURCE = "load_config(..., {key}={value!r})"
CLI_SOURCE = "--set {key}={value}"


def load_config_from(
    path: str | Path | None, overrides: dict[str, Any], source: str = CLI_SOURCE
) -> PPOConfig:
    """``load_config`` whose overrides came from ``source``, a pattern such as
    ``"--set {key}={value}"``: error messages blame the value's real source."""
    values = _read_yaml(path)
    where = "config" if path is None else str(path)
    blame = lambda keys: ", ".join(source.format(key=k, value=overrides[k]) for k in keys)
    for key in overrides:
        if key not in _FIELD_TYPES:
            raise ConfigError(_unknown_key_message(str(key), blame([key])))
        _coerce(key, overrides[key], blame([key]))
    try:
        return from_dict({**values, **overrides}, where)
    except ConfigError:
        if not overrides:
            raise
    # Which overrides does the failure need? Without each culprit the rest validates.
    culprits = [k for k in overrides if _valid({**values, **{o: v for o, v in overrides.items() if o != k}})]
    if culprits:
        where = blame(culprits) + ("" if path is None else f" (on {path})")
    return from_dict({**values, **overrides}, where)  # raises again, now naming its source


# Starting points for an env without a preset, by action type. Discrete: the
# defaults of PPOConfig (CleanRL's classic-control PPO). Continuous: CleanRL's
# continuous PPO (lr 3e-4, 10 epochs of 32 minibatches of a 2,048-step batch,
# no entropy bonus, observations and rewards normalized), its batch gathered
# from 8 envs × 256 steps.
CONTINUOUS_DEFAULTS = dict(
    total_timesteps=1_000_000,
    num_envs=8,
    num_steps=256,
    update_epochs=10,
    num_minibatches=32,
    learning_rate=3e-4,
    ent_coef=0.0,
    normalize_obs=True,
    normalize_reward=True,
)


def env_defaults(env_id: str) -> dict[str, Any]:
    """Settings to train ``env_id`` without a preset, chosen by its action type."""
    from ppo_jax import envs

    try:
        parsed = envs.parse_env_id(env_id)
    except envs.EnvError as err:
        raise ConfigError(f"--env: {err}") from None
    if parsed.kind == "gymnax" and env_id not in envs.registered_env_ids():
        from_dict({"env_id": env_id}, where="--env")  # raises, naming close matches
    try:  # suite and import-path ids too: build the env once to read its action space
        env, params = envs.make(env_id)
        discrete = type(env.action_space(params)).__name__ == "Discrete"
    except envs.EnvError as err:  # a missing suite package (naming its extra), an unknown user module
        raise ConfigError(f"--env: {err}") from None
    except Exception as err:  # a suite or user env that fails while being built
        raise ConfigError(f"--env {env_id}: building the env failed: {type(err).__name__}: {err}") from None
    return {"env_id": env_id, **({} if discrete else CONTINUOUS_DEFAULTS)}


def _valid(values: dict[str, Any]) -> bool:
    try:
        from_dict(values)
    except ConfigError:
        return False
    return True


def _read_yaml(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    where = str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such config file.") from None
    except OSError as err:
        raise ConfigError(f"{where}: cannot read the config file ({err.strerror}).") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: malformed YAML: {err}") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{where}: expected a mapping of setting: value, got {type(loaded).__name__}.")
    return loaded


def validate(config: PPOConfig, where: str = "config", env: Any = None, env_params: Any = None) -> None:
    """Check ranges and consistency; raise ConfigError naming what is wrong.

    The env is built (from ``config.env_id``, or ``env`` when given: then the id
    is only its label) and checked against the settings, before anything compiles.
    """

    def fail(msg: str) -> None:
        raise ConfigError(f"{where}: {msg}")

    _validate_network(config, fail)
    _validate_batch(config, fail)
    _validate_numbers(config, fail)
    _validate_env_kwargs(config.env_kwargs, fail)
    _validate_env(config, fail, env, env_params)


def _validate_network(config: PPOConfig, fail) -> None:
    """The sizes of the loop and the network's choices."""
    for name in ("total_timesteps", "num_envs", "num_steps", "update_epochs", "num_minibatches"):
        value = getattr(config, name)
        if value <= 0:
            fail(f"'{name}' must be a positive integer, got {value}.")
    if not config.hidden_sizes or any(h <= 0 for h in config.hidden_sizes):
        fail(
            f"'hidden_sizes' must be a non-empty list of positive integers, got {list(config.hidden_sizes)}."
        )
    if config.activation not in ("tanh", "relu"):
        fail(f"'activation' must be 'tanh' or 'relu', got {config.activation!r}.")
    if config.network not in ("mlp", "cnn", "transformer"):
        fail(f"'network' must be 'mlp', 'cnn' or 'transformer', got {config.network!r}.")
    _validate_transformer(config, fail)
    _validate_recurrent(config, fail)
    if config.matmul_precision not in MATMUL_PRECISIONS:
        close = difflib.get_close_matches(config.matmul_precision, MATMUL_PRECISIONS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        fail(
            f"'matmul_precision' must be one of JAX's names for a matmul precision, got "
            f"{config.matmul_precision!r}.{hint} Valid: {', '.join(MATMUL_PRECISIONS)}."
        )


def _validate_transformer(config: PPOConfig, fail) -> None:
    for name in ("d_model", "num_layers", "num_heads"):
        value = getattr(config, name)
        if value <= 0:
            fail(f"'{name}' must be a positive integer, got {value}.")
    if config.d_model % config.num_heads:
        fail(
            f"'num_heads' = {config.num_heads} must divide 'd_model' = {config.d_model} "
            "(each head gets d_model / num_heads dimensions)."
        )
    if config.network != "transformer":
        return
    if config.recurrent is not None:
        fail(
            f"'network: transformer' reads the whole sequence in each observation, so it takes no "
            f"recurrent core; got recurrent = {config.recurrent!r}. Set recurrent: null."
        )
    if config.normalize_obs:
        fail(
            "'normalize_obs' would turn the token ids that 'network: transformer' embeds into "
            "floats; set normalize_obs: false."
        )


def _validate_batch(config: PPOConfig, fail) -> None:
    """The rollout splits into minibatches, and the budget holds a rollout."""
    if config.batch_size % config.num_minibatches:
        fail(
            f"num_envs × num_steps = {config.num_envs} × {config.num_steps} = {config.batch_size} "
            f"is not divisible by num_minibatches = {config.num_minibatches}; "
            "pick num_minibatches among its divisors."
        )
    if config.total_timesteps < config.batch_size:
        fail(
            f"'total_timesteps' = {config.total_timesteps} is smaller than one rollout "
            f"(num_envs × num_steps = {config.batch_size}); give at least {config.batch_size}."
        )


def _validate_numbers(config: PPOConfig, fail) -> None:
    """The traced settings' ranges (and the optional ones: a positive number or null)."""
    positive = ("learning_rate", "clip_eps", "max_grad_norm")
    for name in positive:
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            fail(f"'{name}' must be a positive number, got {value}.")
    for name in ("ent_coef", "vf_coef"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            fail(f"'{name}' must be a number ≥ 0, got {value}.")
    for name in ("gamma", "gae_lambda"):
        value = getattr(config, name)
        if not (0.0 <= value <= 1.0):
            fail(f"'{name}' must lie in [0, 1], got {value}.")
    if not (math.isfinite(config.kl_ref_coef) and config.kl_ref_coef >= 0):
        fail(f"'kl_ref_coef' must be a number ≥ 0 (0: no KL penalty), got {config.kl_ref_coef}.")
    if not (math.isfinite(config.kl_ref_horizon) and config.kl_ref_horizon > 0):
        fail(f"'kl_ref_horizon' must be a positive number of env steps, got {config.kl_ref_horizon}.")
    if config.kl_ref_target is not None and config.kl_ref_coef == 0:
        fail(
            "'kl_ref_target' adapts β by multiplying it, so it needs a starting 'kl_ref_coef' > 0 "
            "(Ziegler et al. start at 0.1 or so); got kl_ref_coef = 0."
        )
    for name in ("vf_clip", "target_kl", "kl_ref_target", "reward_clip"):
        value = getattr(config, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            fail(f"'{name}' must be a positive number or null (off), got {value}.")
    if not math.isfinite(config.log_std_init):
        fail(f"'log_std_init' must be finite, got {config.log_std_init}.")
    if config.max_episode_steps is not None and config.max_episode_steps <= 0:
        fail(f"'max_episode_steps' must be a positive integer or null, got {config.max_episode_steps}.")


def recurrent_reference_refusal(what: str, recurrent: Optional[str]) -> str:
    """Why ``what`` (a KL penalty, or a reference given to the trainer) is refused for a
    recurrent run: said once for the config check and the trainer's."""
    return (
        f"{what} is not supported yet for recurrent policies (recurrent = {recurrent!r}): the reference's "
        "log-probabilities would need a carry of their own. Set kl_ref_coef: 0 and no kl_ref_target "
        "(no --kl-ref), or recurrent: null; --init-from alone works for recurrent runs."
    )


def _validate_recurrent(config: PPOConfig, fail) -> None:
    if config.recurrent not in (None, "gru", "lstm"):
        fail(f"'recurrent' must be 'gru', 'lstm' or null (no recurrent core), got {config.recurrent!r}.")
    if config.recurrent_size <= 0:
        fail(f"'recurrent_size' must be a positive integer, got {config.recurrent_size}.")
    if config.recurrent is None:
        if config.bptt_chunk is not None:
            fail("'bptt_chunk' applies to recurrent runs only; set 'recurrent: gru' or 'lstm', or drop it.")
        return
    if config.kl_ref_coef > 0 or config.kl_ref_target is not None:
        fail(
            recurrent_reference_refusal(
                f"a KL penalty to a reference policy (kl_ref_coef = {config.kl_ref_coef}"
                + ("" if config.kl_ref_target is None else f", kl_ref_target = {config.kl_ref_target}")
                + ")",
                config.recurrent,
            )
        )
    chunk = config.num_steps if config.bptt_chunk is None else config.bptt_chunk
    if chunk <= 0 or config.num_steps % chunk:
        fail(
            f"'bptt_chunk' = {chunk} must be a positive divisor of num_steps = {config.num_steps} "
            "(each rollout is cut into whole chunks)."
        )
    sequences = config.num_envs * (config.num_steps // chunk)
    if sequences % config.num_minibatches:
        what = (
            f"num_envs = {config.num_envs}"
            if chunk == config.num_steps
            else f"num_envs × num_steps / bptt_chunk = {config.num_envs} × {config.num_steps} / {chunk} = {sequences}"
        )
        fail(
            f"a recurrent run's minibatches hold whole sequences, so num_minibatches = {config.num_minibatches} "
            f"must divide the number of sequences, {what}; pick num_minibatches among its divisors"
            + (
                " or set 'bptt_chunk' to cut the rollout into more sequences."
                if chunk == config.num_steps
                else "."
            )
        )


def _validate_env_kwargs(env_kwargs: Any, fail) -> None:
    """Refuse a key without a value: YAML reads ``{length:8}`` (no space) as ``{'length:8': None}``."""
    if env_kwargs is None:
        return
    if not isinstance(env_kwargs, dict):
        fail(f"'env_kwargs' must be a mapping of argument: value, got {type(env_kwargs).__name__}.")
    for key, value in env_kwargs.items():
        if value is None:
            hint = ""
            if isinstance(key, str) and ":" in key:
                name, _, rest = key.partition(":")
                hint = f" (YAML reads '{key}' without a space as one key: write '{name}: {rest}')"
            fail(
                f"'env_kwargs' key {key!r} has no value{hint}. YAML needs a space after the colon, "
                "as in env_kwargs={length: 8}; leave a key out to keep its default."
            )


def _validate_env(config: PPOConfig, fail, env: Any = None, env_params: Any = None) -> None:
    from ppo_jax import envs  # late: keeps gymnax off the import path of config users

    try:
        spec = envs.check_config(config, env, env_params)
    except envs.EnvError as err:
        fail(str(err))
    except Exception as err:  # a user env or suite that fails while being built or inspected
        fail(f"{config.env_id}: building the env and reading its spaces failed: {type(err).__name__}: {err}")
    if config.network == "cnn" and len(spec.obs_shape) != 3:
        fail(
            f"'network: cnn' needs image observations [H, W, C]; {config.env_id} observes "
            f"shape {spec.obs_shape}. Use 'network: mlp'."
        )
    tokens = spec.obs_vocab > 0 and len(spec.obs_shape) == 1
    if config.network == "transformer" and not (tokens and spec.discrete):
        fail(
            f"'network: transformer' needs token-id observations (a sequence of integer ids in a Box "
            f"space [0, V - 1]) "
            f"and discrete actions; {config.env_id} observes shape {spec.obs_shape}"
            + ("" if tokens else ", not token ids")
            + ("" if spec.discrete else ", with continuous actions")
            + ". Use 'network: mlp', or a token env such as ppo_jax.envs.tokens:Fluency with "
            "env_kwargs: {obs: ids}."
        )
    defaults = PPOConfig()
    if spec.discrete:
        for name in _CONTINUOUS_ONLY:
            if getattr(config, name) != getattr(defaults, name):
                fail(f"'{name}' applies to continuous actions only; {config.env_id} has discrete actions.")
