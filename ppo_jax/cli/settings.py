"""``ppo-jax settings``: every setting with its default, type, kind and meaning,
read from ``PPOConfig``'s own field definitions."""

from __future__ import annotations

import argparse
import dataclasses
import typing


def add_parser(sub) -> None:
    settings = sub.add_parser(
        "settings",
        help="list every setting: default, type, static or traced, meaning",
        description="Every setting of a run (YAML key, --set KEY=VALUE, load_config keyword): its default, "
        "type, whether it is static (fixes the compiled program) or traced (a number the program takes as an "
        "argument, so a sweep's --grid can vary it), and what it means.",
    )
    settings.add_argument("--markdown", action="store_true", help="a markdown table instead of plain text")
    settings.set_defaults(func=run)


def _type_name(kind) -> str:
    args = typing.get_args(kind)
    if typing.get_origin(kind) is typing.Union and type(None) in args:
        return f"{_type_name(next(a for a in args if a is not type(None)))} or null"
    if typing.get_origin(kind) is tuple:
        return "list of int"
    if typing.get_origin(kind) is dict:
        return "mapping"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(kind, str(kind))


def _default(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return str(list(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_default(v)}" for k, v in value.items()) + "}"
    return f"{value:_}".replace("_", ",") if isinstance(value, int) else str(value)


def rows() -> list[tuple[str, str, str, str, str]]:
    """(name, default, type, kind, meaning) for every field of ``PPOConfig``, in definition order."""
    from ppo_jax.config import PPOConfig

    hints = typing.get_type_hints(PPOConfig)
    defaults = PPOConfig()  # a field with a default_factory has no f.default
    return [
        (
            f.name,
            _default(getattr(defaults, f.name)),
            _type_name(hints[f.name]),
            "traced" if f.metadata["traced"] else "static",
            f.metadata["help"],
        )
        for f in dataclasses.fields(PPOConfig)
    ]


def run(args: argparse.Namespace) -> int:
    table = rows()
    if args.markdown:
        print("| setting | default | type | kind | meaning |\n|---|---|---|---|---|")
        for row in table:
            print("| " + " | ".join(f"`{c}`" if i < 2 else c for i, c in enumerate(row)) + " |")
        return 0
    width = max(len(r[0]) for r in table)
    print(
        "Settings (YAML key, --set KEY=VALUE, load_config keyword). static: fixes the compiled program;\n"
        "traced: an argument of the program, so 'ppo-jax sweep --grid' can vary it.\n"
    )
    for name, default, kind_, kind, meaning in table:
        print(f"{name:<{width}}  {kind:<6}  {kind_:<13} default {default}")
        print(f"{'':<{width}}  {meaning}")
    return 0
