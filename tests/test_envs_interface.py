"""The env interface: id forms, env_kwargs, wrappers (obs_indices, flattening,
time limit), a given env instance, and the errors for bad ids."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import environment, spaces

import ppo_jax
from ppo_jax import envs
from ppo_jax.config import ConfigError
from ppo_jax.envs import VecEnv, wrappers

TINY = dict(total_timesteps=512, num_envs=4, num_steps=32, num_minibatches=2, update_epochs=1)


# ---------------------------------------------------------------------------
# A small env with a structured observation, an action mask and no time limit
# in its params: the cases the wrappers are for.
# ---------------------------------------------------------------------------


@struct.dataclass
class GridState:
    pos: jax.Array
    time: jax.Array


@struct.dataclass
class GridParams:
    size: int = struct.field(pytree_node=False, default=5)  # shapes depend on it: static


class MaskedGrid(environment.Environment):
    """A walk on ``[0, size)``: action 0 left, 1 right, 2 invalid at the edges; ends at the right edge."""

    @property
    def default_params(self):
        return GridParams()

    def _obs(self, state, params):
        at_edge = (state.pos == 0) | (state.pos == params.size - 1)
        return {
            "grid": jax.nn.one_hot(state.pos, params.size).reshape(1, params.size),
            "time": state.time.astype(jnp.float32)[None],
            "action_mask": jnp.array([True, True, True]).at[2].set(~at_edge),
        }

    def reset_env(self, key, params):
        state = GridState(pos=jax.random.randint(key, (), 0, params.size - 1), time=jnp.asarray(0))
        return self._obs(state, params), state

    def step_env(self, key, state, action, params):
        pos = jnp.clip(state.pos + jnp.where(action == 1, 1, -1), 0, params.size - 1)
        state = GridState(pos=pos, time=state.time + 1)
        done = pos == params.size - 1
        return self._obs(state, params), state, done.astype(jnp.float32), done, {}

    def action_space(self, params):
        return spaces.Discrete(3)

    def observation_space(self, params):
        return spaces.Dict({})


def make_grid(size: int = 5):
    """A factory: ``env_kwargs`` reach it; it returns ``(env, params)``."""
    env = MaskedGrid()
    return env, env.default_params.replace(size=size)


def test_id_forms_parse():
    assert envs.parse_env_id("CartPole-v1") == ("gymnax", "", "CartPole-v1")
    assert envs.parse_env_id("jumanji:Snake-v1") == ("suite", "jumanji", "Snake-v1")
    assert envs.parse_env_id("my_pkg.envs:Grid") == ("user", "my_pkg.envs", "Grid")
    assert set(envs.SUITES) == {"brax", "playground", "jumanji", "craftax", "navix", "xminigrid"}


def test_the_suites_table_and_pyprojects_extras_agree():
    """Each suite's extra installs exactly the packages the table keys its programs by, and the
    ``envs`` extra installs every suite: pyproject cannot read the table, so this test does."""
    import re

    import tomllib

    extras = tomllib.loads(Path("pyproject.toml").read_text())["project"]["optional-dependencies"]
    for prefix, suite in envs.SUITES.items():
        assert (
            suite.module == f"ppo_jax.envs.{prefix}"
            and Path(*suite.module.split(".")).with_suffix(".py").is_file()
        )
        assert suite.extra in extras, f"suite {prefix!r}: no extra {suite.extra!r} in pyproject.toml"
        names = {re.split(r"[^A-Za-z0-9._-]", r, maxsplit=1)[0] for r in extras[suite.extra]}
        assert names == set(suite.packages), (
            f"suite {prefix!r}: extra {sorted(names)} != table {suite.packages}"
        )
    (envs_extra,) = extras["envs"]
    assert set(re.fullmatch(r"ppo_jax\[(.*)\]", envs_extra).group(1).split(",")) == {
        s.extra for s in envs.SUITES.values()
    }
    others = {"dev", "docs", "wandb", "bench", "cuda", "envs"}
    assert set(extras) - others == {s.extra for s in envs.SUITES.values()}


@pytest.mark.parametrize(
    "env_id, message",
    [
        ("CartPol-v1", "Did you mean 'CartPole-v1'"),
        ("jumaji:Snake-v1", "unknown suite 'jumaji'"),
        ("no_such_module_here.sub:Env", "cannot import 'no_such_module_here'"),
        ("tests.test_envs_interface:NoSuchEnv", "has no attribute 'NoSuchEnv'.*MaskedGrid"),
        ("tests.test_envs_interface:TINY", "not a class or factory"),
        ("tests.test_envs_interface:not_an_env", "does not subclass gymnax's Environment"),
        ("jumanji:", "names no env"),
        ("a:b:c", "neither a gymnax id"),
    ],
)
def test_bad_ids_are_refused_with_what_would_be_right(env_id, message):
    with pytest.raises(ConfigError, match=message):
        ppo_jax.load_config(None, env_id=env_id)


def not_an_env():
    return object()


def test_missing_suite_package_names_the_extra(monkeypatch, tmp_path):
    """An adapter imports its suite at the top; when that package is missing the error names the pip extra."""
    (tmp_path / "fake_suite_adapter.py").write_text("import a_suite_package_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        envs.SUITES,
        "fakesuite",
        envs.Suite("fake_suite_adapter", "fakesuite", ("a_suite_package_that_is_not_installed",)),
    )
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[fakesuite\]"'):
        ppo_jax.load_config(None, env_id="fakesuite:Anything")


def test_train_env_option_takes_suite_and_import_path_ids(monkeypatch, tmp_path):
    """``ppo-jax train --env ID`` builds its defaults from any id form, and names the extra of a missing suite."""
    from ppo_jax.config import env_defaults

    assert env_defaults("tests.test_envs_interface:MaskedGrid") == {
        "env_id": "tests.test_envs_interface:MaskedGrid"
    }
    (tmp_path / "fake_suite_adapter2.py").write_text("import a_suite_package_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        envs.SUITES,
        "fakesuite",
        envs.Suite("fake_suite_adapter2", "fakesuite", ("a_suite_package_that_is_not_installed",)),
    )
    with pytest.raises(
        ConfigError, match=r'--env: suite .fakesuite. needs its package.*pip install -e "\.\[fakesuite\]"'
    ):
        env_defaults("fakesuite:Anything")
    with pytest.raises(ConfigError, match="unknown suite 'jumaji'"):
        env_defaults("jumaji:Snake-v1")


def test_env_kwargs_reach_the_constructor():
    config = ppo_jax.load_config(
        None, env_id="tests.test_envs_interface:MaskedGrid", env_kwargs={}, max_episode_steps=20
    )
    assert config.env_kwargs == {}
    with pytest.raises(
        ConfigError, match=r"MaskedGrid\(\*\*env_kwargs\) with env_kwargs \{'size': 3\} failed"
    ):
        ppo_jax.load_config(
            None, env_id="tests.test_envs_interface:MaskedGrid", env_kwargs={"size": 3}, max_episode_steps=20
        )
    config = ppo_jax.load_config(
        None, env_id="tests.test_envs_interface:make_grid", env_kwargs={"size": 8}, max_episode_steps=20
    )
    assert VecEnv.from_config(config).spec.obs_shape == (9,)  # one-hot of 8 cells, and the time
    # from --set: a YAML mapping in a string
    config = ppo_jax.load_config(None, env_id="CartPole-v1", env_kwargs="{}")
    assert config.env_kwargs == {}
    with pytest.raises(ConfigError, match="'env_kwargs' must be a mapping"):
        ppo_jax.load_config(None, env_kwargs="[1, 2]")


def test_gymnax_env_kwargs_are_passed():
    """gymnax's MinAtar envs take ``use_minimal_action_set`` in their constructor."""
    full = envs.VecEnv.from_config(ppo_jax.load_config(None, env_id="Breakout-MinAtar", network="cnn"))
    config = ppo_jax.load_config(
        None, env_id="Breakout-MinAtar", network="cnn", env_kwargs={"use_minimal_action_set": False}
    )
    assert config.to_dict()["env_kwargs"] == {"use_minimal_action_set": False}
    assert envs.VecEnv.from_config(config).spec.action_dim > full.spec.action_dim


