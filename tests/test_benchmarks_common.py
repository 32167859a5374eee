"""The benchmark suite's shared rules, on small hand-computed cases."""

import numpy as np
import pytest

from benchmarks.common import final_return, reach


def test_reach_uses_the_fewest_recent_rollouts_holding_the_window():
    # (seconds, env_steps, episodes, return_sum)
    rollouts = [
        (1.0, 100, 2, 20.0),  # mean 10
        (2.0, 200, 2, 900.0),  # mean 450: window of 3 -> (900 + 20) / 4 = 230
        (3.0, 300, 1, 500.0),  # last 3+: 500 + 900 over 3 = 466.7 < 475
        (4.0, 400, 3, 1500.0),  # last 3: 1500 / 3 = 500 >= 475
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
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    import ppo_jax
    from benchmarks.torch_ppo import gae as torch_gae

    rng = np.random.default_rng(0)
    T, B = 7, 3
    r, v, nv = (rng.normal(size=(T, B)).astype(np.float32) for _ in range(3))
    term = rng.random((T, B)) < 0.2
    done = term | (rng.random((T, B)) < 0.2)
    adv_j, ret_j = ppo_jax.gae(r, v, nv, term, done, gamma=0.99, gae_lambda=0.95)
    f = lambda x: np.asarray(x, np.float32)
    adv_t, ret_t = torch_gae(f(r), f(v), f(nv), f(term), f(done), 0.99, 0.95)
    np.testing.assert_allclose(adv_t, np.asarray(adv_j), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret_t, np.asarray(ret_j), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("discrete", [True, False])
def test_torch_ppo_written_out_densities_match_torch_distributions(discrete):
    """torch_ppo writes sampling, log-density and entropy out for speed; they must
    be what torch.distributions computes."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    from benchmarks.torch_ppo import DEFAULTS, ActorCritic

    torch.manual_seed(0)
    model = ActorCritic(5, 3, discrete, {**DEFAULTS, "log_std_init": -0.3})
    obs = torch.randn(64, 5)
    with torch.no_grad():
        out, value = model(obs)
        action, log_prob = model.sample(out)
        if discrete:
            ref = torch.distributions.Categorical(logits=out)
            ref_lp, ref_h = ref.log_prob(action), ref.entropy()
        else:
            ref = torch.distributions.Normal(out, model.log_std.exp().expand_as(out))
            ref_lp, ref_h = ref.log_prob(action).sum(-1), ref.entropy().sum(-1)
        torch.testing.assert_close(log_prob, ref_lp)
        torch.testing.assert_close(model.log_prob(out, action), ref_lp)
        torch.testing.assert_close(model.entropy(out), ref_h)
        torch.testing.assert_close(value, model.value(obs))
    assert value.shape == (64,) and action.shape == ((64,) if discrete else (64, 3))


def test_sb3_settings_translate_value_coefficient_and_schedule():
    """SB3's value loss has no ½ (so vf_coef / 2), and its schedule, read after a
    rollout is counted, must give update k the rate lr·(1 − k/N), as ppo_jax does."""
    pytest.importorskip("torch")
    pytest.importorskip("stable_baselines3")
    from benchmarks.sb3_ppo import matched_kwargs
    from benchmarks.torch_ppo import DEFAULTS

    s = {
        **DEFAULTS,
        "total_timesteps": 16 * 128 * 10,
        "num_envs": 16,
        "num_steps": 128,
        "learning_rate": 1e-3,
    }
    kw = matched_kwargs(s)
    assert kw["vf_coef"] == pytest.approx(s["vf_coef"] / 2)
    n = 10
    for k in range(n):
        remaining = 1.0 - (k + 1) / n  # SB3: progress after the k-th rollout's steps are counted
        assert kw["learning_rate"](remaining) == pytest.approx(1e-3 * (1.0 - k / n))
    assert kw["batch_size"] == 16 * 128 // s["num_minibatches"]


def test_batched_pendulum_matches_gymnasium_step_for_step():
    """benchmarks/vec_envs.Pendulum is gymnasium's Pendulum-v1 over a batch: from the same
    states, under random torques (clipped alike), the same observations, rewards and
    200-step truncation."""
    gym = pytest.importorskip("gymnasium")
    from benchmarks.vec_envs import Pendulum

    rng = np.random.default_rng(0)
    batched = Pendulum(3)
    batched.reset(seed=1)
    singles = [gym.make("Pendulum-v1") for _ in range(3)]
    for i, env in enumerate(singles):
        env.reset(seed=i)
        env.unwrapped.state = batched.state[:, i].copy()
    for _ in range(200):
        u = rng.uniform(-3, 3, size=(3, 1)).astype(np.float32)
        obs, reward, term, trunc, final = batched.step(u)
        for i, env in enumerate(singles):
            o, r, te, tr, _ = env.step(u[i])
            np.testing.assert_allclose(final[i], o, rtol=1e-5, atol=1e-5)
            assert reward[i] == pytest.approx(r, rel=1e-5, abs=1e-5)
            assert (bool(term[i]), bool(trunc[i])) == (te, tr)
    assert trunc.all() and not (obs == final).all()  # reset in the step that ended them
    assert (batched.steps == 0).all()


def test_cartpole_vector_env_resets_in_the_same_step():
    """gymnasium's CartPoleVectorEnv with the same-step autoreset of benchmarks/vec_envs:
    a finished env's final observation is returned apart, its next observation is a fresh
    start (|x| ≤ 0.05), no reset step is wasted, and the dynamics are gymnasium's CartPole-v1."""
    gym = pytest.importorskip("gymnasium")
    from benchmarks.vec_envs import CartPole

    env = CartPole(4)
    obs = env.reset(seed=0)
    single = gym.make("CartPole-v1")
    single.reset(seed=0)
    single.unwrapped.state = obs[0].astype(np.float64)
    rng = np.random.default_rng(1)
    ended = 0
    for _ in range(400):
        action = rng.integers(0, 2, size=4)
        obs, reward, term, trunc, final = env.step(action)
        if ended == 0:
            o, r, te, _, _ = single.step(int(action[0]))
            np.testing.assert_allclose(final[0], o, rtol=1e-5, atol=1e-6)
            assert bool(term[0]) == te and reward[0] == r
        done = term | trunc
        assert (reward == 1.0).all()  # never a zero-reward reset step
        if done.any():
            assert (np.abs(obs[done]) <= 0.05).all() and not np.allclose(obs[done], final[done])
            np.testing.assert_array_equal(obs[~done], final[~done])
        ended += int(done[0])
    assert ended > 5


def test_median_interval_by_order_statistics():
    from math import comb

    from benchmarks.common import median_ci

    rng = np.random.default_rng(3)
    for n in (6, 10, 13, 30):
        x = rng.normal(size=n)
        out = median_ci(list(x))
        s = np.sort(x)
        assert out["median"] == pytest.approx(np.median(x), abs=1e-3)
        # the interval [s_k, s_{n-k+1}] covers the median with P = 1 - 2 P(B <= k-1) >= 95%,
        # and k is the largest such
        k = next(i for i in range(1, n) if np.isclose(s[i - 1], out["low"], atol=1e-3))
        assert out["high"] == pytest.approx(s[n - k], abs=1e-3)
        tail = lambda k, n=n: sum(comb(n, i) for i in range(k)) / 2**n
        assert 1 - 2 * tail(k) >= 0.95 and 1 - 2 * tail(k + 1) < 0.95
    assert median_ci([1.0, 2.0, 3.0])["low"] is None  # too few for 95%
    # runs that never reached count as +inf: the median stays while fewer than half did not
    out = median_ci([5.0, 1.0, None, 2.0, 3.0, 4.0, None, 6.0, 7.0, None])
    assert out["median"] == pytest.approx(5.5) and out["high"] is None and out["low"] == 2.0
    assert median_ci([None, None, 1.0])["median"] is None


def test_gpu_torch_jobs_run_on_cuda_at_tf32_unpinned(tmp_path):
    """--gpu's PyTorch jobs, as the suite builds them (no CUDA needed to check the command):
    on cuda, TF32 as jax's default there, torch.compile for the compiled row, not pinned."""
    from benchmarks.run import Suite

    suite = Suite("gpu", tmp_path, "test", "tensorfloat32")
    e = suite.sizes["torch"]["envs"]["CartPole-v1"]
    assert set(e["caps"]) == {"torch", "torch_compile"}
    argv, _, kw = suite._agent_spec("torch_compile", e, 0, 45, "python", None, None, tmp_path / "c")
    assert argv[argv.index("--device") + 1] == "cuda" and "--compile" in argv
    assert argv[argv.index("--matmul-precision") + 1] == "high" and kw["cpus"] is None
    assert kw["env"]["TORCHINDUCTOR_CACHE_DIR"].startswith(str(tmp_path))
    # which runs --gpu makes (the agents stubbed): eager, and compiled cold only, unpinned
    made = []
    suite._agent = lambda impl, e, seed, cap, python, sbx, cpus, cache: (
        made.append((impl, cpus)) or {"rows": []}
    )
    runs = suite._one_core_runs(
        "CartPole-v1", e, ["torch", "torch_compile"], suite.sizes["torch"], "py", None, tmp_path
    )
    assert list(runs) == ["torch", "torch_compile_cold"] and made == [
        ("torch", None),
        ("torch_compile", None),
    ]


def test_torch_ppo_learning_rate_stays_a_float_with_fused_adam():
    """The learning rate is annealed as a Python float on a fused Adam that is never
    compiled: no tensor rate, so CUDA's optimizers need no capturable mode under --compile."""
    torch = pytest.importorskip("torch")
    from benchmarks.torch_ppo import DEFAULTS, ActorCritic, make_optimizer, make_steps

    model = ActorCritic(4, 2, True, DEFAULTS)
    opt = make_optimizer(model.parameters(), 1e-3, "cpu")
    assert opt.defaults["fused"] and isinstance(opt.param_groups[0]["lr"], float)
    _, update = make_steps(model, opt, {**DEFAULTS, "vf_clip": None}, compile_steps=False)
    obs = torch.randn(8, 4)
    batch = (obs, torch.randint(0, 2, (8,)), torch.zeros(8), torch.zeros(8), torch.randn(8), torch.randn(8))
    before = [p.detach().clone() for p in model.parameters()]
    update(*batch)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def _agent_job(seconds_to_reach, seed, steps_per_second=1000.0):
    """A one-core job as the suite saves it: 10 rollouts, reaching 475 at the given second."""
    rollouts = [
        [(t + 1) * seconds_to_reach / 5, 1000 * (t + 1), 20.0, 20.0 * (500.0 if t >= 4 else 100.0)]
        for t in range(10)
    ]
    row = {
        "rollouts": rollouts,
        "steps_per_second": steps_per_second,
        "cpu_over_wall": 0.98,
        "env_steps": 10000,
    }
    return {"status": "ok", "rows": [row], "cpus": [0], "seed": seed}


def test_torch_report_gives_medians_intervals_and_says_when_presets_changed(tmp_path):
    pytest.importorskip("matplotlib")
    import yaml

    from benchmarks import report
    from benchmarks.common import REPO

    preset = yaml.safe_load((REPO / "configs/cartpole.yaml").read_text())
    times = {"torch": [10.0 + i for i in range(10)], "sb3": [30.0 + 2 * i for i in range(10)]}
    d = {
        "format": 2,
        "seeds": 10,
        "window": 20,
        "order": "interleaved",
        "one_core": {"cpus": [0], "xla_flags": "x"},
        "presets": {"configs/cartpole.yaml": {**preset, "clip_eps": 0.2}},
        "envs": {
            "CartPole-v1": {
                "threshold": 475.0,
                "config": "configs/cartpole.yaml",
                "overrides": {},
                "one_core": {n: [_agent_job(t, i) for i, t in enumerate(ts)] for n, ts in times.items()},
            }
        },
    }
    body, facts = report.torch_section(d, tmp_path, "")
    # 10 runs: the median of the 5th and 6th, the interval from the 2nd and 9th (order statistics)
    assert facts["CartPole-v1"]["torch"]["time"]["median"] == pytest.approx(14.5)
    assert "14.5 [11.0, 18.0]" in body and "39.0 [32.0, 46.0]" in body
    note = report._stale_note(d)
    assert "Settings differ from today's presets" in note and "clip_eps 0.2 → 0.1" in note
    assert (tmp_path / "returns-CartPole-v1.png").exists()
    d["presets"]["configs/cartpole.yaml"] = preset
    assert report._stale_note(d) == ""


def test_every_section_records_commit_load_and_the_presets_it_names(tmp_path):
    import json

    from benchmarks.run import Suite

    suite = Suite("quick", tmp_path, "python -m benchmarks.run --quick")
    suite.save("compile", {"jobs": [{"command": "python -m benchmarks.jobs compile configs/acrobot.yaml"}]})
    d = json.loads((tmp_path / "compile.json").read_text())
    assert len(d["commit"]) == 40 and isinstance(d["dirty"], bool)
    assert len(d["load_at_start"]) == 3 and len(d["load_at_end"]) == 3
    assert d["presets"]["configs/acrobot.yaml"]["env_id"] == "Acrobot-v1"
