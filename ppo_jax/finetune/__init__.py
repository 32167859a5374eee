"""Fine-tuning: what a run starts from, and the policy it is leashed to.

The three pieces of the idea, one room:

- ``finetune.data``, the data the trainer takes: ``Start`` (the network parameters and
  normalization statistics a run starts from, instead of fresh ones) and ``Reference``
  (the frozen policy of the KL penalty, ``kl_ref_coef``), with the checks that they fit;
- ``finetune.loaders``: ``load_start`` / ``load_reference`` / ``for_run`` read them from
  a run directory;
- ``finetune.cli``: the CLI's ``--init-from RUN_DIR [--init-seed S] [--kl-ref RUN_DIR]``.

The trainer imports ``data``, which imports nothing that reads files; the loaders read
run directories through the run loader (``ppo_jax.runs``), which imports the trainer, so
they sit above it. This package imports none of them itself: the CLI's options import no
JAX until a command runs.
"""