# ---------------------------------------------------------------------------
# obs_indices
# ---------------------------------------------------------------------------


def test_obs_indices_keep_the_listed_features():
    """Stateless CartPole: the same episodes as CartPole, seen through features [0, 2]."""
    full = VecEnv.from_config(ppo_jax.load_config(None))
    part = VecEnv.from_config(ppo_jax.load_config(None, obs_indices=[0, 2]))
    assert part.spec.obs_shape == (2,) and full.spec.obs_shape == (4,)
    assert part.env.observation_space(part.params).shape == (2,)
    key = jax.random.PRNGKey(3)
    s_full, s_part = full.reset(key, 5), part.reset(key, 5)
    step_full, step_part = jax.jit(full.step), jax.jit(part.step)
    for t in range(40):
        k = jax.random.fold_in(key, t)
        action = jax.random.randint(k, (5,), 0, 2)
        s_full, r_full = step_full(k, s_full, action)
        s_part, r_part = step_part(k, s_part, action)
        np.testing.assert_array_equal(s_part.obs, s_full.obs[:, [0, 2]])
        np.testing.assert_array_equal(r_part.final_obs, r_full.final_obs[:, [0, 2]])
        np.testing.assert_array_equal(r_part.terminated, r_full.terminated)
        np.testing.assert_array_equal(r_part.reward, r_full.reward)


