"""The metric loggers of a training run: metrics.csv, TensorBoard, W&B."""

from __future__ import annotations

from ppo_jax.cli.common import UserError


def check_wandb(mode) -> None:
    """Refuse ``--wandb`` before anything compiles when wandb is not installed."""
    if not mode:
        return
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise UserError(
            "--wandb: Weights & Biases is not installed; pip install 'ppo_jax[wandb]' (or drop --wandb)."
        ) from None


def make_loggers(out, seeds, config, start_update: int, *, tensorboard: bool, wandb_mode) -> list:
    """Loggers for a run in ``out``; a resumed run (``start_update > 0``) drops what came after its checkpoint."""
    from ppo_jax.io import logs

    fresh = start_update == 0
    loggers: list[logs.Logger] = [
        logs.MetricsCSV(out / "metrics.csv", seeds, keep_before=None if fresh else start_update)
    ]
    if tensorboard:
        purge = None if fresh else start_update * config.batch_size + 1
        loggers.append(logs.TensorBoardLogger(out / "tensorboard", seeds, purge_step=purge))
    if wandb_mode:
        name = out.name if fresh else f"{out.name}-from-{start_update}"
        try:
            loggers.append(logs.WandbLogger(out, seeds, name=name, mode=wandb_mode))
        except Exception as err:  # wandb's own errors: no key, no network in online mode
            for logger in loggers:
                logger.close()
            raise UserError(
                f"--wandb {wandb_mode}: could not start a W&B run: {err}. "
                "Use --wandb offline to log without a network."
            ) from None
    hparams = {**config.to_dict(), "num_seeds": len(seeds)}
    for logger in loggers:
        logger.log_hparams(hparams)
    return loggers
