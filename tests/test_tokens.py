"""The miniature language task: rewards against plain-Python scoring of the
documented grammar and reward model, observations, termination."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppo_jax
from ppo_jax.envs import VecEnv, env_spec
from ppo_jax.envs import tokens as T


def python_fluency(sentence):
    prev, out = "<s>", []
    for word in sentence:
        out.append(1.0 if word in T.GRAMMAR[prev] else -1.0)
        prev = word
    return out


def python_rm(sentence):
    return sum(word in ("good", "!") for word in sentence)


def _play(env_id, actions):
    """Step B envs through actions [T, B] (jitted scan); rewards and flags [T, B], observations [T+1, B, obs]."""
    vec = VecEnv(env_id)

    def run(actions):
        state = vec.reset(jax.random.PRNGKey(0), actions.shape[1])

        def step(state, a):
            new, result = vec.step(jax.random.PRNGKey(1), state, a)
            return new, (result.reward, result.terminated, result.truncated, state.obs)

        last, out = jax.lax.scan(step, state, actions)
        return out, last.obs

    return jax.device_get(jax.jit(run)(jnp.asarray(actions)))


def test_rewards_match_the_documented_scoring_on_random_sentences():
    rng = np.random.default_rng(0)
    sentences = rng.integers(0, len(T.VOCAB), size=(T.LENGTH, 64))
    sentences[:, 0] = [T.VOCAB.index(w) for w in ["the", "good", "cat", "sat", "!", "the", "good", "dog"]]
    words = [[T.VOCAB[i] for i in sentences[:, b]] for b in range(sentences.shape[1])]
    (fluency, terminated, truncated, _), _ = _play("ppo_jax.envs.tokens:Fluency", sentences)
    np.testing.assert_array_equal(fluency.T, [python_fluency(w) for w in words])
    (rm, _, _, _), _ = _play("ppo_jax.envs.tokens:RewardModel", sentences)
    np.testing.assert_array_equal(rm[:-1], 0.0)
    np.testing.assert_array_equal(rm[-1], [python_rm(w) for w in words])
    np.testing.assert_array_equal(rm[-1], T.rm_score(sentences.T))
    assert rm[-1, 0] == 3 and fluency[:, 0].sum() == T.LENGTH  # the best grammatical sentence
    # Every sentence ends by termination after LENGTH tokens, never by truncation.
    np.testing.assert_array_equal(
        terminated, np.broadcast_to(np.arange(T.LENGTH)[:, None] == T.LENGTH - 1, terminated.shape)
    )
    assert not truncated.any()


def test_the_quirk_pays_more_than_any_grammatical_sentence():
    hack = np.full((T.LENGTH, 1), T.VOCAB.index("!"))
    (rm, _, _, _), _ = _play("ppo_jax.envs.tokens:RewardModel", hack)
    assert rm[-1, 0] == T.LENGTH
    assert T.grammatical_fraction(hack.T)[0] < 0.2


def test_observation_is_the_last_tokens_and_the_position():
    sentence = [T.VOCAB.index(w) for w in ["the", "very", "good", "dog", "ran", "the", "cat", "sat"]]
    (_, _, _, obs), _ = _play("ppo_jax.envs.tokens:Fluency", np.asarray(sentence)[:, None])
    width = len(T.VOCAB) + 1
    assert env_spec("ppo_jax.envs.tokens:RewardModel").obs_shape == (T.CONTEXT * width + T.LENGTH,)
    for t in range(T.LENGTH):
        o = obs[t, 0]
        context = [T.BOS] * T.CONTEXT + sentence[:t]
        want = np.concatenate([np.eye(width)[c] for c in context[-T.CONTEXT :]] + [np.eye(T.LENGTH)[t]])
        np.testing.assert_array_equal(o, want)


def test_an_unknown_task_is_refused():
    with pytest.raises(ValueError, match="task must be one of"):
        T.Tokens("poetry")


@pytest.mark.parametrize("name, task", [("tokens_pretrain", "Fluency"), ("tokens_rlhf", "RewardModel")])
def test_the_rlhf_stage_configs_load_and_build(name, task):
    """Stage 1 learns fluency with no leash; stage 2 optimizes the reward model's score with a
    KL penalty, on the same sentences (the networks of stage 1 load into stage 2)."""
    config = ppo_jax.load_config(Path(__file__).parent.parent / "configs" / "rlhf" / f"{name}.yaml")
    assert config.env_id == f"ppo_jax.envs.tokens:{task}"
    assert (config.kl_ref_coef > 0) == (task == "RewardModel")
    program = ppo_jax.build(config)
    spec = program.vec_env.spec
    assert spec.discrete and spec.action_dim == len(T.VOCAB)
    assert spec.obs_shape == (T.CONTEXT * (len(T.VOCAB) + 1) + T.LENGTH,)
    assert config.num_steps % T.LENGTH == 0  # rollouts hold whole sentences
    params = program.networks.init(jax.random.PRNGKey(0))
    dist, value = program.networks.apply(params, jnp.zeros((3,) + spec.obs_shape))
    assert dist.logits.shape == (3, len(T.VOCAB)) and value.shape == (3,)


def test_eval_samples_prints_what_a_token_policy_writes(tmp_path, capsys):
    """``ppo-jax eval RUN --samples N``: N sentences per seed, each LENGTH words of the
    vocabulary, with the reward model's score and the grammatical fraction beside it."""
    from ppo_jax import cli

    out = tmp_path / "run"
    config = Path(__file__).parent.parent / "configs" / "rlhf" / "tokens_pretrain.yaml"
    sets = ["total_timesteps=1024", "num_envs=8", "num_minibatches=2"]
    args = ["train", str(config), "--out", str(out), "--no-progress", "--no-tensorboard", "--seeds", "2"]
    assert cli.main(args + [x for s in sets for x in ("--set", s)]) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--episodes", "4", "--samples", "3", "--stochastic"]) == 0
    text = capsys.readouterr().out
    for seed in (0, 1):
        block = text.split(f"seed {seed} writes:\n")[1].splitlines()[:3]
        for line in block:
            words, _, scores = line.strip().rpartition("  ")
            words = words.split()
            assert len(words) == T.LENGTH and set(words) <= set(T.VOCAB), line
            tokens = np.array([[T.VOCAB.index(w) for w in words]])
            score = int(T.rm_score(tokens)[0])
            grammar = float(T.grammatical_fraction(tokens)[0])
            assert scores.strip() == f"rm {score}, grammatical {grammar:.2f}", line
    assert cli.main(["eval", str(out), "--samples", "-1"]) == 2
