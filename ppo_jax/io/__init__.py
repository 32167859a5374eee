"""IO: what a run writes and reads on the host, between jitted chunks.

``logs`` (metrics.csv, TensorBoard, W&B, summary.json, curves.png), ``events`` (the
TensorBoard event-file encoder), ``checkpoint`` (orbax checkpoints of the train state),
``report`` and ``stats`` (a sweep's tables, plots and intervals), ``render`` (an episode
as a GIF). Nothing here imports the trainer (``train``, ``update``, ``rollout``): the
types it writes are read, not built, so importing the loggers starts no JAX backend.
"""
