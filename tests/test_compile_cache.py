"""The executable cache (``ppo_jax.compile_cache``): a warm start loads the
programs a cold start compiled and trains bitwise the same; anything that
decides a program changes its key; a corrupt, foreign or stale entry is
compiled over, never an error."""

import shutil

import jax
import numpy as np
import pytest

import ppo_jax
from ppo_jax import compile_cache
from ppo_jax.driver import ChunkedRun

# 6 updates in chunks of one length (chunk_plan(6, 2) = [3, 3]): one init, one chunk program.
TINY = dict(
    total_timesteps=2 * 8 * 6, num_envs=2, num_steps=8, update_epochs=1, num_minibatches=1, hidden_sizes=[8]
)


def _bits(tree):
    return [np.ascontiguousarray(x).view(np.uint8).tobytes() for x in jax.tree.leaves(jax.device_get(tree))]


def _config(**changes):
    return ppo_jax.load_config("configs/cartpole.yaml", **{**TINY, **changes})


def _run(config, seeds=(0, 1)):
    return ChunkedRun(config, list(seeds), target_chunks=2)


def _train(run):
    state = run.compile()
    return run.run(state)


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """The tiny run compiled and trained once with an empty cache: its result and its entries."""
    directory = tmp_path_factory.mktemp("cold") / "executables"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compile_cache, "executable_dir", lambda: directory)
        run = _run(_config())
        state, metrics = _train(run)
    assert run.cache_hits == []
    return directory, state, metrics


@pytest.fixture
def cache_dir(tmp_path, monkeypatch, cold):
    """The executable cache as the cold run left it, in a directory of this test's own."""
    directory = tmp_path / "executables"
    shutil.copytree(cold[0], directory)
    monkeypatch.setattr(compile_cache, "executable_dir", lambda: directory)
    return directory


def _names(run):
    from ppo_jax import sharding
    from ppo_jax.driver import seed_keys

    keys = sharding.to_devices(seed_keys(run.seeds), run.mesh)
    _, names = run._executable_cache((keys, run.hp))
    return names


def test_warm_start_loads_every_program_and_trains_bitwise_the_same(cache_dir, cold):
    _, cold_state, cold_metrics = cold
    names = _names(_run(_config()))
    assert sorted(cache_dir.glob("*.bin")) == sorted(cache_dir / f"{names[k]}.bin" for k in ("init", 3))
    warm = _run(_config())
    warm_state, warm_metrics = _train(warm)
    assert warm.cache_hits == ["init", "chunk 3"]
    assert _bits(warm_state) == _bits(cold_state)
    assert _bits(warm_metrics) == _bits(cold_metrics)


def test_corrupt_entries_are_dropped(cache_dir):
    run = _run(_config())
    names = _names(run)
    init_path, chunk_path = cache_dir / f"{names['init']}.bin", cache_dir / f"{names[3]}.bin"
    cache = compile_cache.ExecutableCache(cache_dir, list(run.mesh.devices.flat))
    chunk_path.write_bytes(chunk_path.read_bytes()[:-100])  # truncated: fails its checksum
    init_path.write_bytes(b"not an executable")
    assert cache.load(names[3]) is None and not chunk_path.exists()
    assert cache.load(names["init"]) is None and not init_path.exists()
    assert cache.load_all(names) == {}


def test_a_foreign_entry_is_compiled_over(cache_dir, cold):
    """A well-formed entry of another program under init's key (stale, or written
    by something else) loads but does not take init's arguments: init is compiled
    and saved anew, the chunk still comes from the cache, the result is the same."""
    run = _run(_config())
    names = _names(run)
    cache = compile_cache.ExecutableCache(cache_dir, list(run.mesh.devices.flat))
    chunk = cache.load(names[3])
    cache.save(names["init"], chunk)
    state, _ = _train(run)
    assert run.cache_hits == ["chunk 3"]
    assert _bits(state) == _bits(cold[1])
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    assert compile_cache.fits(cache.load(names["init"]), (keys, run.hp))


def test_keys_follow_what_decides_the_program(monkeypatch, cache_dir):
    base = _names(_run(_config()))
    assert base == _names(_run(_config()))
    # Traced settings are arguments: another value is the same program, but off is another one.
    assert _names(_run(_config(learning_rate=1e-4, ent_coef=0.0))) == base
    assert _names(_run(_config(vf_clip=0.2)))["init"] != base["init"]
    # Static settings, the seeds' shapes, the pipeline's donation.
    assert _names(_run(_config(anneal_lr=False)))["init"] != base["init"]
    assert _names(_run(_config(), seeds=(0, 1, 2)))["init"] != base["init"]
    unpipelined = _run(_config())
    unpipelined.pipeline = False
    assert _names(unpipelined)[3] != base[3] and _names(unpipelined)["init"] == base["init"]
    # ppo_jax's own source, a package's version, XLA's flags.
    for name, value in [
        ("source_hash", lambda: "edited"),
        ("_PACKAGES", compile_cache._PACKAGES + ("pytest",)),
    ]:
        with monkeypatch.context() as patch:
            patch.setattr(compile_cache, name, value)
            assert _names(_run(_config())) != base
    with monkeypatch.context() as patch:
        patch.setenv("XLA_FLAGS", "--xla_cpu_use_thunk_runtime=true")
        assert _names(_run(_config())) != base
    assert _names(_run(_config())) == base


