"""Property test: any generated config either trains for one update or is refused
with ConfigError — never another exception."""

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import ppo_jax
from ppo_jax.config import ConfigError

# Each setting: (valid values, invalid values).
_FIELDS = {
    "env_id": (
        st.sampled_from(["CartPole-v1", "Pendulum-v1", "Breakout-MinAtar"]),
        st.sampled_from(["Cartpole-v1", "", "Pong"]),
    ),
    "num_envs": (st.integers(1, 4), st.integers(-1, 0)),
    "num_steps": (st.integers(1, 12), st.integers(-1, 0)),
    "num_minibatches": (st.sampled_from([1, 2]), st.integers(-1, 0)),
    "update_epochs": (st.integers(1, 2), st.integers(-1, 0)),
    "network": (st.just("mlp"), st.sampled_from(["transformer", "MLP"])),
    "hidden_sizes": (
        st.lists(st.integers(1, 16), min_size=1, max_size=2),
        st.lists(st.integers(-2, 0), min_size=0, max_size=2),
    ),
    "activation": (st.sampled_from(["tanh", "relu"]), st.just("swish")),
    "normalize_obs": (st.booleans(), st.just("maybe")),
    "normalize_reward": (st.booleans(), st.just(3)),
    "learning_rate": (st.floats(1e-5, 1e-2), st.sampled_from([0.0, -1e-3, float("nan"), float("inf")])),
    "clip_eps": (st.floats(0.01, 0.5), st.floats(-0.5, 0.0)),
    "gamma": (st.floats(0.0, 1.0), st.floats(1.0001, 2.0)),
    "gae_lambda": (st.floats(0.0, 1.0), st.floats(-1.0, -0.0001)),
    "vf_clip": (st.none() | st.floats(0.01, 1.0), st.floats(-1.0, 0.0)),
    "target_kl": (st.none() | st.floats(0.001, 0.1), st.floats(-0.1, 0.0)),
}


@st.composite
def _values(draw):
    """Valid values, then (half of the time) one setting replaced by an invalid one: ``(values, broken)``."""
    values = {name: draw(valid) for name, (valid, _) in _FIELDS.items()}
    broken = draw(st.sampled_from([None] * len(_FIELDS) + sorted(_FIELDS)))
    if broken is not None:
        values[broken] = draw(_FIELDS[broken][1])
    return values, broken


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=_values())
def test_config_trains_one_update_or_is_refused(drawn):
    """An invalid value is refused (never silently accepted); valid ones may still be refused
    together (e.g. a batch that num_minibatches does not divide)."""
    values, broken = drawn
    try:
        config = ppo_jax.load_config(None, **values)
    except ConfigError:
        event("refused with ConfigError")
        return
    assert broken is None, f"invalid {broken} = {values[broken]!r} was accepted"
    event("trained one update")
    config = config.replace(total_timesteps=config.batch_size)  # exactly one update
    _, metrics = jax.jit(ppo_jax.make_train(config))(jax.random.PRNGKey(0))
    assert metrics["policy_loss"].shape == (1,)
    assert np.isfinite(np.asarray(metrics["value_loss"])).all()


@pytest.mark.parametrize("name", sorted(_FIELDS))
def test_every_invalid_value_alone_is_refused(name):
    """Each invalid value on an otherwise valid CartPole config, a few draws each."""
    invalid = _FIELDS[name][1]

    @settings(max_examples=4, deadline=None)
    @given(value=invalid)
    def check(value):
        with pytest.raises(ConfigError):
            ppo_jax.load_config(None, **{name: value})

    check()
