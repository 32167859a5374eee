"""Progress on stderr: a rich bar on a terminal, a plain line per ~10% elsewhere."""

from __future__ import annotations

import math


class Progress:
    """A rich progress bar on a terminal; a plain line per ~10% elsewhere."""

    def __init__(self, total_steps: int, enabled: bool, console, start: int = 0):
        self.console = console
        self.total = total_steps
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self._next_report = (math.floor(10 * start / total_steps) + 1) / 10  # a resumed run starts late
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("env steps/seed · {task.fields[sps]} · return {task.fields[ret]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.bar.add_task("train", total=total_steps, completed=start, sps="-", ret="-")
            self.bar.start()

    def update(self, steps: int, sps: float, ret: float) -> None:
        if not self.enabled:
            return
        sps_text = f"{sps:,.0f} steps/s"
        ret_text = f"{ret:.1f}"
        if self.live:
            self.bar.update(self.task, completed=steps, sps=sps_text, ret=ret_text)
        elif steps >= self._next_report * self.total or steps == self.total:
            self.console.print(f"  {steps:>12,}/{self.total:,} env steps/seed · {sps_text} · recent return {ret_text}")
            self._next_report += 0.1

    def close(self) -> None:
        if self.live:
            self.bar.stop()
