"""The pipelined chunk loop (chunk k+1 dispatched before chunk k's host IO) gives
bitwise the results of the unpipelined loop: the per-update metrics, the final
state, the states handed to ``on_state`` (what checkpoints save), and the state
kept when a run stops early (a signal, a failed checkpoint, non-finite values)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppo_jax
from ppo_jax.driver import ChunkedRun
from ppo_jax.runner import run_chunks
from ppo_jax.sweeps import SweepRun, make_grid

TINY = dict(total_timesteps=4 * 32 * 6, num_envs=4, num_steps=32, update_epochs=2, num_minibatches=2)


def _bits(tree):
    return [np.asarray(x).view(np.uint8).tobytes() for x in jax.tree.leaves(jax.device_get(tree))]


def _same(a, b):
    assert _bits(a) == _bits(b)


# ---------------------------------------------------------------------------
# The loop alone, on a toy step
# ---------------------------------------------------------------------------


def _toy(pipeline, stop_after=None):
    """Record the order of dispatches and callbacks of ``run_chunks`` on a step
    that adds the chunk length to a counter."""
    events = []

    def step(state, length):
        events.append(("dispatch", int(state) + length))
        new = state + length
        return new, {"after": new}

    def on_done(i, host, state):
        events.append(("done", i, int(host["after"]), int(state)))
        return stop_after is not None and i == stop_after

    state, times = run_chunks(step, jnp.int32(0), [2, 3, 4], jax.device_get, on_done, pipeline=pipeline)
    return int(state), times, events


def test_pipelined_loop_dispatches_the_next_chunk_before_the_host_sees_this_one():
    state, times, events = _toy(pipeline=True)
    assert state == 9 and times.chunks == 3
    assert events == [
        ("dispatch", 2),
        ("dispatch", 5),
        ("done", 0, 2, 2),
        ("dispatch", 9),
        ("done", 1, 5, 5),
        ("done", 2, 9, 9),
    ]


def test_unpipelined_loop_dispatches_after_the_host_is_done():
    state, _, events = _toy(pipeline=False)
    assert state == 9
    assert events == [
        ("dispatch", 2),
        ("done", 0, 2, 2),
        ("dispatch", 5),
        ("done", 1, 5, 5),
        ("dispatch", 9),
        ("done", 2, 9, 9),
    ]


@pytest.mark.parametrize("pipeline", [True, False])
def test_a_stop_keeps_the_state_the_host_saw_and_drops_the_chunk_in_flight(pipeline):
    state, times, events = _toy(pipeline, stop_after=0)
    assert state == 2 and times.chunks == 1  # not 5: the chunk in flight is dropped
    assert [e for e in events if e[0] == "done"] == [("done", 0, 2, 2)]


# ---------------------------------------------------------------------------
# ChunkedRun (ppo-jax train)
# ---------------------------------------------------------------------------


def _compiled(run):
    """Compile ``run`` once; return it with a maker of fresh initial states
    (an unpipelined run donates the state it is given)."""
    state = run.compile()
    shardings = jax.tree.map(lambda x: x.sharding, state)
    host = jax.device_get(state)
    run.fresh = lambda: jax.device_put(host, shardings)
    return run


def _train(run, stop_at=None):
    """Run ``run``; return its final state, metrics, and the states handed to on_state."""
    saved = {}

    def on_state(done, state):
        saved[done] = jax.device_get(state)  # what a checkpoint writes
        return done == stop_at

    state, metrics = run.run(run.fresh(), on_state=on_state)
    return state, metrics, saved


def _both(run, fn):
    """``fn(run)`` by the pipelined loop, then by the unpipelined one. Both loops
    share one compiled program (it does not donate): compiling is most of these
    tests' time. The donating programs are compared in a slow test."""
    out = []
    for pipeline in (True, False):
        run.pipeline = pipeline
        out.append(fn(run))
    run.pipeline = True
    return out


@pytest.fixture(scope="module")
def chunked():
    return _compiled(ChunkedRun(ppo_jax.load_config(None, **TINY), seeds=[3, 4], target_chunks=3))


def _check_train(piped, plain, expected_saves, last_saved_is_returned=True):
    (state, metrics, saved, done), (ref_state, ref_metrics, ref_saved, ref_done) = piped, plain
    _same(state, ref_state)
    assert metrics.keys() == ref_metrics.keys() and done == ref_done
    for name in metrics:  # every per-update row
        np.testing.assert_array_equal(metrics[name], ref_metrics[name], err_msg=name)
    assert sorted(saved) == sorted(ref_saved) == expected_saves
    for update in saved:  # checkpoints of the right state at the right update
        _same(saved[update], ref_saved[update])
    if last_saved_is_returned:
        _same(saved[expected_saves[-1]], state)


