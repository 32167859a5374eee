"""The TensorBoard logger writes every seed's event file without a writer per
seed: its hand-encoded events are protobuf's own bytes, its checksums are
CRC-32C, and TensorBoard's own reader reads back every value, the settings and
a resumed run's purge. Host-only: nothing compiles."""

import numpy as np
import pytest

from ppo_jax.io import events as tfevents
from ppo_jax.io import logs

pytest.importorskip("tensorboard")


def test_crc32c_against_the_bytewise_reference():
    from tensorboardX.crc32c import crc32c as reference  # a table, one byte at a time, in Python

    rng = np.random.default_rng(0)
    records = [
        rng.integers(0, 256, size=n, dtype=np.uint8).tobytes() for n in (0, 1, 7, 8, 300, 3, 300, 1000)
    ]
    records.append(b"123456789")
    got = tfevents.crc32c(records)
    assert [int(x) for x in got] == [reference(r) & 0xFFFFFFFF for r in records]
    assert int(got[-1]) == 0xE3069283  # the CRC-32C check value
    masked = tfevents.masked_crc32c(records)
    from tensorboardX.record_writer import masked_crc32c

    assert [int(x) for x in masked] == [masked_crc32c(r) for r in records]


def test_hand_encoded_events_are_the_protobuf_bytes():
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary

    tags = ["charts/episode_return", "losses/a_tag_longer_than_a_hundred_and_twenty_seven_bytes" + "x" * 100]
    values = np.array(
        [[[1.5, np.nan, -2.0, 0.0]], [[np.inf, 0.25, 3e-8, -0.0]]], np.float32
    )  # [tags, seeds, updates]
    steps = np.array([[128, 300, 2**40, 127]])
    data, mask = tfevents.scalar_events(tags, values, steps, wall_time=1234.5)
    for j in range(4):
        expected = Event(
            wall_time=1234.5,
            step=int(steps[0, j]),
            summary=Summary(
                value=[
                    Summary.Value(tag=tag, simple_value=values[k, 0, j])
                    for k, tag in enumerate(tags)
                    if np.isfinite(values[k, 0, j])
                ]
            ),
        )
        assert data[j][mask[j]].tobytes() == expected.SerializeToString()


def _read(path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(path))
    events.Reload()
    return events


def _chunk(seeds, first, updates, offset):
    shape = (len(seeds), updates)
    metrics = {
        "episode_return": np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + offset,
        "approx_kl": np.full(shape, 0.1 + offset, np.float32),
        "env_steps": np.broadcast_to(64 * np.arange(first + 1, first + updates + 1), shape),
    }
    metrics["episode_return"][0, 0] = np.nan  # no episode finished: no point
    return metrics


def test_each_seed_is_a_run_that_tensorboard_reads(tmp_path):
    seeds = [3, 11, 12]
    logger = logs.TensorBoardLogger(tmp_path, seeds)
    logger.log_hparams({"learning_rate": 3e-4, "hidden_sizes": [64, 64], "vf_clip": None})
    chunks = [_chunk(seeds, 0, 2, 0.0), _chunk(seeds, 2, 2, 100.0)]
    logger.log(0, chunks[0])
    logger.log(2, chunks[1])
    logger.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed_11", "seed_12", "seed_3"]
    for i, seed in enumerate(seeds):
        events = _read(tmp_path / f"seed_{seed}")
        kl = events.Scalars("losses/approx_kl")
        assert [e.step for e in kl] == [64, 128, 192, 256]
        np.testing.assert_array_equal(
            [e.value for e in kl], np.concatenate([c["approx_kl"][i] for c in chunks])
        )
        returns = np.concatenate([c["episode_return"][i] for c in chunks])
        got = events.Scalars("charts/episode_return")
        assert [e.step for e in got] == [64 * (u + 1) for u in range(4) if np.isfinite(returns[u])]
        np.testing.assert_array_equal([e.value for e in got], returns[np.isfinite(returns)])
        assert "config/text_summary" in events.Tags()["tensors"]
        assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def test_a_resumed_run_hides_what_the_interrupted_one_wrote_past_its_checkpoint(tmp_path):
    seeds = [0, 1]
    first = logs.TensorBoardLogger(tmp_path, seeds)
    first.log(0, _chunk(seeds, 0, 4, 0.0))  # updates 0-3; the checkpoint was after update 2
    first.close()
    resumed = logs.TensorBoardLogger(tmp_path, seeds, purge_step=2 * 64 + 1)  # as cli.loggers makes it
    resumed.log(2, _chunk(seeds, 2, 2, 100.0))  # updates 2-3 again, other values
    resumed.close()
    assert len(list((tmp_path / "seed_1").iterdir())) == 2  # a file per session
    kl = _read(tmp_path / "seed_1").Scalars("losses/approx_kl")
    assert [e.step for e in kl] == [64, 128, 192, 256]
    np.testing.assert_allclose([e.value for e in kl], [0.1, 0.1, 100.1, 100.1], rtol=1e-6)


def test_varints_against_the_one_at_a_time_encoding():
    rng = np.random.default_rng(1)
    numbers = np.concatenate(
        [
            [0, 1, 127, 128, 16383, 16384, 2**63 - 1],
            rng.integers(0, 2**63 - 1, 200),
            rng.integers(0, 2**20, 200),
        ]
    )
    data, mask = tfevents._varints(numbers)
    for n, row, keep in zip(numbers, data, mask):
        assert row[keep].tobytes() == tfevents._varint(int(n))
    assert tfevents._varint(300) == b"\xac\x02"  # protobuf's documented example
