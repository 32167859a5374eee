"""Networks: torsos, heads and (later) recurrent cores, behind one ``(init, apply)`` pair."""

from ppo_jax.networks.mlp import (  # noqa: F401
    ActorCritic,
    Distribution,
    Networks,
    Torso,
    make_networks,
    networks_from_config,
    orthogonal,
)
