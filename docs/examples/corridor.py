"""A complete environment of your own, ready to copy: a corridor to walk to its end.

Train it from Python::

    import jax, ppo_jax
    from corridor import Corridor

    config = ppo_jax.PPOConfig(env_id="corridor", total_timesteps=8192, learning_rate=3e-3)
    state, metrics = jax.jit(ppo_jax.make_train(config, env=Corridor()))(jax.random.PRNGKey(0))

or from the command line, by import path (the current directory is on the import path)::

    ppo-jax train configs/cartpole.yaml --set env_id=corridor:Corridor --set "env_kwargs={length: 8}"
"""

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class CorridorParams:
    max_steps_in_episode: int = 20  # the time limit: an episode cut here is a truncation


@struct.dataclass
class CorridorState:
    position: jax.Array
    time: int  # incremented by step_env; gymnax's is_truncated compares it with the limit


class Corridor(environment.Environment):
    """Walk from cell 0 to the last cell (reward 1, the episode ends); action 0 steps left, 1 right."""

    def __init__(self, length: int = 6):
        self.length = length

    @property
    def default_params(self) -> CorridorParams:
        return CorridorParams()

    def _obs(self, state: CorridorState) -> jax.Array:
        return jax.nn.one_hot(state.position, self.length)

    def reset_env(self, key, params):
        state = CorridorState(position=jnp.asarray(0), time=0)
        return self._obs(state), state

    def step_env(self, key, state, action, params):
        position = jnp.clip(state.position + 2 * action - 1, 0, self.length - 1)
        state = CorridorState(position=position, time=state.time + 1)
        at_goal = position == self.length - 1  # a real ending, never the time limit
        return self._obs(state), state, at_goal.astype(jnp.float32), at_goal, {}

    def action_space(self, params):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (self.length,), jnp.float32)
