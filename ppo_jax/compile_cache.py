"""The compile caches: XLA's persistent cache, and whole executables on top of it.

XLA's persistent cache (``jax_compilation_cache_dir``) saves XLA's work, but a
warm start still traces the Python program and lowers it to StableHLO before
it can look the program up: for the CartPole preset that is most of a warm
start (about 2.6 s of 3.1 s). The executable cache skips both: it keys a
compiled program by everything that decides it, without tracing it, and
stores the executable itself (``jax.experimental.serialize_executable``) in
``<jax_compilation_cache_dir>/executables``. It is on whenever XLA's cache is
(the CLI: unless ``PPO_JAX_NO_CACHE`` is set; ``PPO_JAX_CACHE_DIR`` moves both).

A key is sound only if it covers what the program is made of, so it holds:
the config's static settings and which traced ones are off (their values are
arguments), the arguments' shapes, dtypes, shardings and tree structure, the
hash of ppo_jax's own source files, the versions of Python, jax, jaxlib,
flax, optax, chex, numpy, gymnax and of the env's suite package (and that
package's direct requirements), the backend, its version, the devices and
the host CPU's features, ``XLA_FLAGS`` and every jax config flag. Where that
cannot be made sound the cache is not used and the program is traced and
compiled as before: a user's env given by import path (its source is not
ours to hash), and programs that close over arrays (``--init-from``, a KL
reference). What is kept was compiled by XLA, never handed back by its
persistent cache (such an executable serializes without its functions), see
``RunPrograms.get``. An entry that fails its checksum, does not load, or does not fit
the arguments is ignored (and removed), never an error.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import pickle
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

NO_CACHE_ENV = "PPO_JAX_NO_CACHE"
CACHE_DIR_ENV = "PPO_JAX_CACHE_DIR"
FORMAT = 3  # of the entries below; a change of it misses every older entry (1, 2: could hold XLA-cache hits)
_MAGIC = b"ppo_jax-executable\n"

# jax config flags that cannot change a program: where caches live, logging, debugging output.
_IGNORED_FLAGS = frozenset(
    {
        "jax_compilation_cache_dir",
        "jax_enable_compilation_cache",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes",
        "jax_compilation_cache_max_size",
        "jax_raise_persistent_cache_errors",
        "jax_explain_cache_misses",
        "jax_log_compiles",
        "jax_logging_level",
        "jax_debug_log_modules",
        "jax_pprint_use_color",
        "jax_traceback_filtering",
        "jax_tracer_error_num_traceback_frames",
        "jax_numpy_rank_promotion",  # raises at trace time or changes nothing
    }
)

# The distributions whose code is traced into every program.
_PACKAGES = ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "ml_dtypes", "gymnax")


def default_dir() -> str:
    return os.environ.get(CACHE_DIR_ENV, str(Path.home() / ".cache" / "ppo_jax" / "xla"))


def enable() -> None:
    """Turn on XLA's persistent cache (and so the executable cache) at ``default_dir()``,
    unless ``PPO_JAX_NO_CACHE`` is set or the directory cannot be made."""
    import jax

    if os.environ.get(NO_CACHE_ENV):
        return
    cache = default_dir()
    try:
        Path(cache).mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


_XLA_CACHE_HIT = "/jax/compilation_cache/cache_hits"


@contextlib.contextmanager
def _xla_cache_bypassed():
    """XLA's persistent cache turned off for a compile, and a list that records
    whether it served the compile anyway.

    Turning ``jax_enable_compilation_cache`` off in a process that has used the
    cache does not stop it from reading (jax 0.10.2 decides that once per
    process); it changes the programs' compile options, and so their keys. So
    writes are stopped too (no entry under those keys is made here), and a hit
    on an entry someone else made under them is reported, not trusted.
    """
    import jax

    hits: list[str] = []

    def listen(event: str, **_):
        if event == _XLA_CACHE_HIT:
            hits.append(event)

    enabled = jax.config.jax_enable_compilation_cache
    min_seconds = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_enable_compilation_cache", False)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float("inf"))
    jax.monitoring.register_event_listener(listen)
    try:
        yield hits
    finally:
        jax.monitoring.unregister_event_listener(listen)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_seconds)
        jax.config.update("jax_enable_compilation_cache", enabled)


class RunPrograms:
    """A run's programs: each loaded from the executable cache where kept, else
    compiled and, with a cache, kept. ``hits`` names those loaded, in order."""

    def __init__(self, cache: Optional["ExecutableCache"], keys: dict):
        self.cache, self.keys = cache, keys
        self.loaded = cache.load_all(keys) if cache is not None else {}
        self.hits: list = []

    def get(self, name: Any, args: Sequence[Any], compile_fn):
        """The program ``name`` for ``args``: the kept one if it takes them, else
        ``compile_fn()``, kept under its key only if XLA really compiled it: one
        that XLA's persistent cache handed back serializes without its compiled
        functions (jax 0.10.2, CPU: the entry loads, then fails when it runs,
        "NOT_FOUND: Function broadcast_multiply_fusion.4 not found")."""
        loaded = self.loaded.get(name)
        if loaded is not None and fits(loaded, args):
            self.hits.append(name)
            return loaded
        if self.cache is None:
            return compile_fn()
        with _xla_cache_bypassed() as xla_hits:
            compiled = compile_fn()
        if not xla_hits:
            self.cache.save(self.keys[name], compiled)
        return compiled


def executable_dir() -> Optional[Path]:
    """Where executables are kept: beside XLA's cache; None when that is off, or
    across hosts (each process would load a part of one program)."""
    import jax

    xla_dir = jax.config.jax_compilation_cache_dir  # type: ignore[attr-defined]  # a flag, set at run time
    if os.environ.get(NO_CACHE_ENV) or not xla_dir or jax.process_count() > 1:
        return None
    return Path(xla_dir) / "executables"


@functools.lru_cache(maxsize=None)
def source_hash() -> str:
    """sha256 over ppo_jax's own ``.py`` files (paths and contents)."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


