"""The minibatch shuffle: ``ppo_jax.update.permutation``."""

import itertools

import jax
import numpy as np
import pytest

from ppo_jax.update import permutation


@pytest.mark.parametrize("n", [1, 2, 3, 7, 128, 1000, 2048, 8192, 70_000])
def test_is_a_permutation(n):
    order = np.asarray(jax.jit(permutation, static_argnums=1)(jax.random.PRNGKey(n), n))
    assert order.dtype == np.int32
    np.testing.assert_array_equal(np.sort(order), np.arange(n))


def test_all_orders_of_four_equally_likely():
    """24 orders of 4 items, 48,000 draws: chi-square against uniform (23 dof)."""
    keys = jax.random.split(jax.random.PRNGKey(0), 48_000)
    orders = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 4)))(keys))
    index = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    counts = np.bincount([index[tuple(o)] for o in orders], minlength=24)
    expected = len(orders) / 24
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 49.7  # 99.9th percentile of chi-square with 23 dof


def test_large_n_positions_uniform_and_keys_differ():
    """n = 2048 (two sort rounds): where item 0 lands, over 4,000 keys, is uniform
    over 16 equal bins; and no two keys give the same order."""
    n = 2048
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    orders = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, n)))(keys))
    where_zero = np.argmax(orders == 0, axis=1)
    counts = np.bincount(where_zero * 16 // n, minlength=16)
    chi2 = np.sum((counts - 250) ** 2 / 250)
    assert chi2 < 37.7  # 99.9th percentile, 15 dof
    assert len({o.tobytes() for o in orders[:200]}) == 200
    # adjacent items are not kept together more than chance would
    stay = np.mean(np.abs(np.argmax(orders == 1, axis=1) - where_zero) == 1)
    assert stay < 0.01
