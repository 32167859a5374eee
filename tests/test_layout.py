"""The package's layout: its import graph has no cycle, and the rooms keep their promises:
the networks import no env suite, IO never imports the trainer and its loggers no JAX, the
CLI's parser imports no JAX, and no function is longer than 60 lines."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ppo_jax"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runs_on_import(tree: ast.Module):
    """The statements run when the module is imported: the top level, and the branches of
    top-level ``if``/``try`` blocks, but not ``if TYPE_CHECKING:`` (never run)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        else:
            yield node


def import_graph() -> dict[str, set[str]]:
    """``{module: the ppo_jax modules it imports at module level}``; ``from pkg import name``
    counts as importing ``pkg.name`` where that is a module, else ``pkg``."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _runs_on_import(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.split(".")[0] == "ppo_jax"}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                    ).rstrip(".")
                if base.split(".")[0] != "ppo_jax":
                    continue
                for alias in node.names:
                    edges.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = edges - {name}
    return graph


def _cycle(graph: dict[str, set[str]]):
    """One cycle of ``graph`` as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_package_import_graph_has_no_cycle():
    graph = import_graph()
    assert "ppo_jax.train" in graph and "ppo_jax.update" in graph["ppo_jax.train"]
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _imported_by(module: str) -> list[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.split()


def test_the_networks_import_no_env_suite():
    loaded = _imported_by("ppo_jax.networks")
    assert "ppo_jax.networks" in loaded
    assert not [m for m in loaded if m.split(".")[0] == "gymnax" or m.startswith("ppo_jax.envs")]


TRAINER = ("ppo_jax.train", "ppo_jax.update", "ppo_jax.rollout", "ppo_jax.sweeps", "ppo_jax.driver")


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, pending = set(), [start]
    while pending:
        for nxt in graph.get(pending.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                pending.append(nxt)
    return seen


def test_io_never_imports_the_trainer():
    graph = import_graph()
    io_modules = [m for m in graph if m.startswith("ppo_jax.io")]
    assert {"ppo_jax.io.logs", "ppo_jax.io.events", "ppo_jax.io.checkpoint", "ppo_jax.io.report"} <= set(
        io_modules
    )
    for module in io_modules:
        assert not _reachable(graph, module) & set(TRAINER), module


def test_the_loggers_start_no_jax_backend_on_import():
    for module in ("ppo_jax.io.logs", "ppo_jax.io.events", "ppo_jax.io.report", "ppo_jax.io.stats"):
        loaded = _imported_by(module)
        assert module in loaded and not [m for m in loaded if m.split(".")[0] in ("jax", "jaxlib")], module
    code = (
        "import ppo_jax.io.checkpoint, sys; from jax._src import xla_bridge; "
        "print(bool(xla_bridge._backends), [m for m in sys.modules if m in %r])" % (TRAINER,)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "[]"]


def long_functions(limit: int = 60) -> dict[str, int]:
    """``{"path:Class.function": lines}`` of every function of ppo_jax/ longer than ``limit`` lines."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        pending = [(ast.parse(path.read_text()), "")]
        while pending:
            node, prefix = pending.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = prefix + child.name
                    lines = child.end_lineno - child.lineno + 1
                    if not isinstance(child, ast.ClassDef) and lines > limit:
                        found[f"{path.relative_to(PACKAGE.parent).as_posix()}:{name}"] = lines
                    pending.append((child, name + "."))
                else:
                    pending.append((child, prefix))
    return found


def test_no_function_is_longer_than_60_lines():
    assert long_functions(limit=10)  # the walk finds functions at all
    too_long = long_functions()
    assert not too_long, f"functions over 60 lines (split them into named pieces): {too_long}"


def test_the_cli_parser_imports_no_jax():
    """``ppo-jax --help`` stays instant: the commands' modules (the fine-tune options among
    them) import JAX only when a command runs."""
    code = (
        "import sys, ppo_jax.cli; ppo_jax.cli.build_parser(); "
        "print([m for m in sys.modules if m.split('.')[0] in ('jax', 'flax')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
