"""The PPO update: epochs × shuffled minibatches, each a step of Adam on the loss.

    loss = clipped_surrogate + c1 · value_loss − c2 · entropy

Everything is a ``lax.scan``. Target-KL early stopping follows Stable-Baselines3:
the first minibatch step whose approx_kl (measured before the step, on the
params it would update) exceeds ``1.5 × target_kl`` is not applied, and neither
is any later step of this rollout. Skipped steps are masked (params and
optimizer state pass through unchanged), so the program shape never changes.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import chex
import jax
import jax.numpy as jnp
import optax

from ppo_jax import core
from ppo_jax.config import Hyperparams
from ppo_jax.core.distributions import with_action_mask
from ppo_jax.metrics import LOSS_METRICS, NONFINITE_GRAD, NONFINITE_LOSS, NONFINITE_PARAMS
from ppo_jax.networks import Networks, RecurrentNetworks


class Batch(NamedTuple):
    """One rollout flattened to ``[N, ...]`` samples, with its GAE outputs."""

    obs: chex.Array
    action: chex.Array
    log_prob: chex.Array
    value: chex.Array
    advantage: chex.Array
    target: chex.Array  # A + V_old
    action_mask: Optional[chex.Array] = None  # [N, K] bool, valid actions at obs; None: env has no mask


class SequenceBatch(NamedTuple):
    """One rollout as ``S`` sequences of ``L`` steps, for a recurrent policy.

    Leaves are time-major ``[L, S, ...]`` except ``carry`` ``[S, H]``: the carry
    each sequence starts from, as the rollout handed it to the sequence's first
    step (before that step's reset). Minibatches take whole sequences.
    """

    obs: chex.Array
    action: chex.Array
    log_prob: chex.Array
    value: chex.Array
    advantage: chex.Array
    target: chex.Array
    start: chex.Array  # [L, S] bool: reset the carry before this step
    carry: Any  # [S, H] (LSTM: a pair)
    action_mask: Optional[chex.Array] = None  # [L, S, K] bool, valid actions at obs; None: env has no mask


def take_sequences(batch: SequenceBatch, index: chex.Array) -> SequenceBatch:
    """The sequences ``index`` ([n] int) of ``batch``: axis 1 of the steps, axis 0 of the carries."""
    steps = jax.tree.map(lambda x: jnp.take(x, index, axis=1), batch._replace(carry=None))
    return steps._replace(carry=jax.tree.map(lambda x: jnp.take(x, index, axis=0), batch.carry))


class UpdateOptions(NamedTuple):
    """Static choices of the update."""

    update_epochs: int
    num_minibatches: int
    normalize_advantages: bool
    vf_clip: bool
    target_kl: bool
    # Data-parallel: each device holds an equal share of every minibatch; the
    # gradients, advantage statistics and metrics are averaged over this mapped axis.
    axis_name: Optional[str] = None

    @classmethod
    def from_config(cls, config, axis_name: Optional[str] = None) -> "UpdateOptions":
        return cls(
            update_epochs=config.update_epochs,
            num_minibatches=config.num_minibatches,
            normalize_advantages=config.normalize_advantages,
            vf_clip=config.vf_clip is not None,
            target_kl=config.target_kl is not None,
            axis_name=axis_name,
        )


def permutation(key: chex.PRNGKey, n: int) -> chex.Array:
    """A uniformly random permutation of ``0..n-1`` (int32), as ``jax.random.permutation``.

    Why not that: it sorts (random key, index) pairs with a two-operand stable
    sort, which XLA's CPU backend runs through a generic comparator, about 4-8x
    slower than sorting one array of uint32. Here the index rides in the low
    ``w = bit_length(n - 1)`` bits of a random uint32 and one plain sort orders
    both. Ties in the ``32 - w`` random bits keep index order, so rounds are
    repeated (each one reorders the previous result) until the expected number
    of pairs tied in every round, ``n²/2 · 2^(-rounds·(32-w))``, is below 1/8.
    """
    width = max((n - 1).bit_length(), 1)
    rounds = 1
    while 2 * width - 1 - rounds * (32 - width) > -3:
        rounds += 1
    mask = jnp.uint32((1 << width) - 1)
    iota = jnp.arange(n, dtype=jnp.uint32)
    order = iota
    for round_key in jax.random.split(key, rounds):
        bits = jax.random.bits(round_key, (n,), jnp.uint32)
        order = order[jnp.sort((bits & ~mask) | iota) & mask]
    return order.astype(jnp.int32)


def make_optimizer(max_grad_norm: chex.Numeric) -> optax.GradientTransformation:
    """Global-norm clipping then Adam's scaling; the step size is applied by the caller,
    so that a traced, annealed learning rate needs no optimizer rebuild."""
    return optax.flatten(optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.scale_by_adam(eps=1e-5)))


def ppo_loss(params, batch: Union[Batch, SequenceBatch], hp: Hyperparams, networks, options: UpdateOptions):
    """Total loss and its parts on one minibatch ``[M, ...]`` (or ``[L, M, ...]`` sequences,
    replayed from their starting carries with the rollout's resets)."""
    if isinstance(batch, SequenceBatch):
        _, dist, value = networks.unroll(params, batch.carry, batch.obs, batch.start)
    else:
        dist, value = networks.apply(params, batch.obs)
    dist = with_action_mask(dist, batch.action_mask)
    log_prob = dist.log_prob(batch.action)
    advantage = batch.advantage
    if options.normalize_advantages:
        advantage = core.normalize_advantages(advantage, axis_name=options.axis_name)
    policy_loss = core.clipped_surrogate_loss(log_prob, batch.log_prob, advantage, hp.clip_eps)
    v_loss = core.value_loss(
        value,
        batch.target,
        old_values=batch.value,
        clip_eps=hp.vf_clip if options.vf_clip else None,
    )
    entropy = jnp.mean(dist.entropy())
    total = policy_loss + hp.vf_coef * v_loss - hp.ent_coef * entropy
    stop = jax.lax.stop_gradient
    aux = {
        "policy_loss": policy_loss,
        "value_loss": v_loss,
        "entropy": entropy,
        "approx_kl": stop(core.approx_kl(log_prob, batch.log_prob)),
        "clip_fraction": stop(core.clip_fraction(log_prob, batch.log_prob, hp.clip_eps)),
    }
    return total, aux


KL_STOP_FACTOR = 1.5  # Stable-Baselines3's margin over target_kl


def minibatch_step(carry, minibatch, *, hp, learning_rate, tx, networks, options):
    """One step of Adam on one minibatch: ``carry = (params, opt_state, stopped)``.

    Data-parallel (``options.axis_name``), ``minibatch`` is this device's share:
    the loss is a mean over equal shares, so the mean of the devices' gradients
    is the whole minibatch's, and clipping, Adam and the target-KL decision all
    see averaged values, identical on every device, which keeps the replicated
    parameters and optimizer states identical.
    """
    params, opt_state, stopped = carry
    grads, aux = jax.grad(ppo_loss, has_aux=True)(params, minibatch, hp, networks, options)
    if options.axis_name is not None:
        grads, aux = jax.lax.pmean((grads, aux), options.axis_name)
    updates, new_opt_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, jax.tree.map(lambda u: -learning_rate * u, updates))
    aux["grad_norm"] = core.global_norm(grads)
    if options.target_kl:
        # SB3's rule: the KL of this minibatch under the current params decides
        # whether this very step is taken, so a tiny target takes no step at all
        # after the first minibatch has moved the policy. (CleanRL instead checks
        # once per epoch and keeps the epoch that crossed.)
        stopped = stopped | (aux["approx_kl"] > KL_STOP_FACTOR * hp.target_kl)
        keep = ~stopped
        new_params = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_params, params)
        new_opt_state = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_opt_state, opt_state)
        applied = keep
    else:
        applied = jnp.asarray(True)
    return (new_params, new_opt_state, stopped), (aux, applied)


