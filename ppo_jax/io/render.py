"""Videos of a trained policy: one episode, drawn frame by frame, as a GIF.

The episode runs inside one jit (``lax.scan`` over gymnax's ``step_env``, which
does not reset, so the last frame shows the state the episode ended in). The
frames are drawn on the host with PIL from the env state — fast enough for a
thousand frames, unlike a matplotlib animation. Drawn: the envs gymnax's own
visualizer covers, classic control and MinAtar, and xLand-MiniGrid (``xminigrid:``
ids), drawn by the suite's own renderer. Other suites are refused.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax.envs import make as _make

if TYPE_CHECKING:  # IO never imports the trainer: the loaded run is only read here
    from ppo_jax.runs import LoadedRun

CLASSIC = ("CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0")
MINATAR = (
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
)
DRAWABLE = CLASSIC + MINATAR

# Milliseconds a frame is shown: about real time where the env has a time step.
_FRAME_MS = {
    "CartPole-v1": 20,
    "Pendulum-v1": 50,
    "Acrobot-v1": 60,
    "MountainCar-v0": 30,
    "MountainCarContinuous-v0": 30,
}
_MINATAR_FRAME_MS = 80

_XMINIGRID_FRAME_MS = 150

W, H = 320, 200


def drawable(env_id: str) -> bool:
    """Whether ``render`` can draw ``env_id``: gymnax's classic control and MinAtar, ``xminigrid:`` ids."""
    return env_id in DRAWABLE or env_id.startswith("xminigrid:")


def record_episode(
    run: LoadedRun, seed: Optional[int], env_seed: int, max_steps: int, stochastic: bool = False
):
    """Play one episode (at most ``max_steps`` steps) with one training seed's policy.

    Returns the env states ``[steps + 1]`` (the reset state first) as numpy,
    the rewards ``[steps]`` and whether the episode ended within ``max_steps``.
    """
    env, env_params = run.vec_env.env, run.vec_env.params  # wrapped as in training
    params = run.params_of(seed)
    act = run.act

    def episode(key):
        key_reset, key_loop = jax.random.split(key)
        obs, state = env.reset(key_reset, env_params)

        def step(carry, key):
            state, obs, done, memory = carry
            key_action, key_env = jax.random.split(key)
            key_action = key_action if stochastic else None
            batched = jax.tree.map(lambda x: x[None], obs)  # with its action mask, if the env has one
            if run.recurrent:
                action, memory = act(params, batched, memory, key_action)
                action = action[0]
            else:
                action = act(params, batched, key_action)[0]  # clipped to the bounds
            next_obs, next_state, reward, terminated, _ = env.step_env(key_env, state, action, env_params)
            ended = jnp.logical_or(terminated, env.is_truncated(next_state, env_params))
            keep = lambda old, new: jax.tree.map(lambda a, b: jnp.where(done, a, b), old, new)
            new_carry = (keep(state, next_state), keep(obs, _float_obs(next_obs)), done | ended, memory)
            return new_carry, (new_carry[0], jnp.where(done, 0.0, reward), done)

        memory = run.initial_carry((1,)) if run.recurrent else None
        init = (state, _float_obs(obs), jnp.asarray(False), memory)
        (_, _, ended, _), (states, rewards, was_done) = jax.lax.scan(
            step, init, jax.random.split(key_loop, max_steps)
        )
        states = jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), state, states)
        return states, rewards, was_done, ended

    states, rewards, was_done, ended = jax.device_get(jax.jit(episode)(jax.random.PRNGKey(env_seed)))
    steps = int(np.sum(~was_done))  # steps taken before the episode had ended
    ended = bool(ended)
    states = jax.tree.map(lambda x: np.asarray(x)[: steps + 1], states)
    return states, np.asarray(rewards[:steps]), ended


def _suite_state(state: Any) -> Any:
    """The suite adapter's own state inside our wrappers' states (``XMiniGridState``)."""
    from ppo_jax.envs.xminigrid import XMiniGridState

    found = [
        leaf
        for leaf in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, XMiniGridState))
        if isinstance(leaf, XMiniGridState)
    ]
    if len(found) != 1:
        raise ValueError(f"render: expected one xminigrid state inside the env state, found {len(found)}.")
    return found[0]


def _float_obs(obs: Any) -> Any:
    """Observations as float32 (one dtype through the scan), an action mask left boolean."""
    return jax.tree.map(lambda x: x if x.dtype == jnp.bool_ else x.astype(jnp.float32), obs)


def draw_frames(env_id: str, states: Any, rewards: np.ndarray, env_kwargs: Optional[dict] = None) -> list:
    """One PIL image per state, with the step and the return so far written on it.

    ``env_kwargs``: the run's (an xminigrid grid's size, say), so the env is drawn as trained."""
    from PIL import Image, ImageDraw

    env, env_params = _make(env_id, **(env_kwargs or {}))
    returns = np.concatenate([[0.0], np.cumsum(rewards)])
    num = len(returns)
    frames = []
    for t in range(num):
        state = jax.tree.map(lambda x, t=t: x[t], states)
        if env_id.startswith("xminigrid:"):
            image = Image.fromarray(env.render_rgb(_suite_state(state), env_params)).convert("RGB")
        elif env_id in MINATAR:
            image = _draw_minatar(np.asarray(env.get_obs(state, env_params)))
        else:
            image = Image.new("RGB", (W, H), (255, 255, 255))
            _CLASSIC_DRAW[env_id](ImageDraw.Draw(image), state, env_params)
        ImageDraw.Draw(image).text((6, 4), f"t={t}  return {returns[t]:.1f}", fill=(90, 90, 90))
        frames.append(image)
    return frames