def test_no_cache_where_no_sound_key_exists(monkeypatch, tmp_path):
    monkeypatch.setenv(compile_cache.NO_CACHE_ENV, "1")
    assert compile_cache.executable_dir() is None
    monkeypatch.delenv(compile_cache.NO_CACHE_ENV)
    # A user's env by import path: its source is not ours to hash.
    assert compile_cache.env_packages("mypackage.envs:MyEnv") is None
    assert compile_cache.env_packages("CartPole-v1") == ()
    config = _config()
    assert compile_cache.config_key(config) is not None


@pytest.fixture
def xla_cache(tmp_path):
    """XLA's persistent cache on, in a directory of this test's own, writing every program."""
    from jax._src import compilation_cache

    compilation_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.jit(lambda x: x + 1)(1.0)  # the process now uses the cache (jax decides that once)
    yield tmp_path / "xla"
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    compilation_cache.reset_cache()


def _keep_then_load(monkeypatch, directory, cold, kept):
    """A run that may keep its programs in ``directory`` (``kept`` of them), then
    one that loads what was kept: both train bitwise the cold run."""
    _, cold_state, cold_metrics = cold
    monkeypatch.setattr(compile_cache, "executable_dir", lambda: directory)
    keeper = _run(_config())
    _train(keeper)
    assert keeper.cache_hits == [] and len(list(directory.glob("*.bin"))) == kept
    warm = _run(_config())
    state, metrics = _train(warm)
    assert warm.cache_hits == (["init", "chunk 3"] if kept else [])
    assert _bits(state) == _bits(cold_state) and _bits(metrics) == _bits(cold_metrics)


def test_programs_kept_after_an_xla_cache_hit_still_run(tmp_path, monkeypatch, cold, xla_cache):
    """XLA's persistent cache filled first (executable cache off), then a run
    that keeps its programs, then one that loads them. (An XLA-cache hit
    serializes without its functions: what is kept must be a real compile.)"""
    monkeypatch.setattr(compile_cache, "executable_dir", lambda: None)
    _train(_run(_config()))  # fills XLA's cache only
    assert any(xla_cache.iterdir())
    _keep_then_load(monkeypatch, tmp_path / "executables", cold, kept=2)


def test_keeping_twice_makes_no_xla_entry_that_a_later_keep_would_hit(tmp_path, monkeypatch, cold, xla_cache):
    """The executable cache emptied between two runs that keep programs (a new
    ppo_jax version, a cleared directory): the second must compile for real."""
    _keep_then_load(monkeypatch, tmp_path / "first", cold, kept=2)
    _keep_then_load(monkeypatch, tmp_path / "second", cold, kept=2)


def test_an_xla_entry_under_the_bypassed_key_is_not_kept(tmp_path, monkeypatch, cold, xla_cache):
    """An XLA entry made with the cache's flag off (as ppo_jax 2026-11-28 did, and
    so the CI run that found it): keeping would hit it; nothing is kept, the
    runs still train bitwise the cold run."""
    monkeypatch.setattr(compile_cache, "executable_dir", lambda: None)
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        _train(_run(_config()))
    finally:
        jax.config.update("jax_enable_compilation_cache", True)
    _keep_then_load(monkeypatch, tmp_path / "executables", cold, kept=0)


def test_a_sweep_keeps_its_programs_and_a_grid_of_the_same_size_loads_them(tmp_path, monkeypatch):
    """A sweep compiled with an empty cache keeps init and its log-point program;
    another sweep with other values in a grid of the same size loads both and
    trains bitwise what that sweep compiled without the cache trains."""
    from ppo_jax import sweeps

    def sweep(lrs, directory):
        monkeypatch.setattr(compile_cache, "executable_dir", lambda: directory)
        run = sweeps.SweepRun(sweeps.make_grid(_config(), {"learning_rate": lrs}), [0, 1], log_points=2)
        result = run.run(run.compile())
        return run.cache_hits, [result.final_return, *result.curves.values()]

    directory = tmp_path / "executables"
    assert sweep([1e-3, 3e-4], directory)[0] == []
    assert len(list(directory.glob("*.bin"))) == 2
    hits, warm = sweep([5e-4, 1e-4], directory)
    assert hits == ["init", "log point"]
    _, uncached = sweep([5e-4, 1e-4], None)
    assert _bits(warm) == _bits(uncached)
