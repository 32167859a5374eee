"""mkdocs hooks: the pages that are generated from the code at build time, so they cannot go stale.

``<!-- generated: settings -->`` becomes the table ``ppo-jax settings --markdown`` prints (the
config's own metadata); ``<!-- generated: layout -->`` becomes the package's layout, one row per
module with the first line of its docstring. Sweep reports copied under docs/ get their curves' names.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def settings_table() -> str:
    """The markdown table of every setting, from the CLI that users run."""
    result = subprocess.run(
        [sys.executable, "-m", "ppo_jax.cli", "settings", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def layout_table() -> str:
    """One row per module of ``ppo_jax/``: its path and its docstring's first sentence line."""
    rows = ["| module | what it holds |", "|---|---|"]
    for path in sorted((ROOT / "ppo_jax").rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        summary = " ".join(doc.split("\n\n")[0].split()).replace("|", "\\|")
        rows.append(f"| `{path.relative_to(ROOT).as_posix()}` | {summary} |")
    return "\n".join(rows) + "\n"


GENERATED = {"<!-- generated: settings -->": settings_table, "<!-- generated: layout -->": layout_table}


def copied_report_curves(markdown: str, src_path: str) -> str:
    """A sweep's report.md links its own ``curves.png``; copied under docs/ as ``NAME-report.md``,
    its curves sit beside it as ``NAME-curves.png``."""
    path = Path(src_path)
    if not path.name.endswith("-report.md"):
        return markdown
    curves = path.name.removesuffix("-report.md") + "-curves.png"
    if not (ROOT / "docs" / path.parent / curves).is_file():
        return markdown
    return markdown.replace("](curves.png)", f"]({curves})")


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    for marker, make in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return copied_report_curves(markdown, page.file.src_path)
