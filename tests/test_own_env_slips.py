"""A user's env written with a slip, as a new user makes them from the README alone: each is
refused before anything compiles or is written, in one message that names the env, what is
missing and what would be right (CLI: exit 2, no traceback, no run directory)."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from flax import struct
from gymnax.environments import environment, spaces

import ppo_jax
from ppo_jax.config import ConfigError

ROOT = Path(__file__).parent.parent
HERE = "tests.test_own_env_slips"


@struct.dataclass
class Params:
    max_steps_in_episode: int = 20


@struct.dataclass
class State:
    position: jax.Array
    time: int


@struct.dataclass
class StateWithoutTime:
    position: jax.Array


class Line(environment.Environment):
    """A correct env: walk right to cell 5."""

    state_class = State

    def __init__(self, length: int = 6):
        self.length = length

    @property
    def default_params(self):
        return Params()

    def _new(self, position, state=None):
        if self.state_class is State:
            return State(position=position, time=0 if state is None else state.time + 1)
        return self.state_class(position=position)

    def reset_env(self, key, params):
        state = self._new(jnp.asarray(0))
        return jax.nn.one_hot(state.position, self.length), state

    def step_env(self, key, state, action, params):
        state = self._new(jnp.clip(state.position + 2 * action - 1, 0, self.length - 1), state)
        at_goal = state.position == self.length - 1
        return jax.nn.one_hot(state.position, self.length), state, at_goal.astype(jnp.float32), at_goal, {}

    def action_space(self, params):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (self.length,), jnp.float32)


class NoTime(Line):
    state_class = StateWithoutTime


class NoProperty(Line):
    def default_params(self):  # the slip: no @property
        return Params()


class OwnStep(Line):
    def step(self, key, state, action, params=None):
        return super().step(key, state, action, params)


class NotAnEnvironment:
    """Every method gymnax's Environment has a user define, but not the base class."""

    default_params = Params()
    reset_env = Line.reset_env
    step_env = Line.step_env
    action_space = Line.action_space
    observation_space = Line.observation_space
    length = 6
    state_class = State
    _new = Line._new


class WrongStepArity(Line):
    def step_env(self, key, state, action, params):
        return super().step_env(key, state, action, params)[:4]


@pytest.mark.parametrize(
    "name, message",
    [
        ("NoTime", r"NoTime: its state \(StateWithoutTime\) has no 'time' field.*Add 'time: int'"),
        ("NoProperty", r"NoProperty.default_params is a method.*Put @property"),
        ("OwnStep", r"OwnStep overrides Environment.step.*Move what it does into step_env"),
        ("NotAnEnvironment", r"NotAnEnvironment does not subclass gymnax's Environment"),
        ("WrongStepArity", r"step_env returns tuple of length 4.*\(obs, state, reward, done, info\)"),
    ],
)
def test_a_slip_is_one_message_naming_the_env(name, message):
    with pytest.raises(ConfigError, match=f"{HERE}:{name}") as err:
        ppo_jax.load_config(None, env_id=f"{HERE}:{name}")
    assert err.match(message)


def test_the_correct_env_passes_and_an_instance_is_checked_too():
    ppo_jax.load_config(None, env_id=f"{HERE}:Line")
    config = ppo_jax.PPOConfig(env_id="line", num_envs=2, num_steps=8, total_timesteps=16, num_minibatches=1)
    with pytest.raises(ConfigError, match="has no 'time' field"):
        ppo_jax.build(config, env=NoTime())


def test_an_own_is_truncated_needs_no_time_field():
    class CountsNothing(NoTime):
        def is_truncated(self, state, params):
            return state.position < 0

    ppo_jax.build(
        ppo_jax.PPOConfig(env_id="x", num_envs=2, num_steps=8, total_timesteps=16, num_minibatches=1),
        env=CountsNothing(),
    )


def test_an_unimportable_module_says_where_to_run_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match=r"cannot import 'corridor_env'.*run from the directory that contains"
    ):
        ppo_jax.load_config(None, env_id="corridor_env:Corridor")
    with pytest.raises(ConfigError, match="Did you mean 'jumanji:Snake-v1'"):
        ppo_jax.load_config(None, env_id="jumanj:Snake-v1")


@pytest.mark.parametrize(
    "env_kwargs, message",
    [
        ({"length:8": None}, r"key 'length:8' has no value \(YAML reads 'length:8' .* write 'length: 8'\)"),
        ({"length": None}, r"key 'length' has no value"),
    ],
)
def test_a_key_without_a_value_is_refused(env_kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ppo_jax.load_config(None, env_id=f"{HERE}:Line", env_kwargs=env_kwargs)


@pytest.mark.parametrize(
    "sets, message",
    [
        ([f"env_id={HERE}:NoTime"], "has no 'time' field"),
        ([f"env_id={HERE}:Line", "env_kwargs={length:8}"], "write 'length: 8'"),
    ],
    ids=["no_time_field", "yaml_without_space"],
)
def test_cli_refuses_a_slip_with_exit_2_and_writes_nothing(tmp_path, sets, message):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "ppo_jax.cli", "train", "configs/cartpole.yaml", "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    env = {**os.environ, "PPO_JAX_NO_CACHE": "1"}
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not out.exists()
