"""Population-based training: selection, copy and explore against numpy references
(under jit and vmap); a population of one without ready points is plain training;
a run's lineage is consistent with its settings; bad options are refused before
anything compiles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppo_jax
from ppo_jax import population as pbt_lib
from ppo_jax.config import ConfigError
from ppo_jax.population import Explore, PBTRun, Population
from ppo_jax.sweeps import CURVE_NAMES

TINY = dict(total_timesteps=4 * 32 * 8, num_envs=4, num_steps=32, update_epochs=2, num_minibatches=2)
LR = Explore("learning_rate", 1e-4, 1e-2, log=True)
CLIP = Explore("clip_eps", 0.05, 0.3)


def _select_reference(fitness: np.ndarray, cut: int):
    fitness = np.where(np.isnan(fitness), -np.inf, fitness)
    order = np.argsort(fitness, kind="stable")
    return set(order[:cut].tolist()), set(order[len(fitness) - cut :].tolist())


@pytest.mark.parametrize("wrap", ["plain", "jit", "vmap"])
def test_selection_replaces_the_bottom_with_members_of_the_top(wrap):
    rng = np.random.default_rng(0)
    fitness = rng.normal(size=(6, 10)).astype(np.float32)
    fitness[0, 3] = np.nan  # no episode finished: counts lowest
    keys = jax.random.split(jax.random.PRNGKey(1), 6)
    select = lambda k, f: pbt_lib.select_parents(k, f, 3)
    if wrap == "jit":
        parents = np.stack([jax.jit(select)(k, f) for k, f in zip(keys, fitness)])
    elif wrap == "vmap":
        parents = np.asarray(jax.vmap(select)(keys, fitness))
    else:
        parents = np.stack([select(k, f) for k, f in zip(keys, fitness)])
    for row, f in zip(parents, fitness):
        bottom, top = _select_reference(f, 3)
        for i, parent in enumerate(row):
            if i in bottom:
                assert parent in top
            else:
                assert parent == i
    assert 3 in _select_reference(fitness[0], 3)[0]
    np.testing.assert_array_equal(pbt_lib.select_parents(keys[0], jnp.asarray(fitness[0]), 0), np.arange(10))


def test_perturb_stays_in_range_and_is_deterministic_given_the_key():
    keys = jax.random.split(jax.random.PRNGKey(2), 4000)
    values = jnp.asarray(np.random.default_rng(3).uniform(1e-4, 1e-2, 4000), jnp.float32)
    run = jax.jit(jax.vmap(lambda k, v: pbt_lib.perturb(k, v, LR, 0.25)))
    out = np.asarray(run(keys, values))
    np.testing.assert_array_equal(out, np.asarray(run(keys, values)))
    assert not np.array_equal(out, np.asarray(run(jax.random.split(jax.random.PRNGKey(4), 4000), values)))
    assert (out >= LR.low).all() and (out <= LR.high).all()
    v = np.asarray(values, np.float64)
    perturbed = np.isclose(out, np.clip(v * 0.8, LR.low, LR.high), rtol=1e-6) | np.isclose(
        out, np.clip(v * 1.25, LR.low, LR.high), rtol=1e-6
    )
    assert 0.70 < perturbed.mean() < 0.80  # the rest was resampled (p = 0.25)
    only = jax.vmap(lambda k, v: pbt_lib.perturb(k, v, LR, 0.0))(keys, values)
    np.testing.assert_allclose(
        np.asarray(only),
        np.where(
            np.isclose(np.asarray(only), np.clip(v * 0.8, LR.low, LR.high), rtol=1e-6),
            np.clip(v * 0.8, LR.low, LR.high),
            np.clip(v * 1.25, LR.low, LR.high),
        ),
        rtol=1e-6,
    )
    drawn = np.log10(np.asarray(jax.vmap(lambda k, v: pbt_lib.perturb(k, v, LR, 1.0))(keys, values)))
    # log-uniform on [1e-4, 1e-2]: uniform in log10 on [-4, -2]
    assert abs(drawn.mean() + 3) < 0.05 and abs(drawn.std() - 2 / np.sqrt(12)) < 0.03
    linear = np.asarray(pbt_lib.draw(jax.random.PRNGKey(5), CLIP, (4000,)))
    assert (linear >= CLIP.low).all() and (linear <= CLIP.high).all() and abs(linear.mean() - 0.175) < 0.01


@pytest.fixture(scope="module")
def states():
    """Train states of 8 recurrent runs (a carry to keep), every leaf distinct per run."""
    config = ppo_jax.load_config(None, **TINY, recurrent="gru")
    program = ppo_jax.build(config)
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    state = jax.jit(jax.vmap(program.init, in_axes=(0, None)))(keys, config.hyperparams())

    def distinct(i, x):
        shift = jnp.arange(8).reshape((8,) + (1,) * (x.ndim - 1))
        return x + (shift * (i + 1)).astype(x.dtype)

    leaves, tree = jax.tree.flatten(state)
    return config, jax.tree.unflatten(tree, [distinct(i, x) for i, x in enumerate(leaves)])


def test_copy_takes_every_learned_leaf_of_the_parent_and_keeps_envs_and_keys(states):
    _, state = states
    parents = jnp.asarray([3, 1, 3, 0, 4, 7, 7, 2], jnp.int32)
    out = jax.jit(pbt_lib.copy_state)(state, parents)
    copied = {
        "params": (out.params, state.params),
        "opt_state": (out.opt_state, state.opt_state),
        "norm.obs": (out.norm.obs, state.norm.obs),
        "norm.ret": (out.norm.ret, state.norm.ret),
        "update_step": (out.update_step, state.update_step),
        "kl_ref_coef": (out.kl_ref_coef, state.kl_ref_coef),
    }
    kept = {
        "env": (out.env, state.env),
        "norm.discounted_return": (out.norm.discounted_return, state.norm.discounted_return),
        "key": (out.key, state.key),
        "memory": (out.memory, state.memory),
    }
    count = 0
    for what, (new, old) in copied.items():
        for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(old)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[np.asarray(parents)], err_msg=what)
            count += 1
    for what, (new, old) in kept.items():
        for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(old)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=what)
            count += 1
    assert count == len(jax.tree.leaves(state))  # every leaf is either copied or kept


def test_exploit_explore_moves_the_settings_with_the_state(states):
    config, state = states
    population = Population(8, 2, fraction=0.25, resample=0.0)
    hp = jax.tree.map(lambda x: jnp.full((8,), x), config.hyperparams())
    hp = hp.replace(learning_rate=jnp.linspace(2e-4, 5e-3, 8), clip_eps=jnp.linspace(0.1, 0.2, 8))
    fitness = jnp.asarray([5.0, 1.0, 7.0, np.nan, 6.0, 2.0, 8.0, 4.0])
    step = jax.jit(
        lambda k, s, h, f: pbt_lib.exploit_explore(k, s, h, f, explores=(LR, CLIP), population=population)
    )
    new_state, new_hp, parents = step(jax.random.PRNGKey(7), state, hp, fitness)
    parents = np.asarray(parents)
    assert set(np.flatnonzero(parents != np.arange(8))) == {1, 3}  # the two lowest
    assert set(parents[[1, 3]]) <= {2, 6}  # from the two highest
    for e in (LR, CLIP):
        old, new = np.asarray(getattr(hp, e.name)), np.asarray(getattr(new_hp, e.name))
        for i in range(8):
            if parents[i] == i:
                assert new[i] == old[i]
            else:
                choices = np.clip(old[parents[i]] * np.array([0.8, 1.25]), e.low, e.high)
                assert np.isclose(new[i], choices, rtol=1e-6).any(), (e.name, i, new[i], choices)
    np.testing.assert_array_equal(np.asarray(new_hp.gamma), np.asarray(hp.gamma))
    for a, b in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[parents])


def test_a_population_of_one_without_ready_points_is_plain_training():
    config = ppo_jax.load_config(None, **TINY)
    run = PBTRun(config, [LR], Population(1, None, seed=3), log_points=3)
    result = run.run(run.compile())
    train = jax.jit(ppo_jax.make_train(config))
    state, metrics = train(jax.random.PRNGKey(3))
    start = 0
    for i, length in enumerate(run.plan):
        part = {k: np.asarray(v[start : start + length], np.float64) for k, v in metrics.items()}
        start += length
        count = part["episodes"].sum()
        expected = np.where(part["episodes"] > 0, part["episode_return"] * part["episodes"], 0).sum() / count
        np.testing.assert_allclose(result.curves["episode_return"][0, i], expected, rtol=2e-5)
        np.testing.assert_allclose(
            result.curves["policy_loss"][0, i], part["policy_loss"].mean(), rtol=2e-4, atol=1e-6
        )
    final = ppo_jax.io.logs.final_returns({k: np.asarray(v)[None] for k, v in metrics.items()})[0]
    np.testing.assert_allclose(result.final_return[0], final, rtol=2e-5)
    for a, b in zip(jax.tree.leaves(run.carry[0].params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b), rtol=2e-5, atol=2e-6)
    assert result.parents.shape == (0, 1)
    assert result.schedule() == [(0, {"learning_rate": pytest.approx(config.learning_rate)})]


@pytest.fixture(scope="module")
def population_run():
    config = ppo_jax.load_config(None, **TINY)
    run = PBTRun(config, [LR, CLIP], Population(6, 3, fraction=0.34, resample=0.3, seed=1, init="uniform"))
    start = run.compile()
    return run, start, run.run(start)


def test_log_points_end_at_ready_points_and_the_settings_follow_the_lineage(population_run):
    run, _, result = population_run
    assert run.items == [(1, None), (1, None), (1, 0), (1, None), (1, None), (1, 1), (1, None), (1, None)]
    np.testing.assert_array_equal(result.ready_updates, [3, 6])
    assert result.parents.shape == (2, 6) and (result.parents != np.arange(6)).sum(1).tolist() == [2, 2]
    for k, update in enumerate(result.ready_updates):
        before, after = update - 1, update  # log points are one update long here
        for name, values in result.values.items():
            np.testing.assert_array_equal(values[:, after], result.ready_values[name][k])
            kept = result.parents[k] == np.arange(6)
            np.testing.assert_array_equal(values[kept, after], values[kept, before])
    line = result.lineage()
    assert [u for u, _ in line] == [0, 3, 6] and line[-1][1] == result.best
    schedule = result.schedule()
    for (_, settings), (update, member) in zip(schedule, line):
        for name, value in settings.items():
            assert value == pytest.approx(float(result.values[name][member, update]), rel=1e-6)


def test_the_run_is_deterministic(population_run):
    run, start, result = population_run
    again = run.run(start)  # the start was not donated: the same inputs again
    for name in CURVE_NAMES:
        np.testing.assert_array_equal(again.curves[name], result.curves[name])
    np.testing.assert_array_equal(again.parents, result.parents)


@pytest.mark.parametrize(
    "explores, population, message",
    [
        ([Explore("num_envs", 2, 8)], Population(4, 2), "static setting"),
        ([Explore("learning_rat", 1e-4, 1e-2)], Population(4, 2), "Did you mean 'learning_rate'"),
        ([Explore("learning_rate", 1e-2, 1e-4)], Population(4, 2), "LOW < HIGH"),
        ([Explore("learning_rate", 0, 1e-2, True)], Population(4, 2), "log range needs LOW > 0"),
        ([Explore("learning_rate", 1e-2, 1e-1)], Population(4, 2), "outside the range"),
        ([Explore("gamma", 0.9, 1.5)], Population(4, 2), "gamma"),
        ([Explore("target_kl", 0.01, 0.1)], Population(4, 2), r"off \(null\)"),
        ([Explore("kl_ref_coef", 0.0, 0.1)], Population(4, 2), "reference policy"),
        ([LR, LR], Population(4, 2), "explored twice"),
        ([], Population(4, 2), "at least one setting"),
        ([LR], Population(4, 0), "1 ≤ READY < 8"),
        ([LR], Population(4, 8), "1 ≤ READY < 8"),
        ([LR], Population(3, 2), "selects none"),
        ([LR], Population(4, 2, fraction=0.75), "fraction must lie in"),
        ([LR], Population(4, 2, resample=1.5), "resample is a probability"),
        ([LR], Population(0, 2), "population must be"),
        ([LR], Population(4, 2, init="grid"), "init must be"),
    ],
)
def test_bad_options_are_refused_before_compiling(explores, population, message, monkeypatch):
    monkeypatch.setattr(pbt_lib.SweepRun, "compile", lambda *_: pytest.fail("compiled"))
    config = ppo_jax.load_config(None, **TINY, learning_rate=1e-3)
    with pytest.raises(ConfigError, match=message):
        PBTRun(config, explores, population)


@pytest.mark.parametrize(
    "text, message",
    [
        ("learning_rate", "expected KEY=LOW:HIGH"),
        ("learning_rate=1e-4", "expected"),
        ("learning_rate=a:b", "must be numbers"),
        ("learning_rate=1:2:lin", "expected"),
    ],
)
def test_bad_explore_text_is_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        pbt_lib.parse_explore(text)
    assert pbt_lib.parse_explore("learning_rate=1e-5:1e-2:log") == Explore("learning_rate", 1e-5, 1e-2, True)


def test_ppo_jax_pbt_is_callable_as_the_issue_spells_it():
    config = ppo_jax.load_config(None, **TINY)
    assert callable(ppo_jax.pbt) and pbt_lib.Explore is Explore
    with pytest.raises(ConfigError, match="static setting"):
        ppo_jax.pbt(config, {"num_envs": (2, 8)}, population=4, ready=2)
    with pytest.raises(ConfigError, match="expected \\(low, high\\)"):
        ppo_jax.pbt(config, {"learning_rate": (1e-4,)}, population=4, ready=2)
