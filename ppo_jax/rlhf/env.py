"""Writing a response as a gymnax environment: the state is the prompt and the response so far,
the action the next token, the reward the reward model's normalized score when the response ends.

A response ends at its EOS or when ``response_len`` tokens are written; the
episode terminates there (γ = 1, nothing to bootstrap). The reward model reads
the text one token at a time through its own key/value cache, kept in the
state, so scoring costs one cached position per step rather than a whole
forward pass; its head at the last token is exactly the score the reward
model was trained to give (``reward.score``).

RLHF aligns episodes: every sequence of a batch starts together and lasts at
most ``response_len`` steps. So the PPO stage calls ``reset_env`` once and
``step_env`` ``response_len`` times (no auto-reset); after its end a response
is absorbing — it takes no more tokens (PAD stays PAD) and pays nothing.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from ppo_jax.networks import transformer
from ppo_jax.rlhf import text


@struct.dataclass
class EnvState(environment.EnvState):
    tokens: jax.Array  # [prompt_len + response_len] int32, PAD where not written
    written: jax.Array  # [] int32, response tokens written so far
    done: jax.Array  # [] bool, the response has ended
    rm_cache: Any  # the reward model's keys and values, one sequence
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    prompts: Any = None  # [N, prompt_len] int32 array, drawn uniformly at reset
    rm_params: Any = None
    rm_mean: Any = 0.0  # the normalization of reward.normalize (float or 0-d array)
    rm_std: Any = 1.0
    max_steps_in_episode: int = 1


class ResponseEnv(environment.Environment[EnvState, EnvParams]):
    def __init__(self, tf_config: transformer.TransformerConfig, prompt_len: int, response_len: int):
        super().__init__()
        self.tf_config, self.prompt_len, self.response_len = tf_config, prompt_len, response_len

    @property
    def name(self) -> str:
        return "rlhf-response"

    @property
    def num_actions(self) -> int:
        return self.tf_config.vocab_size

    def params(self, prompts, rm_params, rm_mean, rm_std) -> EnvParams:
        return EnvParams(
            prompts=prompts,
            rm_params=rm_params,
            rm_mean=rm_mean,
            rm_std=rm_std,
            max_steps_in_episode=self.response_len,
        )

    def reset_env(self, key, params: EnvParams):
        prompt = params.prompts[jax.random.randint(key, (), 0, params.prompts.shape[0])]
        tokens = jnp.full((self.prompt_len + self.response_len,), text.PAD, jnp.int32)
        tokens = tokens.at[: self.prompt_len].set(prompt)
        _, _, cache = transformer.prefill(self.tf_config, params.rm_params, prompt[None])
        state = EnvState(tokens=tokens, written=jnp.int32(0), done=jnp.bool_(False), rm_cache=cache, time=0)
        return self.get_obs(state), state

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        action = jnp.asarray(action, jnp.int32)
        pos = self.prompt_len + state.written
        token = jnp.where(state.done, text.PAD, action)
        _, head, cache = transformer.step(
            self.tf_config,
            params.rm_params,
            token[None],
            jnp.minimum(pos, self.tf_config.max_len - 1),
            state.rm_cache,
        )
        ends = ~state.done & ((action == text.EOS) | (state.written + 1 >= self.response_len))
        reward = jnp.where(ends, (head[0] - params.rm_mean) / params.rm_std, 0.0)
        tokens = jnp.where(
            state.done, state.tokens, state.tokens.at[jnp.minimum(pos, len(state.tokens) - 1)].set(token)
        )
        new = EnvState(
            tokens=tokens,
            written=state.written + (~state.done).astype(jnp.int32),
            done=state.done | ends,
            rm_cache=jax.tree.map(lambda a, b: jnp.where(state.done, a, b), state.rm_cache, cache),
            time=state.time + 1,
        )
        return self.get_obs(new), new, reward.astype(jnp.float32), new.done, {}

    def get_obs(self, state: EnvState, params=None, key=None):
        return state.tokens

    def is_terminal(self, state: EnvState, params: EnvParams):
        return state.done

    def action_space(self, params=None):
        return spaces.Discrete(self.tf_config.vocab_size)

    def observation_space(self, params=None):
        return spaces.Box(0, self.tf_config.vocab_size - 1, (self.prompt_len + self.response_len,), jnp.int32)