@functools.lru_cache(maxsize=None)
def _versions(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((name, _version(name)) for name in names)


@functools.lru_cache(maxsize=None)
def _requirements(name: str) -> tuple[str, ...]:
    """The names of a distribution's direct requirements (any extra, any marker)."""
    import re

    try:
        requires = importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return ()
    return tuple(sorted({re.split(r"[^A-Za-z0-9._-]", r, maxsplit=1)[0] for r in requires} - {""}))


def env_packages(env_id: str) -> Optional[tuple[tuple[str, str], ...]]:
    """Versions of the distributions that hold ``env_id``'s code; None for a user's env."""
    from ppo_jax.envs import SUITES, parse_env_id

    parsed = parse_env_id(env_id)
    if parsed.kind == "user":
        return None
    if parsed.kind == "gymnax":
        return ()
    suite = SUITES.get(parsed.prefix)
    if suite is None:
        return None
    names = suite.packages
    deps = {d for n in names for d in _requirements(n)}
    return _versions(tuple(sorted(set(names) | deps)))


@functools.lru_cache(maxsize=None)
def _cpu_features() -> str:
    """The host CPU's model and instruction-set flags: CPU executables are native code."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    first = text.split("\n\n", 1)[0]
    keep = [
        line
        for line in first.splitlines()
        if line.split(":")[0].strip() in ("model name", "flags", "Features")
    ]
    return hashlib.sha256("\n".join(keep).encode()).hexdigest()


def environment_key(devices: Sequence[Any]) -> dict:
    """What, beside the program's own description, decides its executable."""
    import jax

    backend = devices[0].client
    flags = {k: repr(v) for k, v in sorted(jax.config.values.items()) if k not in _IGNORED_FLAGS}
    return {
        "format": FORMAT,
        "python": sys.version,
        "packages": _versions(_PACKAGES),
        "source": source_hash(),
        "backend": [backend.platform, backend.platform_version, jax.process_count(), jax.device_count()],
        "devices": [[d.id, d.device_kind, d.process_index] for d in devices],
        "cpu": _cpu_features() if backend.platform == "cpu" else "",
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "libtpu_init_args": os.environ.get("LIBTPU_INIT_ARGS", ""),
        "jax_flags": flags,
    }


def config_key(config) -> Optional[dict]:
    """The config as it enters a program: static settings, and which traced ones are
    off (their values are arguments). None when the env's code cannot be keyed."""
    from ppo_jax.config import STATIC_FIELDS, TRACED_FIELDS

    packages = env_packages(config.env_id)
    if packages is None:
        return None
    values = config.to_dict()
    return {
        "static": {name: values[name] for name in STATIC_FIELDS},
        "traced_off": sorted(name for name in TRACED_FIELDS if values[name] is None),
        "env_packages": packages,
    }


def args_key(args: Any) -> list:
    """Tree structure, shapes, dtypes, weak types and shardings of ``args``."""
    import jax

    leaves, tree = jax.tree.flatten(args)
    out: list[Any] = [str(tree)]
    for x in leaves:
        sharding = getattr(x, "sharding", None)
        out.append(
            [
                list(x.shape),
                str(x.dtype),
                bool(getattr(x, "weak_type", False)),
                repr(getattr(sharding, "spec", None)),
                [d.id for d in getattr(sharding, "_device_assignment", ())],
            ]
        )
    return out


def digest(parts: dict) -> Optional[str]:
    """sha256 of ``parts`` as canonical JSON; None if some part has no stable text."""
    try:
        text = json.dumps(parts, sort_keys=True, default=_no_default)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def _no_default(value):
    raise TypeError(f"not keyable: {type(value).__name__}")


def open_cache(
    config, devices: Iterable[Any], args: Any, driver: dict, programs: dict
) -> tuple[Optional["ExecutableCache"], dict]:
    """The executable cache and a key for each of a run's programs, or (None, {})
    where no sound key exists (the cache off, a user's env).

    ``args``: the first program's arguments (the others take what it returns);
    ``driver``: what the driver adds to every program (its shardings, ...);
    ``programs``: ``{name: what this program adds}``. A driver whose programs
    close over arrays (``--init-from``, a KL reference) must not call it.
    """
    directory = executable_dir()
    if directory is None:
        return None, {}
    keyed_config = config_key(config)
    if keyed_config is None:
        return None, {}
    devices = list(devices)
    base = {
        "environment": environment_key(devices),
        "config": keyed_config,
        **driver,
        "init_args": args_key(args),
    }
    names = {name: digest({**base, **parts}) for name, parts in programs.items()}
    if None in names.values():
        return None, {}
    return ExecutableCache(directory, devices), names


class ExecutableCache:
    """Compiled programs of one run, kept in ``directory`` under their keys."""

    def __init__(self, directory: Path, devices: Sequence[Any]):
        self.directory = directory
        self.devices = list(devices)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.bin"

    def load(self, key: str):
        """The executable under ``key``, or None (absent, corrupt, or not loadable)."""
        from jax.experimental import serialize_executable

        path = self.path(key)
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        try:
            header, checksum, payload = blob.split(b"\n", 2)
            if header + b"\n" != _MAGIC or hashlib.sha256(payload).hexdigest().encode() != checksum:
                raise ValueError("checksum")
            stored_key, serialized, in_tree, out_tree = pickle.loads(payload)
            if stored_key != key:
                raise ValueError("key")
            return serialize_executable.deserialize_and_load(
                serialized, in_tree, out_tree, backend=self.devices[0].client, execution_devices=self.devices
            )
        except Exception:  # a corrupt or stale entry: compile instead, and let the new one replace it
            _remove(path)
            return None

    def load_all(self, keys: dict) -> dict:
        """``{name: executable}`` for the names in ``{name: key}`` whose entry loads;
        several at once, each on its own thread (loading is native code)."""
        from concurrent.futures import ThreadPoolExecutor

        present = {name: key for name, key in keys.items() if self.path(key).exists()}
        if len(present) <= 1:
            loaded = {name: self.load(key) for name, key in present.items()}
        else:
            with ThreadPoolExecutor(len(present)) as pool:
                loaded = dict(zip(present, pool.map(self.load, present.values())))
        return {name: compiled for name, compiled in loaded.items() if compiled is not None}

    def save(self, key: str, compiled) -> None:
        """Keep ``compiled`` under ``key``; a program that cannot be serialized is skipped."""
        from jax.experimental import serialize_executable

        try:
            serialized, in_tree, out_tree = serialize_executable.serialize(compiled)
            payload = pickle.dumps((key, serialized, in_tree, out_tree), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            return
        blob = _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
        temporary = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.directory, suffix=".tmp", delete=False) as f:
                temporary = Path(f.name)
                f.write(blob)
            os.replace(temporary, self.path(key))  # atomic: a reader sees the old entry or the whole new one
        except OSError:
            if temporary is not None:
                _remove(temporary)


def fits(compiled, args: Any) -> bool:
    """Whether ``compiled`` takes ``args``: the same tree, shapes and dtypes."""
    import jax

    try:
        info_leaves, info_tree = jax.tree.flatten(compiled.args_info)
        arg_leaves, arg_tree = jax.tree.flatten((tuple(args), {}))
        if info_tree != arg_tree:  # type: ignore[operator]  # jaxlib's stub leaves PyTreeDef's == out
            return False
        return all(
            tuple(i.shape) == tuple(a.shape) and i.dtype == a.dtype for i, a in zip(info_leaves, arg_leaves)
        )
    except Exception:
        return False


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