def gif_bytes(env_id: str, frames: list) -> bytes:
    """The frames as a looping GIF, each shown about as long as its env time step."""
    if env_id.startswith("xminigrid:"):
        duration = _XMINIGRID_FRAME_MS
    else:
        duration = _MINATAR_FRAME_MS if env_id in MINATAR else _FRAME_MS[env_id]
    from PIL import Image

    palette = [frame.convert("P", palette=Image.Palette.ADAPTIVE, colors=32) for frame in frames]
    buffer = io.BytesIO()
    palette[0].save(buffer, format="GIF", save_all=True, append_images=palette[1:], duration=duration, loop=0)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# Drawing, from the env state (world coordinates → pixels)
# ---------------------------------------------------------------------------


def _cartpole(draw, s, p):
    scale = W / (2 * float(p.x_threshold) * 1.2)
    ground = H * 0.7
    cx = W / 2 + float(s.x) * scale
    draw.line([(0, ground), (W, ground)], fill=(0, 0, 0), width=1)
    cart_w, cart_h = 40, 24
    draw.rectangle(
        [cx - cart_w / 2, ground - cart_h / 2, cx + cart_w / 2, ground + cart_h / 2], fill=(30, 30, 30)
    )
    pole = 2 * float(p.length) * scale
    theta = float(s.theta)
    tip = (cx + pole * math.sin(theta), ground - pole * math.cos(theta))
    draw.line([(cx, ground), tip], fill=(202, 152, 101), width=8)
    draw.ellipse([cx - 4, ground - 4, cx + 4, ground + 4], fill=(129, 132, 203))


def _pendulum(draw, s, p):
    cx, cy, r = W / 2, H / 2 + 8, H * 0.38
    theta = float(s.theta)  # 0 is upright
    tip = (cx + r * math.sin(theta), cy - r * math.cos(theta))
    draw.line([(cx, cy), tip], fill=(204, 77, 77), width=12)
    draw.ellipse([tip[0] - 6, tip[1] - 6, tip[0] + 6, tip[1] + 6], fill=(204, 77, 77))
    draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=(0, 0, 0))


def _acrobot(draw, s, p):
    l1, l2 = float(p.link_length_1), float(p.link_length_2)
    scale = H / (2.4 * (l1 + l2))
    cx, cy = W / 2, H / 2 + 8
    a1, a2 = float(s.joint_angle1), float(s.joint_angle2)  # 0, 0 hangs straight down
    p1 = (cx + l1 * scale * math.sin(a1), cy + l1 * scale * math.cos(a1))
    p2 = (p1[0] + l2 * scale * math.sin(a1 + a2), p1[1] + l2 * scale * math.cos(a1 + a2))
    target = cy - 1.0 * scale  # the tip must rise above one link length over the pivot
    draw.line([(0, target), (W, target)], fill=(0, 0, 0), width=1)
    draw.line([(cx, cy), p1], fill=(0, 204, 204), width=8)
    draw.line([p1, p2], fill=(0, 204, 204), width=8)
    for x, y in ((cx, cy), p1):
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(204, 204, 0))


def _mountaincar(draw, s, p):
    lo, hi = float(p.min_position), float(p.max_position)
    height = lambda x: math.sin(3 * x) * 0.45 + 0.55
    sx, sy = W / (hi - lo), H * 0.7
    to_px = lambda x, y: ((x - lo) * sx, H - 10 - y * sy)
    xs = np.linspace(lo, hi, 100)
    draw.line([to_px(x, height(x)) for x in xs], fill=(0, 0, 0), width=2)
    goal = float(p.goal_position)
    gx, gy = to_px(goal, height(goal))
    draw.line([(gx, gy), (gx, gy - 30)], fill=(0, 0, 0), width=2)
    draw.polygon([(gx, gy - 30), (gx + 16, gy - 25), (gx, gy - 20)], fill=(204, 204, 0))
    x = float(s.position)
    cx, cy = to_px(x, height(x))
    draw.ellipse([cx - 9, cy - 18, cx + 9, cy], fill=(60, 60, 60))


_CLASSIC_DRAW = {
    "CartPole-v1": _cartpole,
    "Pendulum-v1": _pendulum,
    "Acrobot-v1": _acrobot,
    "MountainCar-v0": _mountaincar,
    "MountainCarContinuous-v0": _mountaincar,
}


def _draw_minatar(obs: np.ndarray, cell: int = 20):
    """Each channel its own colour on black, as gymnax's MinAtar visualizer does."""
    import matplotlib
    from PIL import Image

    channels = obs.shape[-1]
    colours = np.asarray(
        matplotlib.colormaps["cubehelix"](np.linspace(0.2, 0.9, channels))[:, :3] * 255, np.uint8
    )
    present = obs.astype(bool)
    index = np.where(present.any(-1), np.argmax(present * np.arange(1, channels + 1), axis=-1), -1)
    image = np.where(index[..., None] >= 0, colours[np.maximum(index, 0)], 0).astype(np.uint8)
    image = np.repeat(np.repeat(image, cell, axis=0), cell, axis=1)
    return Image.fromarray(image, "RGB")
