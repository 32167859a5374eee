"""What a kept run gives back: evaluation with the saved normalization
statistics, a GIF of the policy, TensorBoard event files (read with
TensorBoard's own reader), and W&B offline logging when wandb is installed."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppo_jax
from ppo_jax import cli, core
from ppo_jax.evaluate import evaluate_run

ROOT = Path(__file__).parent.parent


def _train(out, config, *sets, env):
    args = [a for kv in sets for a in ("--set", kv)]
    result = subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", "train", config, "--out", str(out), "--no-progress", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return out


def _with_fresh_statistics(run):
    """The same policy with observation statistics rebuilt from nothing (mean 0, var 1)."""
    fresh = jax.vmap(lambda _: core.rms_init(run.spec.obs_shape))(jnp.arange(len(run.seeds)))
    return dataclasses.replace(run, params=run.params.replace(obs_norm=fresh))


def test_act_uses_the_saved_statistics(tmp_path, cli_env):
    """A run with normalize_obs: act sees the observation through the run's own statistics
    (the same action as the network on the normalized observation), and those statistics
    matter (the network on the raw observation acts differently somewhere)."""
    out = _train(
        tmp_path / "normalized",
        "configs/cartpole.yaml",
        "normalize_obs=true",
        "total_timesteps=2048",
        "num_envs=4",
        "num_steps=64",
        env=cli_env,
    )
    run = ppo_jax.load_run(out)
    assert run.config.normalize_obs and run.seeds == [0] and run.update == run.config.num_updates
    params = run.params_of(0)
    assert np.abs(np.asarray(params.obs_norm.mean)).max() > 1e-3  # not the fresh statistics
    obs = 2.0 * jax.random.normal(jax.random.PRNGKey(1), (256, 4))
    dist, _ = run.networks.apply(params.network, core.normalize(params.obs_norm, obs))
    np.testing.assert_array_equal(jax.jit(run.act)(params, obs), dist.mode())
    np.testing.assert_array_equal(run.policy()(obs), dist.mode())
    raw, _ = run.networks.apply(params.network, obs)
    assert (np.asarray(raw.mode()) != np.asarray(dist.mode())).any()
    sampled = run.policy(stochastic=True)(obs, jax.random.PRNGKey(2))
    assert sampled.shape == (256,) and set(np.unique(sampled)) <= {0, 1}


def test_eval_reproduces_the_training_rollouts_with_saved_statistics(tmp_path, cli_env, capsys):
    """Pendulum with normalize_obs, a short budget: evaluation (its own episode
    loop) matches the training rollout code run with the same parameters and
    statistics, within 4 standard errors; fresh statistics give a far worse return."""
    from ppo_jax.envs import VecEnv
    from ppo_jax.rollout import RolloutOptions, collect

    out = _train(tmp_path / "pendulum", "configs/pendulum.yaml", "total_timesteps=131072", env=cli_env)
    assert cli.main(["eval", str(out), "--episodes", "128", "--stochastic"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "eval.json").read_text())
    assert "seed 0:" in printed and "±" in printed and result["actions"] == "stochastic"
    assert len(result["per_seed"][0]["returns"]) == 128

    # The training code's rollout from fresh resets: one whole 200-step episode per env.
    run = ppo_jax.load_run(out)
    vec_env = VecEnv(run.config.env_id)
    state = jax.tree.map(lambda x: x[0], run.state)
    options = RolloutOptions(num_steps=200, normalize_obs=True, normalize_reward=False)
    num_envs = 128
    env_state = vec_env.reset(jax.random.PRNGKey(7), num_envs)
    norm = state.norm.replace(discounted_return=jnp.zeros(num_envs))
    rollout = jax.jit(
        lambda key: collect(
            key, state.params, env_state, norm, 0.99, networks=run.networks, vec_env=vec_env, options=options
        )
    )
    *_, episodes = rollout(jax.random.PRNGKey(8))
    assert float(episodes.count) == num_envs
    training_return = float(episodes.return_sum) / num_envs

    evaluated = result["mean"]
    std = result["per_seed"][0]["std"]
    standard_error = std * np.sqrt(1 / 128 + 1 / num_envs)
    assert abs(evaluated - training_return) < 4 * standard_error, (evaluated, training_return, standard_error)
    fresh = evaluate_run(_with_fresh_statistics(run), 128, stochastic=True)["mean"]
    assert fresh < training_return - 10 * standard_error, (fresh, training_return)


@pytest.mark.slow
def test_eval_matches_the_final_training_return_of_the_pendulum_preset(tmp_path, cli_env):
    """The full Pendulum preset (1M steps, normalized observations): stochastic
    evaluation with the saved statistics reproduces the final training return
    (the last 5% of training) within 4 standard errors; fresh statistics do not."""
    out = _train(tmp_path / "pendulum", "configs/pendulum.yaml", env=cli_env)
    run = ppo_jax.load_run(out)
    summary = json.loads((out / "summary.json").read_text())
    result = evaluate_run(run, 200, stochastic=True)
    training_return = summary["final_return"][0]
    # The last 5% of a 1M-step run: ~12 rollouts of 64 envs x 64 steps, ~245 episodes.
    standard_error = result["std_all_episodes"] * np.sqrt(1 / 200 + 1 / 245)
    assert abs(result["mean"] - training_return) < 4 * standard_error, (result["mean"], training_return)
    fresh = evaluate_run(_with_fresh_statistics(run), 200, stochastic=True)["mean"]
    assert abs(fresh - training_return) > 10 * standard_error, (fresh, training_return)


def test_render_writes_a_gif_of_the_balanced_pole(tmp_path, cartpole_run, capsys):
    from PIL import Image

    from ppo_jax.io import render

    gif = tmp_path / "policy.gif"
    assert cli.main(["render", str(cartpole_run), "--out", str(gif)]) == 0
    assert "501 frames, 500 steps (episode ended), return 500.0" in capsys.readouterr().out
    with Image.open(gif) as image:
        assert image.n_frames == 501  # the reset state and one frame per step
    states, rewards, ended = render.record_episode(ppo_jax.load_run(cartpole_run), None, 0, 500)
    assert ended and len(rewards) == 500
    assert np.all(np.abs(states.theta) < 0.2095)  # within 12 degrees of upright throughout

    short = tmp_path / "short.gif"
    assert (
        cli.main(["render", str(cartpole_run), "--out", str(short), "--max-steps", "40", "--seed", "3"]) == 0
    )
    with Image.open(short) as image:
        assert image.n_frames == 41


def test_render_refuses_an_env_it_cannot_draw(tmp_path, capsys):
    # The env is read from the checkpoint's meta before any state is loaded,
    # so a checkpoint of a placeholder state stands in for a trained run.
    from ppo_jax.io import checkpoint, logs

    config = ppo_jax.load_config(None, env_id="DeepSea-bsuite", num_envs=4, num_steps=64, total_timesteps=512)
    run_dir = tmp_path / "deepsea"
    run_dir.mkdir()
    logs.write_config(run_dir / "config.yaml", config.to_dict())
    writer = checkpoint.Checkpointer(run_dir, keep=1)
    writer.save(2, {"placeholder": np.zeros(1)}, {"config": config.to_dict(), "seeds": [0]})
    writer.close()
    code = cli.main(["render", str(run_dir), "--out", str(tmp_path / "x.gif")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot draw DeepSea-bsuite" in err and "CartPole-v1" in err
    assert not (tmp_path / "x.gif").exists()


def test_tensorboard_event_files_hold_the_curves(cartpole_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = ppo_jax.load_run(cartpole_run)
    events = EventAccumulator(str(cartpole_run / "tensorboard" / "seed_0"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in (
        "charts/episode_return",
        "losses/policy_loss",
        "losses/value_loss",
        "losses/entropy",
        "losses/approx_kl",
        "losses/clip_fraction",
        "charts/SPS",
    ):
        assert tag in scalars, (tag, scalars)
    kl = events.Scalars("losses/approx_kl")
    assert [e.step for e in kl] == [run.config.batch_size * (u + 1) for u in range(run.config.num_updates)]
    csv_kl = np.genfromtxt(cartpole_run / "metrics.csv", delimiter=",", names=True)["approx_kl"]
    np.testing.assert_allclose([e.value for e in kl], csv_kl, rtol=1e-6)
    assert all(e.value > 0 for e in events.Scalars("charts/SPS"))
    assert "config/text_summary" in events.Tags()["tensors"]  # the hyperparameters, as text
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")  # and for the HParams tab


def test_wandb_offline_logging(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from ppo_jax.io.logs import WandbLogger

    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(tmp_path, [0, 1], name="test", mode="offline")
    logger.log_hparams({"learning_rate": 1e-3, "hidden_sizes": [64, 64], "vf_clip": None})
    metrics = {
        "env_steps": np.array([[128, 256], [128, 256]]),
        "episode_return": np.array([[1.0, np.nan], [2.0, 3.0]]),
        "approx_kl": np.full((2, 2), 0.01),
    }
    logger.log(0, metrics)
    logger.close()
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
