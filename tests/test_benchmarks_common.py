"""The benchmark suite's shared rules, on small hand-computed cases."""

import numpy as np
import pytest

from benchmarks.common import final_return, reach


def test_reach_uses_the_fewest_recent_rollouts_holding_the_window():
    # (seconds, env_steps, episodes, return_sum)
    rollouts = [
        (1.0, 100, 2, 20.0),   # mean 10
        (2.0, 200, 2, 900.0),  # mean 450: window of 3 -> (900 + 20) / 4 = 230
        (3.0, 300, 1, 500.0),  # last 3+: 500 + 900 over 3 = 466.7 < 475
        (4.0, 400, 3, 1500.0), # last 3: 1500 / 3 = 500 >= 475
    ]
    assert reach(rollouts, 475.0, window=3) == {"seconds": 4.0, "env_steps": 400}
    assert reach(rollouts, 466.0, window=3) == {"seconds": 3.0, "env_steps": 300}


def test_reach_needs_a_full_window_and_handles_negative_thresholds():
    rollouts = [(1.0, 10, 1, -100.0), (2.0, 20, 1, -150.0)]
    assert reach(rollouts, -200.0, window=3) is None
    assert reach(rollouts, -200.0, window=2) == {"seconds": 2.0, "env_steps": 20}
    assert reach([], 0.0) is None


def test_final_return_takes_the_last_five_percent_of_steps():
    rollouts = [(i, 100 * (i + 1), 1, float(i)) for i in range(100)]  # 100 .. 10,000 steps
    # steps > 9,500: rollouts 95..99 -> mean of 95..99
    assert final_return(rollouts) == pytest.approx(np.mean([95, 96, 97, 98, 99]))
    assert final_return([(0, 100, 0, 0.0)]) is None
    assert final_return([]) is None


def test_torch_gae_matches_ppo_jax_gae():
    torch = pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    import ppo_jax
    from benchmarks.torch_ppo import gae as torch_gae

    rng = np.random.default_rng(0)
    T, B = 7, 3
    r, v, nv = (rng.normal(size=(T, B)).astype(np.float32) for _ in range(3))
    term = rng.random((T, B)) < 0.2
    done = term | (rng.random((T, B)) < 0.2)
    adv_j, ret_j = ppo_jax.gae(r, v, nv, term, done, gamma=0.99, gae_lambda=0.95)
    f = lambda x: torch.as_tensor(np.asarray(x, np.float32))
    adv_t, ret_t = torch_gae(f(r), f(v), f(nv), f(term), f(done), 0.99, 0.95)
    np.testing.assert_allclose(adv_t.numpy(), np.asarray(adv_j), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret_t.numpy(), np.asarray(ret_j), rtol=1e-5, atol=1e-5)
