"""``ppo-jax rlhf``: bad input refused before anything compiles (exit 2, a message, nothing written)."""

import json
from pathlib import Path

import pytest
import yaml

from ppo_jax.cli import main
from ppo_jax.rlhf import config as rlhf_config
from ppo_jax.rlhf import text

CONFIG = "configs/rlhf/pipeline.yaml"


def fake_stage(directory: Path, stage: str, config=None, vocab=text.CHARS) -> Path:
    """A stage directory as far as the checks read it (no parameters: nothing may get that far)."""
    directory.mkdir(parents=True)
    config = config or rlhf_config.load(CONFIG)
    (directory / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    (directory / "stage.json").write_text(json.dumps({"stage": stage, "vocab": vocab}))
    return directory


def refused(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_every_stage_is_registered(capsys):
    with pytest.raises(SystemExit):
        main(["rlhf", "--help"])
    out = capsys.readouterr().out
    assert all(stage in out for stage in ("sft", "reward", "ppo"))


def test_the_documented_config_loads():
    config = rlhf_config.load(CONFIG)
    assert config.transformer.max_len == config.data.prompt_len + config.data.response_len


def test_a_missing_stage_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "rm"
    refused(
        capsys,
        ["rlhf", "reward", CONFIG, "--sft", str(tmp_path / "nope"), "--out", str(out)],
        "no such directory",
    )
    assert not out.exists()


def test_a_directory_of_another_stage_is_refused(tmp_path, capsys):
    sft = fake_stage(tmp_path / "sft", "sft")
    wrong = fake_stage(tmp_path / "also_sft", "sft")
    argv = ["rlhf", "ppo", CONFIG, "--sft", str(sft), "--reward", str(wrong), "--out", str(tmp_path / "o")]
    refused(capsys, argv, "'sft' stage, not 'reward'")


def test_a_plain_directory_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = ["rlhf", "reward", CONFIG, "--sft", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]
    refused(capsys, argv, "no stage.json", "ppo-jax rlhf sft")


def test_a_length_mismatch_between_stages_is_refused(tmp_path, capsys):
    other = rlhf_config.load(CONFIG).with_sets({"data.response_len": 12})
    sft = fake_stage(tmp_path / "sft", "sft", other)
    out = tmp_path / "rm"
    refused(
        capsys,
        ["rlhf", "reward", CONFIG, "--sft", str(sft), "--out", str(out)],
        "data.response_len: 12 there, 24 here",
    )
    assert not out.exists()


def test_a_model_mismatch_between_stages_is_refused(tmp_path, capsys):
    sft = fake_stage(tmp_path / "sft", "sft")
    rm = fake_stage(tmp_path / "rm", "reward", rlhf_config.load(CONFIG).with_sets({"model.d_model": 32}))
    argv = ["rlhf", "ppo", CONFIG, "--sft", str(sft), "--reward", str(rm), "--out", str(tmp_path / "o")]
    refused(capsys, argv, "model.d_model: 32 there, 64 here")


def test_a_vocabulary_mismatch_between_stages_is_refused(tmp_path, capsys):
    sft = fake_stage(tmp_path / "sft", "sft", vocab="abc")
    refused(
        capsys,
        ["rlhf", "reward", CONFIG, "--sft", str(sft), "--out", str(tmp_path / "o")],
        "another vocabulary",
    )


@pytest.mark.parametrize(
    "sets, needle",
    [
        (["ppo.no_such=1"], "no such setting"),
        (["ppo.batch_size=30"], "not a multiple of num_minibatches"),
        (["model.num_heads=5"], "not a multiple of num_heads"),
        (["reward.label_temperature=0"], "label_temperature"),
        (["sft.steps=ten"], "expected an integer"),
        (["ppo.kl_coef=-1"], "kl_coef"),
    ],
)
def test_bad_settings_are_refused(tmp_path, capsys, sets, needle):
    argv = ["rlhf", "sft", CONFIG, "--out", str(tmp_path / "o")]
    for s in sets:
        argv += ["--set", s]
    refused(capsys, argv, needle)
    assert not (tmp_path / "o").exists()


def test_bad_betas_and_seeds_are_refused(tmp_path, capsys):
    sft, rm = fake_stage(tmp_path / "sft", "sft"), fake_stage(tmp_path / "rm", "reward")
    base = ["rlhf", "ppo", CONFIG, "--sft", str(sft), "--reward", str(rm), "--out", str(tmp_path / "o")]
    refused(capsys, base + ["--betas", "0,x"], "comma-separated numbers")
    refused(capsys, base + ["--betas", "-1"], "≥ 0")
    refused(capsys, base + ["--seeds", "0"], "--seeds must be at least 1")


def test_a_non_empty_out_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused(capsys, ["rlhf", "sft", CONFIG, "--out", str(out)], "--overwrite")
    assert (out / "keep.txt").read_text() == "mine"
