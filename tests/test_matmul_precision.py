"""``matmul_precision``: JAX's names, refused before anything compiles when wrong,
carried by every dot of the lowered programs (the env's too), keyed and recorded."""

import re

import jax
import jax.numpy as jnp
import pytest
from gymnax.environments.classic_control.cartpole import CartPole

from ppo_jax import compile_cache
from ppo_jax.config import MATMUL_PRECISIONS, ConfigError, PPOConfig, from_dict
from ppo_jax.driver import ChunkedRun
from ppo_jax.train import build

SMALL = dict(total_timesteps=256, num_envs=2, num_steps=32, num_minibatches=2, update_epochs=1)
# What each precision reads as in StableHLO's dot_general.
LOWERED = {
    "highest": "precision = [HIGHEST, HIGHEST]",
    "tensorfloat32": "precision = [HIGH, HIGH]",
    "bfloat16": "precision = [DEFAULT, DEFAULT]",
    "BF16_BF16_F32": "algorithm = <lhs_precision_type = bf16, rhs_precision_type = bf16, accumulation_type = f32",
}


class _MatmulCartPole(CartPole):
    """CartPole whose observation passes through a matmul: an env with a dot of its own."""

    def step_env(self, key, state, action, params):
        obs, state, reward, done, info = super().step_env(key, state, action, params)
        return obs @ jnp.eye(4), state, reward, done, info


def _dots(text: str) -> list[str]:
    return [line for line in text.splitlines() if "stablehlo.dot_general" in line]


def test_the_names_are_those_jax_takes():
    for name in MATMUL_PRECISIONS:
        with jax.default_matmul_precision(name):
            pass
    with pytest.raises(ValueError), jax.default_matmul_precision("tf32"):
        pass
    assert PPOConfig().matmul_precision == "highest"


def test_a_wrong_name_is_refused_with_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        from_dict({"matmul_precision": "tensorfloat"})
    message = str(err.value)
    assert "'matmul_precision'" in message and "'tensorfloat'" in message
    assert "Did you mean 'tensorfloat32'?" in message and "highest" in message


def test_the_cli_refuses_a_wrong_name_before_compiling(tmp_path, cli_main):
    out = tmp_path / "run"
    code, err = cli_main("train", "configs/cartpole.yaml", "--set", "matmul_precision=fp32", "--out", out)
    assert code == 2 and "'matmul_precision'" in err and "--set matmul_precision=fp32" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("precision", sorted(LOWERED))
def test_every_dot_of_the_update_and_the_env_carries_the_precision(precision):
    config = PPOConfig(**SMALL, matmul_precision=precision)
    plain, with_env_dot = build(config), build(config, env=_MatmulCartPole())
    hp = config.hyperparams()
    state = jax.eval_shape(plain.init, jax.random.PRNGKey(0), hp)
    counts = []
    for program in (plain, with_env_dot):
        dots = _dots(jax.jit(program.step).lower(state, hp).as_text())
        assert dots and all(LOWERED[precision] in d for d in dots), dots[:2]
        counts.append(len(dots))
    assert counts[1] > counts[0]  # the env's own matmul, at the same precision


def test_the_drivers_chunk_program_carries_it():
    run = ChunkedRun(PPOConfig(**SMALL, matmul_precision="tensorfloat32"), [0, 1], target_chunks=1)
    text = run._chunk_fn(run.plan[0]).lower(run.abstract_state(), run.hp).as_text()
    dots = _dots(text)
    assert dots and all(LOWERED["tensorfloat32"] in d for d in dots)
    assert not re.search(r"precision = \[HIGHEST", text)


def test_it_is_part_of_the_compile_cache_key():
    keys = {compile_cache.digest(compile_cache.config_key(PPOConfig(matmul_precision=p))) for p in LOWERED}
    assert len(keys) == len(LOWERED)
