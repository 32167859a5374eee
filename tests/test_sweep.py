"""Sweeps: each grid point of the vmapped program equals the single run with that
setting and seed; the in-jit reductions equal numpy reductions of every update;
bad grids are refused before compiling; the statistics and the memory estimate."""

import jax
import numpy as np
import pytest

import ppo_jax
from ppo_jax.config import ConfigError
from ppo_jax.io import logs, stats
from ppo_jax.sweeps import CURVE_NAMES, MEAN_NAMES, SweepRun, estimate_memory, make_grid

# 7 updates in 3 log points of 3, 3 and 1 updates: two lengths, one program.
TINY = dict(total_timesteps=4 * 32 * 7, num_envs=4, num_steps=32, update_epochs=2, num_minibatches=2)


def _reduce(metrics: dict, plan: list[int]) -> dict:
    """Numpy reference of a log point: episode-weighted returns, means of the rest."""
    out = {name: [] for name in CURVE_NAMES}
    start = 0
    for length in plan:
        part = {k: np.asarray(v[start : start + length], np.float64) for k, v in metrics.items()}
        count = part["episodes"].sum()
        for name in ("episode_return", "episode_length"):
            weighted = np.where(part["episodes"] > 0, part[name] * part["episodes"], 0.0).sum()
            out[name].append(weighted / count if count > 0 else np.nan)
        out["episodes"].append(count)
        for name in MEAN_NAMES:
            out[name].append(part[name].mean())
        start += length
    return {k: np.asarray(v) for k, v in out.items()}


def test_each_grid_point_matches_its_single_run():
    config = ppo_jax.load_config(None, **TINY, target_kl=0.02)
    grid = make_grid(
        config, {"learning_rate": [1e-3, 5e-3], "clip_eps": [0.1, 0.3], "target_kl": [0.02, 0.05]}
    )
    run = SweepRun(grid, seeds=[4, 7], log_points=3)
    assert run.plan == [3, 3, 1]
    result = run.run(run.compile())
    assert result.curves["episode_return"].shape == (8, 2, 3)
    np.testing.assert_array_equal(result.env_steps, np.array([3, 6, 7]) * config.batch_size)

    train = jax.jit(ppo_jax.make_train(config))  # one program: the settings are traced
    for p, point in enumerate(result.points):
        hp = config.replace(**point).hyperparams()
        for s, seed in enumerate(result.seeds):
            _, metrics = train(jax.random.PRNGKey(seed), hp)
            expected = _reduce(metrics, run.plan)
            for name in CURVE_NAMES:
                np.testing.assert_allclose(
                    result.curves[name][p, s],
                    expected[name],
                    rtol=2e-5,
                    atol=2e-6,
                    err_msg=f"{name} at {point}, seed {seed}",
                )
            # 5% of 7 updates rounds to 0: the final window is the last update alone.
            last_count = float(metrics["episodes"][-1])
            final = float(metrics["episode_return"][-1]) if last_count > 0 else np.nan
            np.testing.assert_allclose(result.final_return[p, s], final, rtol=2e-5)
    assert train._cache_size() == 1
    assert (result.nonfinite == 0).all() and (result.first_nonfinite_update == -1).all()
    # the grid points really differ
    assert not np.allclose(result.curves["policy_loss"][0], result.curves["policy_loss"][-1])


def test_nonfinite_runs_are_flagged_and_the_others_go_on():
    config = ppo_jax.load_config(None, **TINY, env_id="Pendulum-v1", max_grad_norm=1e9)
    result = ppo_jax.sweep(config, {"learning_rate": [1e-4, 1e6]}, seeds=2, log_points=7)
    assert (result.nonfinite[0] == 0).all() and (result.first_nonfinite_update[0] == -1).all()
    assert (result.nonfinite[1] != 0).all()
    assert ((result.first_nonfinite_update[1] >= 0) & (result.first_nonfinite_update[1] < 7)).all()
    assert np.isfinite(result.curves["policy_loss"][0]).all()


BAD_GRIDS = [
    ({"num_envs": [4, 8]}, "'num_envs' is a static setting"),
    ({"network": ["mlp", "cnn"]}, "learning_rate, clip_eps"),  # lists what can be swept
    ({"learning_rat": [1e-3]}, "Did you mean 'learning_rate'"),
    ({"clip_eps": []}, "'clip_eps' has no values"),
    ({"learning_rate": [1e-3, -1e-3]}, "'learning_rate' must be a positive number"),
    ({"gamma": [0.9, 1.5]}, "'gamma' must lie in [0, 1]"),
    ({"ent_coef": [0.01, "much"]}, "'ent_coef' must be a number"),
    ({"clip_eps": [0.1, 0.1]}, "'clip_eps' repeats 0.1"),
    ({"vf_clip": [None, 0.2]}, "'vf_clip' mixes null"),
]


@pytest.mark.parametrize("grid,message", BAD_GRIDS, ids=[str(g) for g, _ in BAD_GRIDS])
def test_bad_grids_are_refused(grid, message):
    with pytest.raises(ConfigError, match=None) as err:
        make_grid(ppo_jax.load_config(None), grid)
    assert message in str(err.value)