def test_chunked_run_pipelined_is_bitwise_the_unpipelined_loop(chunked):
    assert chunked.plan == [2, 2, 2]
    piped, plain = _both(chunked, lambda run: (*_train(run), run.updates_done))
    _check_train(piped, plain, [2, 4, 6])
    assert piped[1]["episode_return"].shape == (2, 6) and piped[3] == 6
    assert chunked.host_times.chunks == 3 and chunked.host_times.io >= 0 and chunked.host_times.wait >= 0


def test_chunked_run_stopped_after_a_chunk_keeps_that_chunks_state(chunked):
    # on_state returns True: a signal, or a failed checkpoint write.
    piped, plain = _both(
        chunked, lambda run: (*_train(run, stop_at=2), (run.updates_done, run.stopped_early))
    )
    _check_train(piped, plain, [2])
    assert piped[1]["episode_return"].shape == (2, 2) and piped[3] == (2, True)


def test_chunked_run_resumed_from_a_saved_state_is_bitwise_the_whole_run(chunked):
    full_state, full_metrics, saved = _train(chunked)
    shardings = jax.tree.map(lambda x: x.sharding, full_state)
    state, metrics = chunked.run(jax.device_put(saved[2], shardings), start_update=2)
    _same(state, full_state)
    for name in metrics:
        np.testing.assert_array_equal(metrics[name], full_metrics[name][:, 2:], err_msg=name)


def test_a_non_finite_chunk_stops_both_loops_at_the_same_state(chunked):
    kept = chunked.hp
    # An absurd learning rate (a traced setting: the same programs) overflows the parameters.
    chunked.hp = kept.replace(learning_rate=jnp.float32(1e38), max_grad_norm=jnp.float32(1e38))
    try:
        piped, plain = _both(chunked, lambda run: (*_train(run), run.updates_done, run.nonfinite))
    finally:
        chunked.hp = kept
    bad = piped[4]
    assert bad is not None and bad == plain[4]
    assert piped[1]["nonfinite"].shape[1] == bad.update // 2 * 2 + 2  # up to the end of the bad chunk
    # never saved: the states after the chunks before the bad one; returned: the bad chunk's
    _check_train(
        piped[:4], plain[:4], list(range(2, bad.update // 2 * 2 + 1, 2)), last_saved_is_returned=False
    )


@pytest.mark.slow
def test_donating_programs_of_the_unpipelined_loop_give_the_same_bits(chunked):
    plain = _compiled(ChunkedRun(chunked.config, seeds=[3, 4], target_chunks=3, pipeline=False))
    _check_train((*_train(chunked), 6), (*_train(plain), 6), [2, 4, 6])


# ---------------------------------------------------------------------------
# SweepRun (ppo-jax sweep)
# ---------------------------------------------------------------------------


def _sweep(run, stop_at=None):
    saved = {}

    def on_state(done, state, pieces):
        saved[done] = jax.device_get(run.checkpoint_tree(state, pieces))
        return done == stop_at

    result = run.run(run.fresh(), on_state=on_state)
    return result, saved


def test_sweep_pipelined_is_bitwise_the_unpipelined_loop():
    grid = make_grid(ppo_jax.load_config(None, **TINY), {"learning_rate": [1e-3, 3e-3]})
    run = _compiled(SweepRun(grid, seeds=[4, 7], log_points=3))
    # One compiled program (not donating) run by both loops; ChunkedRun's tests cover the donating one.
    for stop_at in (None, 4):
        run.pipeline = False
        ref, ref_saved = _sweep(run, stop_at)
        plain = (run.updates_done, run.stopped_early)
        run.pipeline = True
        result, saved = _sweep(run, stop_at)
        assert sorted(saved) == sorted(ref_saved) == ([2, 4, 6] if stop_at is None else [2, 4])
        for done in saved:
            _same(saved[done], ref_saved[done])
        for name in result.curves:
            np.testing.assert_array_equal(result.curves[name], ref.curves[name], err_msg=name)
        np.testing.assert_array_equal(result.final_return, ref.final_return)
        np.testing.assert_array_equal(result.env_steps, ref.env_steps)
        assert (
            (run.updates_done, run.stopped_early) == plain == ((6, False) if stop_at is None else (4, True))
        )
    plain = SweepRun(grid, seeds=[4, 7], log_points=3, pipeline=False).memory  # nothing compiled
    assert run.memory.device_bytes - plain.device_bytes == run.memory.state_bytes  # one train state more