@pytest.mark.parametrize(
    "indices, message",
    [([0, 4], r"\[4\] outside the observation's 4 features"), ([], "at least one"), ([1, 1], "twice")],
)
def test_bad_obs_indices_are_refused(indices, message):
    with pytest.raises(ConfigError, match=message):
        ppo_jax.load_config(None, obs_indices=indices)


def test_obs_indices_need_a_flat_observation():
    with pytest.raises(ConfigError, match="needs a flat observation"):
        ppo_jax.load_config(None, env_id="Breakout-MinAtar", network="cnn", obs_indices=[0])


def test_new_settings_round_trip():
    config = ppo_jax.load_config(None, obs_indices=[0, 2], max_episode_steps=100, env_kwargs={})
    assert ppo_jax.load_config(None, **config.to_dict()) == config
    assert config.to_dict()["obs_indices"] == [0, 2]


# ---------------------------------------------------------------------------
# Structured observations, masks and the time limit
# ---------------------------------------------------------------------------


def test_structured_observation_is_flattened_in_tree_order():
    env = MaskedGrid()
    params = env.default_params
    flat_env = wrappers.FlattenObservation.if_needed(env, params)
    assert isinstance(flat_env, wrappers.FlattenObservation)
    obs, state = flat_env.reset_env(jax.random.PRNGKey(1), params)
    raw, _ = env.reset_env(jax.random.PRNGKey(1), params)
    # keys sorted ("grid" before "time"), each raveled; the mask kept apart
    expected = np.concatenate([np.ravel(raw["grid"]), np.ravel(raw["time"])])
    np.testing.assert_array_equal(obs.obs, expected)
    np.testing.assert_array_equal(obs.action_mask, raw["action_mask"])
    assert wrappers.FlattenObservation.if_needed(flat_env, params) is flat_env
    cartpole, cp_params = envs.make("CartPole-v1")
    assert wrappers.FlattenObservation.if_needed(cartpole, cp_params) is cartpole


def test_env_without_a_time_limit_needs_max_episode_steps():
    with pytest.raises(ConfigError, match="set 'max_episode_steps'|Set 'max_episode_steps'"):
        ppo_jax.load_config(None, env_id="tests.test_envs_interface:MaskedGrid")
    config = ppo_jax.load_config(None, env_id="tests.test_envs_interface:MaskedGrid", max_episode_steps=7)
    vec = VecEnv.from_config(config)
    assert isinstance(vec.env, wrappers.TimeLimit)
    assert vec.spec == envs.EnvSpec(config.env_id, (6,), True, 3, (), (), 7, True)


def test_time_limit_truncates_and_keeps_the_final_observation():
    """Always left: the walk never reaches the right edge, so every episode is cut at 7 steps."""
    config = ppo_jax.load_config(None, env_id="tests.test_envs_interface:MaskedGrid", max_episode_steps=7)
    vec = VecEnv.from_config(config)
    state = vec.reset(jax.random.PRNGKey(0), 3)
    step = jax.jit(vec.step)
    for t in range(1, 16):
        state, result = step(jax.random.PRNGKey(t), state, jnp.zeros(3, jnp.int32))
        cut = t % 7 == 0
        np.testing.assert_array_equal(result.truncated, np.full(3, cut))
        assert not np.asarray(result.terminated).any()
        if cut:
            np.testing.assert_array_equal(result.episode_length, np.full(3, 7))
            # the final observation is the pre-reset one: position 0 (one-hot), time 7
            np.testing.assert_array_equal(result.final_obs[:, :6], np.tile([1, 0, 0, 0, 0, 7], (3, 1)))
            np.testing.assert_array_equal(state.obs[:, 5], np.zeros(3))  # reset: time 0
        # the mask follows the observation it belongs to: action 2 invalid at the edge
        np.testing.assert_array_equal(state.action_mask[:, 2], state.obs[:, 0] == 0)


def test_max_episode_steps_replaces_the_params_limit():
    vec = VecEnv.from_config(ppo_jax.load_config(None, max_episode_steps=20))
    assert vec.spec.max_episode_steps == 20 and vec.params.max_steps_in_episode == 20


# ---------------------------------------------------------------------------
# A given env instance
# ---------------------------------------------------------------------------


