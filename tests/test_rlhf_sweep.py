"""Stage 3 as a sweep (``ppo_jax.rlhf.sweep``): the grid checked before compiling, then one tiny sweep."""

import csv
import json

import jax
import jax.numpy as jnp
import pytest
import yaml

from ppo_jax.cli import main
from ppo_jax.config import ConfigError
from ppo_jax.networks import transformer as tf
from ppo_jax.rlhf import config as rlhf_config
from ppo_jax.rlhf import reward, stages
from ppo_jax.rlhf.sweep import grid_points, plan_sweep

TINY = {
    "data": {"prompt_len": 4, "response_len": 5},
    "model": {"d_model": 16, "num_layers": 1, "num_heads": 2},
    "ppo": {"num_updates": 2, "batch_size": 8, "num_minibatches": 2, "update_epochs": 1, "eval_prompts": 8},
}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """A config file and saved sft and reward stages of fresh tiny parameters."""
    root = tmp_path_factory.mktemp("rlhf-sweep")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    config = rlhf_config.load(path)
    tc = config.transformer
    ref = tf.init(tc, jax.random.key(0))
    rm = reward.with_fresh_head(tf.init(tc, jax.random.key(1)), jax.random.key(2), tc.d_model)
    stages.save(root / "sft", "sft", config, ref, {"stage": "sft"})
    tree = {"params": rm, "mean": jnp.float32(0.0), "std": jnp.float32(1.0)}
    stages.save(root / "rm", "reward", config, tree, {"stage": "reward"})
    return path, root / "sft", root / "rm", root


def test_the_grid_is_the_product_of_traced_settings():
    config = rlhf_config.from_dict(TINY, "tiny")
    points = grid_points(config, {"kl_coef": [0, 0.05], "ppo.learning_rate": [1e-4, 3e-4, 1e-3]})
    assert len(points) == 6 and points[0] == {"kl_coef": 0.0, "learning_rate": 1e-4}
    assert points[-1] == {"kl_coef": 0.05, "learning_rate": 1e-3}


@pytest.mark.parametrize(
    "grid, needle",
    [
        ({"ppo.batch_size": [8, 16]}, "not a traced stage-3 setting"),
        ({"sft.steps": [1, 2]}, "not a traced stage-3 setting"),
        ({"ppo.kl_coef": [-1.0]}, "kl_coef must be ≥ 0"),
        ({"ppo.learning_rate": [0.0]}, "must be > 0"),
        ({"ppo.kl_coef": ["x"]}, "expected one or more numbers"),
        ({"ppo.kl_coef": []}, "expected one or more numbers"),
        ({}, "needs --grid"),
    ],
)
def test_bad_grids_are_refused(grid, needle):
    with pytest.raises(ConfigError, match=needle):
        grid_points(rlhf_config.from_dict(TINY, "tiny"), grid)


def test_a_kl_target_grid_needs_the_controller_on():
    config = rlhf_config.from_dict({**TINY, "ppo": {**TINY["ppo"], "kl_target": None}}, "tiny")
    with pytest.raises(ConfigError, match="kl_target: null"):
        grid_points(config, {"ppo.kl_target": [1.0, 2.0]})


def test_bad_plans_are_refused_before_compiling(dirs, tmp_path):
    path, sft, rm, _ = dirs
    grid = {"ppo.kl_coef": [0.0]}
    with pytest.raises(ConfigError, match="no such directory"):
        plan_sweep(path, grid, 1, None, tmp_path / "o", tmp_path / "missing", rm)
    with pytest.raises(ConfigError, match="is the 'sft' stage, not 'reward'"):
        plan_sweep(path, grid, 1, None, tmp_path / "o", sft, sft)
    with pytest.raises(ConfigError, match="both --set and --grid"):
        plan_sweep(path, grid, 1, None, tmp_path / "o", sft, rm, {"ppo.kl_coef": 0.1})
    with pytest.raises(ConfigError, match="at least 1"):
        plan_sweep(path, grid, 0, None, tmp_path / "o", sft, rm)
    with pytest.raises(ConfigError, match="other model settings"):
        plan_sweep(path, grid, 1, None, tmp_path / "o", sft, rm, {"model.d_model": 32})
    assert not (tmp_path / "o").exists()


def test_a_tiny_sweep_writes_one_row_per_run(dirs):
    path, sft, rm, root = dirs
    out = root / "sweep"
    # Through the CLI, as a user runs it: `ppo-jax sweep` lands in rlhf_sweep for a pipeline config.
    argv = ["sweep", str(path), "--grid", "ppo.kl_coef=0,0.1", "--grid", "ppo.clip_eps=0.2"]
    argv += ["--seeds", "2", "--seed", "5", "--out", str(out), "--sft", str(sft), "--reward", str(rm)]
    assert main(argv) == 0
    runs = stages.summary(out)["runs"]
    assert [r["run"] for r in runs] == [
        "reference",
        "beta=0 clip_eps=0.2 seed=5",
        "beta=0 clip_eps=0.2 seed=6",
        "beta=0.1 clip_eps=0.2 seed=5",
        "beta=0.1 clip_eps=0.2 seed=6",
    ]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["kl_coef"], r["seed"]) for r in rows[1:]] == [
        ("0.0", "5"),
        ("0.0", "6"),
        ("0.1", "5"),
        ("0.1", "6"),
    ]
    assert float(rows[1]["gold"]) == pytest.approx(runs[1]["gold"])
    about = json.loads((out / "sweep.json").read_text())
    assert about["grid"] == {"ppo.kl_coef": [0.0, 0.1], "ppo.clip_eps": [0.2]} and about["seeds"] == [5, 6]
    curves = json.loads((out / "curves.json").read_text())
    assert [c["settings"]["kl_coef"] for c in curves] == [0.0, 0.0, 0.1, 0.1]
    # β = 0 never moves (its controller multiplies 0); β = 0.1 is the controller's start.
    assert all(b == 0.0 for b in curves[0]["kl_coef"]) and curves[2]["kl_coef"][0] == pytest.approx(0.1)
    stages.check(out, "ppo", rlhf_config.load(path))  # the sweep is a finished ppo stage


def test_a_pipeline_config_is_told_from_a_train_preset(dirs, tmp_path):
    path, *_ = dirs
    assert rlhf_config.is_pipeline_config(path)
    assert rlhf_config.is_pipeline_config("configs/rlhf/pipeline.yaml")
    assert not rlhf_config.is_pipeline_config("configs/cartpole.yaml")
    assert not rlhf_config.is_pipeline_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "extra, needle",
    [
        ([], "needs --sft and --reward"),
        (["--sft", "S", "--reward", "R", "--bar", "1"], "--bar"),
        (["--sft", "S", "--reward", "R", "--init-from", "X"], "--init-from"),
        (["--sft", "S", "--reward", "R", "--checkpoint-every", "3"], "--checkpoint-every"),
    ],
)
def test_the_cli_refuses_what_a_stage_3_sweep_does_not_take(dirs, tmp_path, capsys, extra, needle):
    path = dirs[0]
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--grid", "ppo.kl_coef=0", "--out", str(out), *extra]) == 2
    assert needle in capsys.readouterr().err and not out.exists()


def test_the_cli_refuses_stage_dirs_for_a_train_preset(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", "configs/cartpole.yaml", "--sft", "S", "--out", str(out)]) == 2
    assert "only for an RLHF pipeline config" in capsys.readouterr().err and not out.exists()
