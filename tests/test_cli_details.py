"""Small things a new user meets: --version, returns printed with the digits they need,
a one-device header that claims no split, and eval keeping every evaluation."""

import json

import pytest

from ppo_jax.cli import console
from ppo_jax.cli.eval import keep_previous


def test_version(capsys):
    from ppo_jax import __version__, cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ppo-jax {__version__} (jax ") and "Python" in out


@pytest.mark.parametrize(
    "value, text",
    [(0.94, "0.940"), (0.955, "0.955"), (-3.5, "-3.500"), (500.0, "500.0"), (-155.46, "-155.5")],
)
def test_returns_keep_their_digits(value, text):
    assert f"{value:.{console.return_digits(value)}f}" == text


def test_progress_line_shows_a_small_return_with_its_digits():
    import io

    from rich.console import Console

    out = io.StringIO()
    progress = console.Progress(1000, True, Console(file=out, width=80))
    progress.update(1000, 50.0, 0.94)
    assert "return 0.940" in out.getvalue()


def test_one_device_header_claims_no_split():
    lines = console.header_lines("ppo-jax: x", "1 update", devices=1, platform="cpu")
    assert lines[-1] == "  on 1 cpu device"
    split = console.header_lines("x", "y", devices=4, platform="cpu", split="each seed's envs")
    assert split[-1] == "  on 4 cpu device(s), each seed's envs split over them"


def test_eval_keeps_every_evaluation(tmp_path):
    path = tmp_path / "eval.json"
    assert keep_previous(path) is None
    for n in range(3):
        path.write_text(json.dumps({"n": n}))
        kept = keep_previous(path)
        assert kept.name == f"eval.{n + 1}.json" and not path.exists()
    assert [json.loads((tmp_path / f"eval.{k}.json").read_text())["n"] for k in (1, 2, 3)] == [0, 1, 2]