def test_make_train_trains_a_given_instance():
    """``make_train(config, env=...)``: the instance is trained (through the config's wrappers);
    ``env_id`` is only its label."""
    config = ppo_jax.PPOConfig(env_id="my-cartpole", obs_indices=(0, 2), **TINY)
    env, params = envs.make("CartPole-v1")
    program = ppo_jax.build(config, env=env, env_params=params.replace(max_steps_in_episode=50))
    assert program.vec_env.spec.env_id == "my-cartpole"
    assert program.vec_env.spec.max_episode_steps == 50 and program.vec_env.spec.obs_shape == (2,)
    train = ppo_jax.make_train(config, env=env, env_params=params.replace(max_steps_in_episode=50))
    state, metrics = jax.jit(train)(jax.random.PRNGKey(0))
    assert np.isfinite(np.asarray(metrics["value_loss"])).all()
    # the label alone, without the instance, is refused
    with pytest.raises(ConfigError, match="unknown 'env_id' 'my-cartpole'"):
        ppo_jax.build(config)


def test_action_masks_reach_sampling_log_prob_and_the_update():
    """A masked env: the rollout never takes an invalid action, its stored log-probs are those
    of the masked distribution, the update's are too (ratio 1 before the first step), and
    greedy evaluation respects the mask."""
    from ppo_jax.core.distributions import Categorical
    from ppo_jax.rollout import collect
    from ppo_jax.update import Batch, ppo_loss

    config = ppo_jax.PPOConfig(env_id="grid", max_episode_steps=7, ent_coef=0.0, **TINY)
    program = ppo_jax.build(config, env=MaskedGrid())
    assert program.vec_env.spec.action_mask
    hp = config.hyperparams()
    state = program.init(jax.random.PRNGKey(0), hp)
    # make the sometimes-invalid action the favourite: a large bias on logit 2 (the only [3] leaf)
    params = jax.tree.map(lambda x: x.at[2].add(20.0) if x.shape == (3,) else x, state.params)
    assert not jax.tree.all(jax.tree.map(jnp.array_equal, params, state.params))
    from ppo_jax.rollout import RolloutOptions

    _, _, traj, _ = jax.jit(
        lambda k, p, e, n: collect(
            k,
            p,
            e,
            n,
            hp.gamma,
            networks=program.networks,
            vec_env=program.vec_env,
            options=RolloutOptions(config.num_steps, False, False),
        )
    )(jax.random.PRNGKey(1), params, state.env, state.norm)
    mask, action = np.asarray(traj.action_mask), np.asarray(traj.action)
    picked = np.take_along_axis(mask, action[..., None], -1)[..., 0]
    assert picked.all(), "an invalid action was sampled"
    assert (~mask[..., 2]).any() and (action == 2).any()  # both cases occurred
    dist, _ = program.networks.apply(params, traj.obs)
    logits = np.asarray(dist.logits, np.float64)
    e = np.where(mask, np.exp(logits - logits.max(-1, keepdims=True)), 0.0)
    expected = np.log(np.take_along_axis(e / e.sum(-1, keepdims=True), action[..., None], -1)[..., 0])
    np.testing.assert_allclose(traj.log_prob, expected, rtol=1e-4, atol=1e-4)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])
    batch = Batch(
        obs=flat(traj.obs),
        action=flat(traj.action),
        log_prob=flat(traj.log_prob),
        value=flat(traj.value),
        advantage=flat(traj.value),
        target=flat(traj.value),
        action_mask=flat(traj.action_mask),
    )
    from ppo_jax.update import UpdateOptions

    _, aux = ppo_loss(params, batch, hp, program.networks, UpdateOptions.from_config(config))
    assert abs(float(aux["approx_kl"])) < 1e-6 and float(aux["clip_fraction"]) == 0.0
    p = e / e.sum(-1, keepdims=True)
    masked_entropy = -np.sum(np.where(mask, p * np.log(np.where(mask, p, 1.0)), 0.0), -1).mean()
    np.testing.assert_allclose(float(aux["entropy"]), masked_entropy, rtol=1e-4, atol=1e-5)
    assert abs(masked_entropy - float(Categorical(dist.logits).entropy().mean())) > 0.1  # the two differ here
    # greedy actions respect the mask too (the mode of the masked distribution)
    from ppo_jax.runs import PolicyParams, make_act

    act = make_act(program.networks, program.vec_env, normalize_obs=False)
    # 64 reset states, some at the left edge where the favourite action 2 is invalid
    keys = jax.random.split(jax.random.PRNGKey(2), 64)
    obs, _ = jax.vmap(program.vec_env.env.reset_env, in_axes=(0, None))(keys, program.vec_env.params)
    valid = np.asarray(obs.action_mask)
    edge = ~valid[:, 2]
    assert edge.any() and (~edge).any()
    greedy = np.asarray(act(PolicyParams(params, None), obs))
    assert valid[np.arange(64), greedy].all()
    assert (greedy[~edge] == 2).all() and (greedy[edge] != 2).all()  # the bias rules where it may
