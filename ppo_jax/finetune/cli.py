"""The CLI's fine-tune options for ``train`` and ``sweep``:
``--init-from RUN_DIR [--init-seed S] [--kl-ref RUN_DIR]``."""

from __future__ import annotations

from ppo_jax.cli.common import UserError


def add_arguments(parser) -> None:
    parser.add_argument(
        "--init-from",
        metavar="RUN_DIR",
        help="start from that run's network and normalization statistics (fresh optimizer)",
    )
    parser.add_argument(
        "--init-seed", type=int, metavar="S", help="which seed of the --init-from run (default: its first)"
    )
    parser.add_argument(
        "--kl-ref",
        metavar="RUN_DIR",
        help="reference policy of the KL penalty kl_ref_coef (default: the --init-from run)",
    )


def resolve(configs, args, resume=None):
    """The start and reference the options name, loaded and checked before anything compiles."""
    from ppo_jax.config import ConfigError
    from ppo_jax.finetune.loaders import for_run

    try:
        return for_run(
            list(configs),
            getattr(args, "init_from", None),
            getattr(args, "init_seed", None),
            getattr(args, "kl_ref", None),
            resume=resume,
        )
    except ConfigError as err:
        raise UserError(str(err)) from None
