"""``ppo-jax pbt``: population-based training in one compiled program, with its lineage.

    ppo-jax pbt CONFIG --population N --explore KEY=LOW:HIGH[:log] [--explore ...] --ready UPDATES
        [--fraction 0.25] [--resample 0.25] [--init config|uniform] [--seed S] [--out DIR]
    ppo-jax pbt --resume DIR

Writes pbt.json, results.csv, lineage.csv, report.md, curves.png and best_schedule.yaml
(replay it with ``ppo-jax train CONFIG --schedule DIR/best_schedule.yaml``).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from pathlib import Path

from ppo_jax.cli import common, options, resume, session
from ppo_jax.cli.common import UserError
from ppo_jax.cli.options import DEFAULT_CHECKPOINTS_PER_RUN
from ppo_jax.cli.rundir import default_out, prepare_out_dir
from ppo_jax.cli.session import Plan

DEFAULT_POPULATION = 16


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pbt",
        help="population-based training in one compiled program",
        description="Train a population side by side in one compiled program; every --ready updates the "
        "bottom --fraction copies the whole train state of a member of the top --fraction and perturbs its "
        "explored settings, on the devices. Writes pbt.json, results.csv, lineage.csv, report.md, "
        "curves.png and best_schedule.yaml.",
    )
    p.add_argument("config", nargs="?", help="YAML preset, e.g. configs/cartpole.yaml")
    p.add_argument("--population", type=int, metavar="N", help=f"members (default {DEFAULT_POPULATION})")
    p.add_argument(
        "--explore",
        action="append",
        metavar="KEY=LOW:HIGH[:log]",
        help="a traced setting and its range (repeatable), e.g. learning_rate=1e-5:1e-2:log",
    )
    p.add_argument("--ready", type=int, metavar="UPDATES", help="updates between exploit/explore steps")
    p.add_argument(
        "--fraction", type=float, help="bottom fraction replaced by the top fraction (default 0.25)"
    )
    p.add_argument("--resample", type=float, help="probability of a fresh draw instead of ×0.8/×1.25 (0.25)")
    p.add_argument(
        "--init",
        choices=("config", "uniform"),
        help="members start from the config's value (default) or a draw from the range",
    )
    p.add_argument("--seed", type=int, help="member i uses seed SEED+i (default 0)")
    options.add_run_dir_options(
        p,
        out_help="directory (default: runs/pbt-<config>-<time>)",
        resume_metavar="PBT_DIR",
        resume_help="continue a stopped run from its latest checkpoint",
        checkpoint_help=f"checkpoint the population every UPDATES updates (default: about "
        f"{DEFAULT_CHECKPOINTS_PER_RUN} per run; 0: only at the end and on SIGINT/SIGTERM)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    options.add_cpu_devices(p)
    p.set_defaults(func=run)


def _population(args, config, seed: int):
    from ppo_jax.population import Population

    if args.ready is None:
        raise UserError(
            "pbt: give --ready UPDATES, the updates between exploit/explore steps, e.g. --ready 25."
        )
    return Population(
        size=DEFAULT_POPULATION if args.population is None else args.population,
        ready=args.ready,
        fraction=0.25 if args.fraction is None else args.fraction,
        resample=0.25 if args.resample is None else args.resample,
        seed=seed,
        init=args.init or "config",
    ).check(config.num_updates)


def _plan_fresh(args) -> Plan:
    if args.config is None:
        raise UserError("pbt: give a CONFIG.yaml to start, or --resume PBT_DIR to continue a run.")
    overrides = common.parse_sets(args.set or [])
    out = Path(args.out) if args.out else default_out(args.config, prefix="pbt-")
    prepare_out_dir(out, args.overwrite)

    from ppo_jax.config import ConfigError, load_config_from
    from ppo_jax.population import check_explores, parse_explore

    try:
        config = load_config_from(args.config, overrides)
        explores = check_explores(config, [parse_explore(e) for e in args.explore or []])
        population = _population(args, config, 0 if args.seed is None else args.seed)
    except ConfigError as err:
        raise UserError(str(err)) from None
    every, keep = options.checkpoint_options(args, config)
    return _plan(config, explores, population, out, every, keep, first_command=common.command_line())


def _plan(config, explores, population, out: Path, every: int, keep: int, **resumed) -> Plan:
    seeds = list(range(population.seed, population.seed + population.size))
    return Plan(config, seeds, out, every, keep, explores=explores, population=population, **resumed)


def _plan_resume(args) -> Plan:
    given = [("CONFIG", args.config), ("--set", args.set), ("--out", args.out), ("--seed", args.seed)]
    given += [
        (f"--{n}", getattr(args, n)) for n in ("population", "explore", "ready", "fraction", "resample")
    ]
    given += [("--init", args.init), ("--overwrite", args.overwrite or None)]
    resume.refuse_options(args.resume, given, what="pbt run")
    out = Path(args.resume)
    update, meta = resume.latest(out, "pbt")
    config = resume.saved_config(
        out, update, meta, f"Its results are in {out / 'results.csv'}.", what="pbt run"
    )

    from ppo_jax.config import ConfigError
    from ppo_jax.population import Population, check_explores, parse_explore

    try:
        explores = check_explores(config, [parse_explore(e) for e in meta["explore"]])
        population = Population(**meta["population"]).check(config.num_updates)
    except ConfigError as err:
        raise UserError(f"--resume {out}: the saved run: {err}") from None
    every, keep = options.checkpoint_options(args, config, meta)
    return _plan(
        config,
        explores,
        population,
        out,
        every,
        keep,
        start_update=update,
        first_command=meta.get("command", ""),
        log_points_done=int(meta["log_points_done"]),
        devices=int(meta["devices"]),
        log_plan=meta.get("plan"),
    )


class _Session(session.Session):
    """The host side between log points: progress, checkpoints, signals."""

    def __init__(self, plan: Plan, run, progress, checkpointer, stop):
        meta = {
            "kind": "pbt",
            "config": plan.config.to_dict(),
            "explore": [e.describe() for e in plan.explores],
            "population": dataclasses.asdict(plan.population),
            "num_updates": plan.config.num_updates,
            "devices": run.num_devices,
            "plan": run.plan,
        }
        super().__init__(plan, progress, checkpointer, stop, meta)
        self.run = run

    def on_chunk(self, updates_done, point, seconds):
        import numpy as np

        batch = self.plan.config.batch_size
        if np.isfinite(point["episode_return"]).any():
            self.last_return = float(np.nanmean(point["episode_return"]))
        done_here = (updates_done - self.plan.start_update) * batch
        self.progress.update(
            updates_done * batch, done_here * self.run.num_runs / max(seconds, 1e-9), self.last_return
        )

    def on_state(self, updates_done, carry, pieces) -> bool:
        tree = lambda: self.run.checkpoint_tree(carry, pieces)
        return self.save_if_due(updates_done, tree, log_points_done=len(pieces))


def _restore(run, plan: Plan, carry):
    """Refuse a disk too small for the checkpoints; return (carry, log points) to start from."""
    import jax

    from ppo_jax.sweeps import log_points_of

    restored = resume.restore_log_points_run(run, plan, carry, "this pbt run")
    if restored is None:
        return carry, []
    saved = (restored["runs"], restored["hp"], restored["fitness"])
    return jax.device_put(saved, jax.tree.map(lambda x: x.sharding, carry)), log_points_of(restored)


def _train(args, plan: Plan, run, err):
    from ppo_jax.cli.signals import StopOnSignal

    err.print("compiling…")
    carry = run.compile()
    err.print(f"compiled in {run.compile_seconds:.1f} s")
    carry, pieces = _restore(run, plan, carry)
    progress = session.progress(plan, not args.no_progress, err)
    with StopOnSignal(err) as stop:
        host = _Session(plan, run, progress, session.checkpointer(plan), stop)
        try:
            result = run.run(carry, host.on_chunk, pieces=pieces, on_state=host.on_state)
        finally:
            host.close()
    return result, host


def _header(run, plan: Plan, err) -> None:
    import jax

    from ppo_jax.cli.console import header_lines

    config = plan.config
    what = f"ppo-jax pbt: {config.env_id}, a population of {run.num_runs}"
    if not plan.fresh:
        what = f"ppo-jax pbt: resuming {plan.out} after update {plan.start_update}: a population of {run.num_runs}"
    ready = len(run.ready_updates)
    detail = (
        f"each {config.env_steps:,} env steps; {ready} ready point(s), every {plan.population.ready} updates; "
        f"exploring {', '.join(e.describe() for e in plan.explores)}; all in 1 compiled program"
    )
    if run.padded_runs > run.num_runs:
        detail += f" (+{run.padded_runs - run.num_runs} padding runs)"
    for line in header_lines(what, detail, run.num_devices, jax.devices()[0].platform):
        err.print(line, soft_wrap=True)


def run(args: argparse.Namespace) -> int:
    common.set_cpu_devices(args.cpu_devices)  # before anything starts JAX's backend
    plan = _plan_fresh(args) if args.resume is None else _plan_resume(args)

    from rich.console import Console

    from ppo_jax.cli import pbt_files
    from ppo_jax.population import PBTRun

    common.enable_compile_cache()
    pbt_run = PBTRun(plan.config, plan.explores, plan.population)
    session.check_layout(plan, pbt_run, "pbt run")
    err = Console(stderr=True)
    if plan.fresh:
        session.start_dir(plan, args.overwrite)
    _header(pbt_run, plan, err)
    result, host = _train(args, plan, pbt_run, err)
    stopped = host.stopped(pbt_run)
    extra = {
        **common.environment(),
        "updates_done": pbt_run.updates_done,
        "num_updates": plan.config.num_updates,
    }
    if not plan.fresh:
        extra["resumed"] = plan.resumed()
    if stopped:
        extra["stopped"] = stopped
    command = plan.first_command or common.command_line()
    point = pbt_files.write_dir(plan.out, result, command, extra, finished=not stopped)
    if not stopped:
        for line in pbt_files.summary_lines(result, point):
            err.print(line, soft_wrap=True)
    print(f"pbt written to {plan.out}")
    hint = f"ppo-jax pbt --resume {shlex.quote(str(plan.out))}"
    last = host.checkpointer.last_saved
    saved = f"the population's state saved in {plan.out / 'checkpoints' / str(last)}"
    code = host.report_interruption(err, pbt_run, what="The pbt run", saved=saved, hint=hint)
    return 0 if code is None else code
