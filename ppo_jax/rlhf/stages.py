"""A stage's directory: what it ran with, its parameters, its summary. IO only.

DIR/config.yaml          the whole pipeline config the stage ran with
DIR/stage.json           {"stage": "sft" | "reward" | "ppo", "vocab": the tokenizer's characters}
DIR/checkpoints/<n>/     the parameters (ppo_jax.io.checkpoint's orbax format)
DIR/summary.json         the stage's measurements
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import yaml

from ppo_jax.config import ConfigError
from ppo_jax.io import checkpoint
from ppo_jax.rlhf import config as rlhf_config
from ppo_jax.rlhf import text

COMMANDS = {
    "sft": "ppo-jax rlhf sft CONFIG --out DIR",
    "reward": "ppo-jax rlhf reward CONFIG --sft DIR --out DIR",
    "ppo": "ppo-jax rlhf ppo CONFIG --sft DIR --reward DIR --out DIR",
}


def check_out(out: str | Path, overwrite: bool) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out}: exists and is not empty; choose another --out or pass --overwrite.")
    return out


def save(out: Path, stage: str, config, tree: Any, summary: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    writer = checkpoint.Checkpointer(out, keep=1)
    try:
        writer.save(0, tree, {"stage": stage})
    finally:
        writer.close()
    (out / "stage.json").write_text(json.dumps({"stage": stage, "vocab": text.CHARS}))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


def check(directory: str | Path, stage: str, config) -> Path:
    """``directory`` as a finished ``stage`` of a pipeline with ``config``'s shapes, or ConfigError."""
    directory = Path(directory)
    hint = f"expected the --out of '{COMMANDS[stage]}'"
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such directory; {hint}.")
    marker = directory / "stage.json"
    if not marker.is_file():
        raise ConfigError(f"{directory}: not a finished rlhf stage (no stage.json); {hint}.")
    about = json.loads(marker.read_text())
    if about.get("stage") != stage:
        raise ConfigError(f"{directory}: is the '{about.get('stage')}' stage, not '{stage}'; {hint}.")
    if about.get("vocab") != text.CHARS:
        raise ConfigError(
            f"{directory}: was trained with another vocabulary ({len(about.get('vocab') or '')} characters "
            f"{about.get('vocab')!r}; this version has {len(text.CHARS)}: {text.CHARS!r}); re-run '{stage}'."
        )
    # Only the shared sections are read: a stage's own settings may come from an older version.
    raw = yaml.safe_load((directory / "config.yaml").read_text()) or {}
    saved = rlhf_config.from_dict({k: raw.get(k) for k in ("data", "model")}, str(directory / "config.yaml"))
    rlhf_config.check_same_shapes(config, saved, directory, stage)
    return directory


def load(directory: Path, target: Any) -> Any:
    """The saved tree, read into the structure of ``target`` (arrays or ShapeDtypeStructs)."""
    return checkpoint.restore_state(directory, 0, jax.tree.map(lambda x: x, target))


def summary(directory: Path) -> dict:
    return json.loads((Path(directory) / "summary.json").read_text())