def update(
    key: chex.PRNGKey,
    params: chex.ArrayTree,
    opt_state: optax.OptState,
    batch: Union[Batch, SequenceBatch],
    hp: Hyperparams,
    learning_rate: chex.Numeric,
    *,
    tx: optax.GradientTransformation,
    networks: Union[Networks, RecurrentNetworks],
    options: UpdateOptions,
):
    """``update_epochs`` passes over ``batch`` in shuffled minibatches.

    A ``SequenceBatch`` is shuffled and split by whole sequences.
    Returns new params, new optimizer state, and the loss metrics averaged over
    the minibatch steps that were applied.
    """
    sequences = isinstance(batch, SequenceBatch)
    num_samples = batch.log_prob.shape[1 if sequences else 0]
    minibatch_size = num_samples // options.num_minibatches

    def epoch(carry, rows):
        # Each minibatch gathers its own rows from the batch: no shuffled copy of
        # the whole batch is made per epoch.
        def step(c, minibatch_rows):
            if sequences:
                minibatch = take_sequences(batch, minibatch_rows)
            else:
                minibatch = jax.tree.map(lambda x: jnp.take(x, minibatch_rows, axis=0), batch)
            return minibatch_step(
                c, minibatch, hp=hp, learning_rate=learning_rate, tx=tx, networks=networks, options=options
            )

        return jax.lax.scan(step, carry, rows)

    # The shuffles of all epochs in one batched draw and sort.
    epoch_keys = jax.random.split(key, options.update_epochs)
    orders = jax.vmap(permutation, in_axes=(0, None))(epoch_keys, num_samples)
    rows = orders.reshape(options.update_epochs, options.num_minibatches, minibatch_size)
    (params, opt_state, _), (aux, applied) = jax.lax.scan(
        epoch, (params, opt_state, jnp.asarray(False)), rows
    )
    # Losses are averaged over the applied steps; when none was (the first
    # minibatch already past the target), over the minibatch that decided it.
    weights = applied.astype(jnp.float32)
    num_applied = jnp.sum(weights)
    weights = jnp.where(num_applied > 0, weights, jnp.zeros_like(weights).at[0, 0].set(1.0))
    metrics = {name: jnp.sum(aux[name] * weights) / jnp.sum(weights) for name in LOSS_METRICS}
    metrics["minibatch_updates"] = num_applied
    metrics["nonfinite"] = nonfinite_code(aux, params)
    return params, opt_state, metrics


def nonfinite_code(aux, params) -> chex.Array:
    """A bit set, computed in the program so the host never syncs per step:
    1 = a loss term, 2 = the gradient, 4 = the parameters held NaN or Inf."""

    def bad(tree):
        return jnp.any(jnp.stack([~jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))

    loss = bad([aux["policy_loss"], aux["value_loss"], aux["entropy"]])
    return (
        NONFINITE_LOSS * loss.astype(jnp.int32)
        + NONFINITE_GRAD * bad(aux["grad_norm"]).astype(jnp.int32)
        + NONFINITE_PARAMS * bad(params).astype(jnp.int32)
    )