def test_grid_order_and_scalars():
    grid = make_grid(ppo_jax.load_config(None), {"learning_rate": [1e-3, 3e-3], "clip_eps": 0.3})
    assert grid.points == ({"learning_rate": 1e-3, "clip_eps": 0.3}, {"learning_rate": 3e-3, "clip_eps": 0.3})
    assert [c.learning_rate for c in grid.configs] == [1e-3, 3e-3]
    assert make_grid(ppo_jax.load_config(None), None).points == ({},)


def test_seeds_must_be_given():
    with pytest.raises(ConfigError, match="seeds"):
        ppo_jax.sweep(ppo_jax.load_config(None, **TINY), {}, seeds=0)


def test_memory_does_not_grow_with_updates():
    """1024 runs of CartPole: device memory holds states, one rollout per run and
    one log point of sums; the host keeps log points, never every update."""
    estimates = []
    for steps in (1_000_000, 10_000_000):
        config = ppo_jax.load_config("configs/cartpole.yaml", total_timesteps=steps)
        estimates.append(estimate_memory(ppo_jax.build(config), runs=1024, devices=1, log_points=50))
    small, large = estimates
    assert small == large  # nothing depends on the number of updates
    assert small.device_bytes < 2**30 and small.host_bytes < 2**24
    # the train state of one run, counted by hand: 2 MLPs (4→64→64→2, 4→64→64→1), Adam μ and ν
    params = (4 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2) + (4 * 64 + 64 + 64 * 64 + 64 + 64 + 1)
    assert small.state_bytes >= 1024 * 3 * params * 4


def test_point_stats_against_hand_computed_values():
    scores = np.array([[1, 2, 3, 4, 5, 6, 7, 100], [10, 10, 10, 10, 10, 10, 10, np.nan]], np.float64)
    first, second = stats.point_stats(scores, reps=500)
    assert first.runs == 8 and first.missing == 0
    assert first.iqm.value == pytest.approx(4.5)  # mean of the middle four: 3, 4, 5, 6
    assert first.median.value == pytest.approx(4.5)
    assert first.mean.value == pytest.approx(128 / 8)
    for interval in (first.mean, first.median, first.iqm):
        assert interval.low <= interval.value <= interval.high
    assert second.runs == 7 and second.missing == 1
    assert second.iqm.value == second.iqm.low == second.iqm.high == pytest.approx(10.0)
    assert stats.ranking([first, second]) == [1, 0]


def test_probability_of_improvement():
    scores = np.array([[1.0, 2, 3, 4], [5.0, 6, 7, 8], [3.5, 4.5, 0.5, 2.5]])  # IQMs 2.5, 6.5, 3
    points = stats.point_stats(scores, reps=300)
    comparison = stats.probability_of_improvement(scores, points, reps=300)
    assert (comparison.best, comparison.second) == (1, 2)
    assert comparison.probability.value == pytest.approx(1.0)  # every run of #1 beats every run of #2
    pair = scores[[0, 2]]
    close = stats.probability_of_improvement(pair, stats.point_stats(pair, reps=300), reps=300)
    assert (close.best, close.second) == (1, 0)
    # pairs (x from 0.5, 2.5, 3.5, 4.5; y from 1..4) with x > y: 0 + 2 + 3 + 4 = 9 of 16
    assert close.probability.value == pytest.approx(9 / 16)
    assert close.probability.low < 0.5 < close.probability.high
    assert stats.probability_of_improvement(scores[:1], points[:1]) is None


def test_curve_bands_carry_a_run_forward_over_gaps():
    curves = np.array([[[1.0, np.nan, 3.0], [np.nan, 2.0, 2.0]]])
    iqm, low, high = stats.curve_bands(curves, reps=200)
    assert np.isnan(iqm[0, 0])  # seed 1 has no value yet
    np.testing.assert_allclose(iqm[0, 1:], [1.5, 2.5])
    assert (low[0, 1:] <= iqm[0, 1:]).all() and (iqm[0, 1:] <= high[0, 1:]).all()


def test_final_returns_by_hand_over_100_updates():
    """The number every learning bar reads: over the last 5 of 100 updates (5%), the mean of
    the episodes that finished there, each update weighted by its episode count; NaN for a
    seed with none there (whatever it did before); the NaN returns of empty updates ignored."""
    rng = np.random.default_rng(0)
    episodes = rng.integers(0, 4, size=(3, 100)).astype(np.float64)
    episodes[1, -5:] = 0  # seed 1 finishes nothing in the window
    episodes[2, -5:] = [0, 3, 0, 1, 2]
    returns = np.where(episodes > 0, rng.uniform(-5, 50, size=(3, 100)), np.nan)
    got = logs.final_returns({"episode_return": returns, "episodes": episodes})
    want = []
    for seed in range(3):
        total = count = 0.0
        for update in range(95, 100):
            if episodes[seed, update] > 0:
                total += returns[seed, update] * episodes[seed, update]
                count += episodes[seed, update]
        want.append(total / count if count else np.nan)
    assert np.isnan(got[1]) and np.isnan(want[1])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    r = returns[2, 95:]
    np.testing.assert_allclose(got[2], (3 * r[1] + r[3] + 2 * r[4]) / 6, rtol=1e-12)
    assert got[2] != np.nanmean(r)  # weighted by episodes, not a mean of the updates
