"""The runner's contract on a toy run axis (no PPO, nothing slow to compile): the updates
done, the chunk each callback sees, an early stop by ``on_state``, a halt by the axis, and
the same outcome pipelined and unpipelined."""

import jax
import jax.numpy as jnp
import pytest

from ppo_jax.runner import Runner


class _Config:
    num_updates = 10


class _Toy(Runner):
    """A counter advanced by each chunk's length; halts once it passes ``halt_at``."""

    def __init__(self, pipeline: bool, halt_at=None):
        self.config, self.pipeline = _Config(), pipeline
        self.init_from = self.reference = None
        self.halt_at = halt_at
        self.step = jax.jit(lambda state, length: (state + length, {"total": state + length}))

    def _dispatch(self, state, item):
        length, _ = item
        return self.step(state, length)

    def _fetch(self, out):
        return jax.device_get(out)

    def _halt(self, first_update, host):
        return self.halt_at is not None and int(host["total"]) > self.halt_at


def _run(pipeline, *, stop_at=None, halt_at=None, start=0, plan=(3, 3, 4)):
    toy = _Toy(pipeline, halt_at)
    chunks, states, pieces = [], [], []

    def on_state(done, state, kept):
        states.append((done, int(state), len(kept)))
        return done == stop_at

    state = toy._run(
        jnp.int32(start),
        [(n, None) for n in plan],
        start_update=start,
        pieces=pieces,
        on_chunk=lambda update, host, seconds: chunks.append((update, int(host["total"]))),
        on_state=on_state,
    )
    return int(state), toy.updates_done, toy.stopped_early, chunks, states, toy.host_times.chunks


@pytest.mark.parametrize("pipeline", [True, False])
def test_every_chunk_is_reported_and_handed_on(pipeline):
    state, done, early, chunks, states, count = _run(pipeline)
    assert (state, done, early, count) == (10, 10, False, 3)
    assert chunks == [(3, 3), (6, 6), (10, 10)]  # a log point: the updates done after it
    assert states == [(3, 3, 1), (6, 6, 2), (10, 10, 3)]  # (updates done, state, log points so far)


@pytest.mark.parametrize("pipeline", [True, False])
def test_on_state_stops_the_run_with_that_chunks_state(pipeline):
    state, done, early, chunks, states, count = _run(pipeline, stop_at=6)
    assert (state, done, early, count) == (6, 6, True, 2)
    assert chunks == [(3, 3), (6, 6)] and states[-1] == (6, 6, 2)


@pytest.mark.parametrize("pipeline", [True, False])
def test_a_halting_chunk_is_reported_but_never_handed_on(pipeline):
    state, done, early, chunks, states, _ = _run(pipeline, halt_at=4)
    assert chunks == [(3, 3), (6, 6)]  # on_chunk sees the halting chunk…
    assert states == [(3, 3, 1)]  # …on_state does not, and the updates done stay before it
    assert (state, done, early) == (6, 3, False)


def test_a_resumed_run_counts_from_where_it_was_saved():
    state, done, _, chunks, states, _ = _run(True, start=6, plan=(4,))
    assert (state, done) == (10, 10) and chunks == [(10, 10)] and states == [(10, 10, 1)]


@pytest.mark.parametrize("pipeline", [True, False])
def test_stopping_on_the_last_chunk_is_no_early_stop(pipeline):
    assert _run(pipeline, stop_at=10)[:3] == (10, 10, False)
