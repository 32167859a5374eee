"""Learning checks. The quick one runs in CI; each preset's check at its stated
budget is marked slow (``pytest -m slow``), 4 seeds vmapped as the CLI runs them."""

from pathlib import Path

import jax
import numpy as np
import pytest

import ppo_jax
from ppo_jax.driver import seed_keys
from ppo_jax.logs import final_returns

CONFIGS = Path(__file__).parent.parent / "configs"

# Mean over 4 seeds of the return of episodes finished in the last 5% of training.
THRESHOLDS = {
    "cartpole": 475.0,
    "acrobot": -100.0,
    "pendulum": -200.0,
    "mountaincar_continuous": 70.0,
    "breakout_minatar": 25.0,
    "space_invaders_minatar": 100.0,
    "asterix_minatar": 10.0,
    "freeway_minatar": 50.0,
}


def _train_seeds(config, seeds):
    _, metrics = jax.jit(jax.vmap(ppo_jax.make_train(config)))(seed_keys(seeds))
    return final_returns(jax.device_get(metrics))


def test_cartpole_learns_quickly():
    # A fifth of the preset's budget, one seed: far past a random policy (≈22 steps).
    config = ppo_jax.load_config(CONFIGS / "cartpole.yaml", total_timesteps=100_000)
    (final,) = _train_seeds(config, [0])
    assert final >= 200.0, final


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(THRESHOLDS))
def test_preset_reaches_its_return(preset):
    config = ppo_jax.load_config(CONFIGS / f"{preset}.yaml")
    finals = _train_seeds(config, [0, 1, 2, 3])
    assert np.mean(finals) >= THRESHOLDS[preset], finals
    if preset == "cartpole":
        assert min(finals) >= 475.0, finals
