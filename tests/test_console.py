"""The console at 80 columns: the progress bar, its plain-text form (piped to a
file) and the header fit without being cut or wrapped."""

import io

from rich.console import Console

from ppo_jax.cli.console import Progress, header_lines, make_bar, short


def _lines(console):
    return [line for line in console.export_text().splitlines() if line.strip()]


def test_short_numbers():
    assert [short(x) for x in (950, 12_345, 499_712, 1_000_000, 73_728_000, 2.5e9)] == [
        "950",
        "12.3k",
        "500k",
        "1M",
        "73.7M",
        "2.5G",
    ]


def test_progress_bar_fits_80_columns_with_its_total():
    console = Console(width=80, record=True, force_terminal=True, file=io.StringIO())
    text = Progress(73_728_000, enabled=False, console=console)._text(36_864_000, 1_234_567.0, 487.25)
    bar = make_bar(console)  # the live bar's columns, rendered once instead of live
    bar.add_task("train", total=73_728_000, completed=36_864_000, text=text)
    console.print(bar.get_renderable())
    lines = _lines(console)
    assert lines and all(len(line) <= 80 for line in lines), lines
    bar_line = next(line for line in lines if "steps/seed" in line)
    assert "36.9M/73.7M steps/seed" in bar_line and "1.23M/s" in bar_line and "return 487.2" in bar_line
    assert "50%" in bar_line and bar_line.count("━") + bar_line.count("╸") == 19  # a bar of 20 columns


def test_plain_progress_lines_fit_80_columns_when_piped():
    console = Console(width=80, record=True, force_terminal=False, file=io.StringIO())
    progress = Progress(73_728_000, enabled=True, console=console)
    assert not progress.live
    for i in range(1, 11):
        progress.update(i * 7_372_800, 123_456.0, -1234.5)
    lines = _lines(console)
    assert len(lines) == 10 and all(len(line) <= 80 and "env steps/seed" in line for line in lines), lines
    assert lines[-1].strip().startswith("73,728,000/73,728,000")


def test_header_fits_80_columns_and_names_devices():
    console = Console(width=80, record=True, file=io.StringIO())
    lines = header_lines(
        "ppo-jax: MountainCarContinuous-v0, 16 seed(s) × 73,728,000 env steps",
        "576 updates of 2048 envs × 64 steps",
        devices=8,
        platform="cpu",
        processes=2,
    )
    for line in lines:
        console.print(line, soft_wrap=True)
    out = _lines(console)
    assert out == lines and all(len(line) <= 80 for line in out)
    assert "8 cpu device(s) in 2 processes" in out[-1]
