"""Networks: torsos, heads and recurrent cores, behind one ``(init, apply)`` pair."""

from ppo_jax.networks import mlp as _mlp
from ppo_jax.networks.mlp import (  # noqa: F401
    ActorCritic,
    Distribution,
    Networks,
    Torso,
    make_networks,
    orthogonal,
)
from ppo_jax.networks.recurrent import (  # noqa: F401
    Carry,
    RecurrentActorCritic,
    RecurrentNetworks,
    initial_carry,
    make_recurrent_networks,
    reset_carry,
)
from ppo_jax.networks.transformer import make_token_networks  # noqa: F401


def networks_from_config(config, spec):
    """``Networks`` for a feed-forward config (the causal transformer for ``network: transformer``),
    ``RecurrentNetworks`` when ``config.recurrent`` is set."""
    if config.network == "transformer":
        return make_token_networks(
            spec, d_model=config.d_model, num_layers=config.num_layers, num_heads=config.num_heads
        )
    if config.recurrent is None:
        return _mlp.networks_from_config(config, spec)
    return make_recurrent_networks(
        spec,
        cell=config.recurrent,
        recurrent_size=config.recurrent_size,
        network=config.network,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        log_std_init=config.log_std_init,
    )
