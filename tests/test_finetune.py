"""Fine-tuning under a KL leash: --init-from restores exactly the saved network
and statistics, β = 0 equals a plain fine-tune, the rollout's penalty equals a
numpy reference with the reference's own statistics, the adaptive controller
moves β toward its target (Gaussian policy, vmapped over targets and seeds),
and bad fine-tuning inputs are refused before anything compiles."""

import csv
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppo_jax
from ppo_jax import cli, core
from ppo_jax.config import ConfigError
from ppo_jax.driver import seed_keys
from ppo_jax.finetune.data import Reference, Start
from ppo_jax.finetune.loaders import load_reference, load_start
from ppo_jax.io import checkpoint, logs
from ppo_jax.rollout import RolloutOptions, collect
from ppo_jax.update import make_optimizer

TINY = dict(
    total_timesteps=4 * 16 * 2,
    num_envs=4,
    num_steps=16,
    update_epochs=1,
    num_minibatches=2,
    normalize_obs=True,
    normalize_reward=True,
)


def _bits_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert (
            x.shape == y.shape
            and x.dtype == y.dtype
            and np.array_equal(x.reshape(-1).view(np.uint8), y.reshape(-1).view(np.uint8))
        )


def _randomized(state, seed):
    """A two-seed state whose parameters and statistics differ from any fresh init."""
    leaves, tree = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    params = jax.tree.unflatten(tree, [x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    obs = core.RunningMeanStd(
        mean=state.norm.obs.mean + jnp.arange(4.0)[None],
        var=state.norm.obs.var * 3.0,
        count=state.norm.obs.count + 100.0,
    )
    ret = core.RunningMeanStd(
        mean=state.norm.ret.mean + 1.0, var=state.norm.ret.var * 5.0, count=state.norm.ret.count + 7.0
    )
    return state.replace(params=params, norm=state.norm.replace(obs=obs, ret=ret))


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run directory as 'ppo-jax train' writes it (config.yaml, one checkpoint
    of seeds [0, 1]) holding a state no fresh init produces."""
    run_dir = tmp_path_factory.mktemp("saved") / "run"
    config = ppo_jax.load_config(None, **TINY)
    init = jax.jit(jax.vmap(ppo_jax.build(config).init, in_axes=(0, None)))
    state = _randomized(init(seed_keys([0, 1]), config.hyperparams()), seed=3)
    run_dir.mkdir(parents=True)
    logs.write_config(run_dir / "config.yaml", config.to_dict())
    writer = checkpoint.Checkpointer(run_dir, keep=1)
    writer.save(2, state, {"config": config.to_dict(), "seeds": [0, 1]})
    writer.close()
    return run_dir, config, state


def test_init_from_restores_exactly_the_saved_parameters_and_statistics(saved_run):
    run_dir, config, saved = saved_run
    seed1 = jax.tree.map(lambda x: x[1], saved)
    start = load_start(run_dir, config, seed=1)
    _bits_equal(start.params, seed1.params)
    _bits_equal((start.obs_norm, start.ret_norm), (seed1.norm.obs, seed1.norm.ret))
    state = jax.jit(ppo_jax.build(config, init_from=start).init)(jax.random.PRNGKey(9), config.hyperparams())
    _bits_equal(state.params, seed1.params)
    _bits_equal((state.norm.obs, state.norm.ret), (seed1.norm.obs, seed1.norm.ret))
    assert int(state.update_step) == 0
    _bits_equal(state.opt_state, make_optimizer(config.max_grad_norm).init(seed1.params))  # a fresh optimizer
    # The reference keeps its own statistics, frozen.
    reference = load_reference(run_dir, config, seed=0)
    _bits_equal(reference.obs_norm, jax.tree.map(lambda x: x[0], saved.norm.obs))


def test_beta_zero_equals_a_plain_fine_tune(saved_run):
    run_dir, config, _ = saved_run
    start = load_start(run_dir, config)
    reference = load_reference(run_dir, config, seed=1)  # another policy than the start
    plain_state, plain = jax.jit(ppo_jax.make_train(config, init_from=start))(jax.random.PRNGKey(4))
    leashed_state, leashed = jax.jit(ppo_jax.make_train(config, init_from=start, reference=reference))(
        jax.random.PRNGKey(4)
    )
    _bits_equal(leashed_state.params, plain_state.params)
    _bits_equal(leashed_state.norm, plain_state.norm)
    assert np.all(np.isnan(plain["kl_ref"]))  # no reference: no KL to report
    assert np.all(np.isfinite(leashed["kl_ref"])) and np.all(np.asarray(leashed["kl_ref"]) != 0)
    np.testing.assert_array_equal(leashed["reward_penalized"], leashed["reward_raw"])
    np.testing.assert_array_equal(leashed["reward_raw"], plain["reward_raw"])


def test_rollout_penalty_matches_numpy_with_the_references_own_statistics(saved_run):
    run_dir, _, _ = saved_run
    config = ppo_jax.load_config(None, **{**TINY, "normalize_obs": False, "normalize_reward": False})
    program = ppo_jax.build(config)
    state = jax.jit(program.init)(jax.random.PRNGKey(0), config.hyperparams())
    reference = load_reference(run_dir, config.replace(normalize_obs=True), seed=1)
    assert reference.obs_norm is not None  # the learner sees raw observations, the reference its own scale
    beta = 0.7
    options = RolloutOptions(num_steps=config.num_steps, normalize_obs=False, normalize_reward=False)
    rollout = jax.jit(
        lambda key: collect(
            key,
            state.params,
            state.env,
            state.norm,
            0.99,
            networks=program.networks,
            vec_env=program.vec_env,
            options=options,
            reference=reference,
            kl_coef=beta,
        )
    )
    _, _, traj, _ = rollout(jax.random.PRNGKey(1))
    ref_dist, _ = program.networks.apply(reference.params, core.normalize(reference.obs_norm, traj.obs))
    ref_log_prob = np.asarray(ref_dist.log_prob(traj.action), np.float64)
    log_prob = np.asarray(traj.log_prob, np.float64)
    raw = np.asarray(traj.reward_raw, np.float64)
    want = np.empty_like(raw)
    for t, b in np.ndindex(raw.shape):
        want[t, b] = raw[t, b] - beta * (log_prob[t, b] - ref_log_prob[t, b])
    np.testing.assert_allclose(traj.reward, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(traj.kl_ref, log_prob - ref_log_prob, rtol=1e-5, atol=1e-5)


def test_adaptive_beta_moves_toward_the_target_gaussian_vmapped():
    config = ppo_jax.load_config(
        None,
        env_id="Pendulum-v1",
        total_timesteps=4 * 16 * 5,
        num_envs=4,
        num_steps=16,
        update_epochs=1,
        num_minibatches=2,
        kl_ref_coef=0.1,
        kl_ref_target=1.0,
        kl_ref_horizon=640.0,
    )
    networks = ppo_jax.build(config).networks
    params = networks.init(jax.random.PRNGKey(5))
    # The reference's mean is 1 off the learner's (σ = 1 for both): KL ≈ 0.5 nats a step.
    shifted = jax.tree_util.tree_map_with_path(
        lambda path, x: (
            x + 1.0
            if "policy_head" in jax.tree_util.keystr(path) and "bias" in jax.tree_util.keystr(path)
            else x
        ),
        params,
    )
    train = ppo_jax.make_train(
        config,
        init_from=Start(params, core.rms_init((3,)), core.rms_init(())),
        reference=Reference(shifted, None),
    )
    targets = np.array([1e-3, 1e-3, 1e3, 1e3], np.float32)  # far below / far above the KL, two seeds each
    hp = config.hyperparams()
    hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (4,)), hp).replace(kl_ref_target=jnp.asarray(targets))
    state, metrics = jax.jit(jax.vmap(train))(seed_keys([0, 1, 0, 1]), hp)
    kl = np.asarray(metrics["kl_ref"])
    assert np.all(kl > 0.3) and np.all(kl < 3)  # so the clipped error is +0.2 or -0.2 every update
    factor = np.exp(0.2 * config.batch_size / config.kl_ref_horizon)  # about 1.02 per update
    n = np.arange(config.num_updates)
    np.testing.assert_allclose(
        metrics["kl_ref_coef"][:2], np.broadcast_to(0.1 * factor**n, (2, n.size)), rtol=1e-5
    )
    down = 1 / factor
    np.testing.assert_allclose(
        metrics["kl_ref_coef"][2:], np.broadcast_to(0.1 * down**n, (2, n.size)), rtol=1e-5
    )
    np.testing.assert_allclose(
        state.kl_ref_coef, 0.1 * np.array([factor, factor, down, down]) ** n.size, rtol=1e-5
    )
    # The learner saw the penalized reward, with the β of each update.
    np.testing.assert_allclose(
        metrics["reward_penalized"],
        metrics["reward_raw"] - metrics["kl_ref_coef"] * metrics["kl_ref"],
        rtol=1e-4,
        atol=1e-4,
    )


def test_a_leash_without_a_reference_is_refused():
    config = ppo_jax.load_config(None, **TINY, kl_ref_coef=0.1)
    with pytest.raises(ConfigError, match="--kl-ref"):
        ppo_jax.make_train(config)


def test_parameters_that_do_not_fit_are_refused(saved_run):
    run_dir, config, _ = saved_run
    start = load_start(run_dir, config)
    with pytest.raises(ConfigError, match=r"hidden_sizes"):
        ppo_jax.build(config.replace(hidden_sizes=[32, 32]), init_from=start)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--set", "hidden_sizes=[32,32]"], "'hidden_sizes' is [64, 64] there, [32, 32] here"),
        (["--set", "normalize_obs=false"], "normalize_obs: true"),
        (["--init-seed", "7"], "no seed 7; its seeds are [0, 1]"),
        (["--set", "env_id=Acrobot-v1"], "CartPole-v1 observes (4,), Acrobot-v1 (6,)"),
    ],
)
def test_cli_refuses_a_run_that_does_not_fit_before_compiling(saved_run, tmp_path, capsys, args, expected):
    run_dir, _, _ = saved_run
    code = cli.main(
        [
            "train",
            "configs/cartpole.yaml",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
            "--init-from",
            str(run_dir),
            "--set",
            "normalize_obs=true",
            *args,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "compiling" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--set", "kl_ref_coef=0.1"], "none was given: pass --init-from"),
        (["--init-seed", "1"], "give --init-from RUN_DIR too"),
        (["--kl-ref", "/nonexistent"], "no such directory"),
    ],
)
def test_cli_refuses_a_leash_without_a_reference(tmp_path, capsys, args, expected):
    code = cli.main(["train", "configs/cartpole.yaml", "--out", str(tmp_path / "o"), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "compiling" not in err


def test_cli_fine_tune_under_a_leash(saved_run, tmp_path, capsys):
    run_dir, config, _ = saved_run
    out = tmp_path / "tuned"
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={str(v).lower()}")]
    code = cli.main(
        [
            "train",
            "configs/cartpole.yaml",
            "--out",
            str(out),
            "--no-progress",
            "--no-tensorboard",
            "--init-from",
            str(run_dir),
            "--init-seed",
            "1",
            "--set",
            "kl_ref_coef=0.1",
            *sets,
            "--checkpoint-every",
            "1",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert checkpoint.saved_updates(out) == [1, 2]
    finished = ppo_jax.load_run(out)
    sources = json.loads((out / "finetune.json").read_text())
    assert sources["init_seed"] == 1 and sources["init_from"].endswith("run") and sources["kl_ref"] is None
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == config.num_updates
    assert all(np.isfinite(float(r["kl_ref"])) for r in rows)
    assert all(float(r["kl_ref_coef"]) == pytest.approx(0.1) for r in rows)
    # --resume cannot take another start or reference: the run's own are kept.
    code = cli.main(["train", "--resume", str(out), "--init-from", str(run_dir)])
    assert code == 2 and "cannot be combined with --resume" in capsys.readouterr().err
    # Resumed after update 1, the run finds its reference again and ends where it ended.
    shutil.rmtree(checkpoint.checkpoint_dir(out) / "2")
    assert cli.main(["train", "--resume", str(out), "--no-progress", "--no-tensorboard"]) == 0
    _bits_equal(ppo_jax.load_run(out).state, finished.state)


def test_kl_ref_is_measured_at_beta_zero_too(saved_run):
    """``--init-from RUN --set kl_ref_coef=0``: the unleashed baseline of an RLHF comparison
    still logs how far it drifted from the run it started from (the reward is untouched)."""
    from ppo_jax.finetune.loaders import for_run

    run_dir, config, _ = saved_run
    tuned = for_run([config.replace(kl_ref_coef=0.0)], init_from=str(run_dir), init_seed=1)
    assert tuned.reference is not None
    _, metrics = jax.jit(ppo_jax.make_train(config, init_from=tuned.start, reference=tuned.reference))(
        jax.random.PRNGKey(4)
    )
    kl = np.asarray(metrics["kl_ref"])
    assert np.isfinite(kl).all() and kl[0] == pytest.approx(0.0, abs=1e-6) and (kl[1:] != 0).any()
    np.testing.assert_array_equal(metrics["reward_penalized"], metrics["reward_raw"])
