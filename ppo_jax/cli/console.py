"""Progress and the header on stderr, made to fit an 80-column terminal: a rich
bar on a terminal, a plain line per ~10% elsewhere (a file, a pipe, CI logs)."""

from __future__ import annotations

import math

WIDTH = 80


def short(n: float) -> str:
    """``n`` in at most ~5 characters: 950, 12.3k, 1.50M, 2.00G."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= limit:
            value = n / limit
            return f"{value:.3g}{suffix}" if value < 100 else f"{value:.0f}{suffix}"
    return f"{n:.0f}"


def return_digits(x: float) -> int:
    """Decimals that show a return: 1 from 10 up (500.0, -155.5), 3 below (an optimal 0.940)."""
    return 1 if not math.isfinite(x) or abs(x) >= 10 else 3


def header_lines(
    what: str, detail: str, devices: int, platform: str, processes: int = 1, split: str = "the seeds"
) -> list[str]:
    """The run's header as short lines (no line wraps mid-sentence at 80 columns). ``split``:
    what is split over the devices (nothing is, on one)."""
    if devices == 1 and processes == 1:
        return [what, f"  {detail}", f"  on 1 {platform} device"]
    where = f"{devices} {platform} device(s)" + (f" in {processes} processes" if processes > 1 else "")
    return [what, f"  {detail}", f"  on {where}, {split} split over them"]


class Progress:
    """A rich progress bar on a terminal; a plain line per ~10% elsewhere."""

    def __init__(self, total_steps: int, enabled: bool, console, start: int = 0):
        self.console = console
        self.total = total_steps
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self._next_tenth = math.floor(10 * start / total_steps) + 1  # a resumed run starts late
        if self.live:
            self.bar = make_bar(console)
            self.task = self.bar.add_task(
                "train", total=total_steps, completed=start, text=self._text(start, None, None)
            )
            self.bar.start()

    def _text(self, steps: int, sps, ret) -> str:
        rate = "-" if sps is None else f"{short(sps)}/s"
        recent = "-" if ret is None else f"{ret:.{return_digits(ret)}f}"
        return f"{short(steps)}/{short(self.total)} steps/seed · {rate} · return {recent}"

    def update(self, steps: int, sps: float, ret: float) -> None:
        if not self.enabled:
            return
        if self.live:
            self.bar.update(self.task, completed=steps, text=self._text(steps, sps, ret))
        elif 10 * steps >= self._next_tenth * self.total or steps == self.total:  # integers: no 0.1 drift
            self.console.print(
                f"  {steps:>11,}/{self.total:,} env steps/seed · {sps:,.0f} steps/s · return {ret:.{return_digits(ret)}f}",
                soft_wrap=True,
            )
            self._next_tenth = 10 * steps // self.total + 1

    def close(self) -> None:
        if self.live:
            self.bar.stop()


def make_bar(console):
    """Bar (20), percentage, steps/rate/return text, time left: at most ~75 columns."""
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as RichProgress

    return RichProgress(
        BarColumn(bar_width=20),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[text]}"),
        TimeRemainingColumn(),
        console=console,
        expand=False,
    )
