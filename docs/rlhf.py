"""The miniature RLHF experiment of docs/rlhf.md: stage 2 over a grid of β × seeds.

    PYTHONPATH=. python docs/rlhf.py --pretrain runs/tokens-pretrain --seeds 8

Fine-tunes the stage-1 reference (``--pretrain``, a run of
configs/rlhf/tokens_pretrain.yaml) on the reward model of ppo_jax.envs.tokens:RewardModel for every β
in ``--betas`` and every seed, all in one compiled program
(``jax.jit(jax.vmap(make_train(config, init_from=..., reference=...)))`` over
β × seeds). Then every final policy writes ``--sentences`` sentences; for each
the reward-model score and the exact KL to the reference, Σ_t KL(π(·|s_t) ‖
π_ref(·|s_t)) along the sentence, are averaged. Writes the frontier plot and a
markdown table with per-seed numbers and sample sentences.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import ppo_jax
from ppo_jax.driver import seed_keys
from ppo_jax.envs import VecEnv, tokens
from ppo_jax.finetune.loaders import load_reference, load_start
from ppo_jax.networks import networks_from_config


def sample_sentences(networks, vec_env, params, obs_norm, ref, key, n):
    """``n`` sentences of one policy: tokens [n, L], RM score [n], exact KL to ``ref`` [n] (nats per sentence)."""
    norm = lambda rms, obs: obs if rms is None else ppo_jax.core.normalize(rms, obs)
    state = vec_env.reset(key, n)
    keys = jax.random.split(key, tokens.LENGTH)

    def step(state, key):
        key_act, key_env = jax.random.split(key)
        dist, _ = networks.apply(params, norm(obs_norm, state.obs))
        ref_dist, _ = networks.apply(ref.params, norm(ref.obs_norm, state.obs))
        log_p, log_q = dist.log_probs, ref_dist.log_probs
        kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
        action = dist.sample(key_act)
        state, result = vec_env.step(key_env, state, action)
        return state, (action, kl, result.reward)

    _, (actions, kl, reward) = jax.lax.scan(step, state, keys)
    return actions.T, reward.sum(0), kl.sum(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pretrain", required=True, help="run directory of configs/rlhf/tokens_pretrain.yaml"
    )
    parser.add_argument("--config", default="configs/rlhf/tokens_rlhf.yaml")
    parser.add_argument("--betas", default="0,0.01,0.03,0.1,0.3,1")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--sentences", type=int, default=512, help="sentences per final policy")
    parser.add_argument(
        "--out",
        default="runs/rlhf-miniature",
        help="writes rlhf-frontier.png and rlhf-results.md here (--out docs: the committed copies)",
    )
    args = parser.parse_args()

    config = ppo_jax.load_config(args.config)
    start = load_start(args.pretrain, config)
    reference = load_reference(args.pretrain, config)
    betas = [float(b) for b in args.betas.split(",")]
    seeds = list(range(args.seeds))

    # One program: every (β, seed) pair is a run; β is a traced setting.
    hps = [config.replace(kl_ref_coef=b).hyperparams() for b in betas]
    hp = jax.tree.map(lambda *xs: jnp.repeat(jnp.stack(xs), len(seeds)), *hps)
    keys = jnp.tile(seed_keys(seeds), (len(betas), 1))
    train = ppo_jax.make_train(config, init_from=start, reference=reference)
    began = time.perf_counter()
    states, metrics = jax.block_until_ready(jax.jit(jax.vmap(train))(keys, hp))
    seconds = time.perf_counter() - began

    vec_env = VecEnv.from_config(config)
    networks = networks_from_config(config, vec_env.spec)
    obs_norm = states.norm.obs if config.normalize_obs else None
    sample = jax.jit(
        jax.vmap(
            lambda params, rms, key: sample_sentences(
                networks, vec_env, params, rms, reference, key, args.sentences
            ),
            in_axes=(0, 0 if obs_norm is not None else None, None),
        )
    )
    key = jax.random.PRNGKey(12345)
    words, score, kl = jax.device_get(sample(states.params, obs_norm, key))
    shape = (len(betas), len(seeds))
    score, kl = score.mean(-1).reshape(shape), kl.mean(-1).reshape(shape)
    grammatical = tokens.grammatical_fraction(words).mean(-1).reshape(shape)
    words = words.reshape(shape + words.shape[1:])
    ref_words, ref_score, ref_kl = jax.device_get(
        jax.jit(
            lambda key: sample_sentences(
                networks, vec_env, reference.params, reference.obs_norm, reference, key, args.sentences
            )
        )(key)
    )
    final = {
        name: np.asarray(metrics[name]).reshape(shape + (-1,))[..., -1] for name in ("kl_ref", "kl_ref_coef")
    }

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.node()}, {jax.devices()[0].device_kind} ({jax.default_backend()})"
    plot(out / "rlhf-frontier.png", betas, kl, score, float(ref_score.mean()), len(seeds), stamp, machine)

    lines = [
        "# Miniature RLHF: results",
        "",
        f"Written by `PYTHONPATH=. python docs/rlhf.py --pretrain {args.pretrain} --seeds {args.seeds} "
        f"--betas {args.betas}` on {stamp}, {machine}; stage 2 trained {len(betas)} β × {len(seeds)} seeds × "
        f"{config.env_steps:,} env steps in one program in {seconds:.0f} s (compile included; a shared, loaded "
        "2-core machine). Each final policy wrote "
        f"{args.sentences} sentences (sampled); the numbers are their means.",
        "",
        f"Reference (stage 1): RM score {ref_score.mean():.2f}, grammatical "
        f"{tokens.grammatical_fraction(ref_words).mean():.1%}.",
        "",
        "| β | RM score: mean (min … max over seeds) | KL to reference, nats/sentence: mean (min … max) | grammatical | seeds with score > 3 (the best grammatical score) |",
        "|---|---|---|---|---|",
    ]
    for i, beta in enumerate(betas):
        lines.append(
            f"| {beta:g} | {score[i].mean():.2f} ({score[i].min():.2f} … {score[i].max():.2f}) | "
            f"{kl[i].mean():.2f} ({kl[i].min():.2f} … {kl[i].max():.2f}) | {grammatical[i].mean():.1%} | "
            f"{int((score[i] > 3).sum())}/{len(seeds)} |"
        )
    lines += ["", "Per seed (RM score / KL):", ""]
    for i, beta in enumerate(betas):
        cells = ", ".join(f"{s:.2f} / {k:.2f}" for s, k in zip(score[i], kl[i]))
        lines.append(f"- β = {beta:g}: {cells}")
    lines += ["", "## Samples (first seed, first sentences)", "", "Reference:", "", "```"]
    lines += [tokens.decode(w) + f"    (score {tokens.rm_score(w)})" for w in ref_words[:6]]
    lines += ["```"]
    for i, beta in enumerate(betas):
        lines += ["", f"β = {beta:g}:", "", "```"]
        lines += [tokens.decode(w) + f"    (score {tokens.rm_score(w)})" for w in words[i, 0, :6]]
        lines += ["```"]
    (out / "rlhf-results.md").write_text("\n".join(lines) + "\n")
    raw = {
        "betas": betas,
        "seeds": seeds,
        "rm_score": score.tolist(),
        "kl": kl.tolist(),
        "grammatical": grammatical.tolist(),
        "reference_rm_score": float(ref_score.mean()),
        "train_kl_ref_last_update": final["kl_ref"].tolist(),
        "seconds": seconds,
        "when": stamp,
        "machine": machine,
    }
    (out / "rlhf-results.json").write_text(json.dumps(raw, indent=1) + "\n")
    print("\n".join(lines))


def plot(path, betas, kl, score, ref_score, num_seeds, stamp, machine):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.6))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(betas)))
    for i, beta in enumerate(betas):
        ax.scatter(kl[i], score[i], s=18, color=colors[i], alpha=0.6)
        ax.scatter(
            kl[i].mean(),
            score[i].mean(),
            s=90,
            color=colors[i],
            edgecolor="black",
            label=f"β = {beta:g}",
            zorder=3,
        )
    ax.plot(kl.mean(1), score.mean(1), color="gray", lw=1, zorder=2)
    ax.scatter([0.0], [ref_score], marker="*", s=160, color="black", label="reference", zorder=4)
    ax.axhline(3.0, color="red", lw=0.8, ls="--")
    ax.text(
        ax.get_xlim()[0], 3.0, "  best grammatical score", color="red", ha="left", va="bottom", fontsize=8
    )
    ax.set_xlabel("KL to the reference (nats per sentence, exact, on sampled sentences)")
    ax.set_ylabel("reward-model score (0 … 8)")
    ax.set_title(f"Reward vs KL over β, {num_seeds} seeds each (small dots: seeds)", fontsize=10)
    ax.legend(fontsize=8, loc="center right")
    fig.text(0.01, 0.01, f"docs/rlhf.py · {stamp} · {machine}", fontsize=6, color="gray")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
