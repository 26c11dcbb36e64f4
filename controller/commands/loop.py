"""``focuslock focus | lock | collect | demo``: the closed loop from the command line.

All four take ``--config`` (TOML, controller/config.py); without it the virtual microscope and
the bundled model are used, so every command runs on any machine. Run logs (JSON lines and CSV)
go to a timestamped folder under ``log_dir``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from controller.config import Config, FocusSettings, load_config

DEMO_RANDOM_WALK = 0.01  # µm/√s on top of the drift: 0.08 µm rms per minute
DEMO_START_OUT_UM = 8.0  # the demo starts this far from focus

if TYPE_CHECKING:
    from controller.hardware.rig import Rig
    from controller.loop import FocusLoop, FocusReport
    from controller.runlog import RunLog, StepRecord
    from controller.sensing import FocusSensor


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    focus = subparsers.add_parser("focus", help="focus now: move until in focus, then report")
    _config_option(focus)
    focus.add_argument("--max-steps", type=int, help="moves at most (default: focus.max_steps)")
    focus.set_defaults(func=run_focus)

    lock = subparsers.add_parser("lock", help="hold the sample in focus until stopped")
    _config_option(lock)
    lock.add_argument("--duration", type=float, metavar="S",
                      help="stop after S seconds (default: until Ctrl-C)")
    lock.add_argument("--focus-first", action="store_true",
                      help="focus now first and lock only if it ends in focus; where it "
                           "finishes on the sharpness, the lock holds the plane it found "
                           "(docs/loop.md)")
    lock.set_defaults(func=run_lock)

    collect = subparsers.add_parser(
        "collect", help="acquire focal stacks of your sample for training (both patterns)")
    _config_option(collect)
    collect.add_argument("--out", required=True, type=Path, help="folder for the stack files")
    collect.add_argument("--positions", type=int, default=1,
                         help="sample positions (one stack each; default 1)")
    collect.add_argument("--range", type=float, default=30.0, dest="range_um", metavar="UM",
                         help="planes from -UM to +UM around the current z (default 30)")
    collect.add_argument("--step", type=float, default=1.0, dest="step_um", metavar="UM",
                         help="plane spacing (default 1)")
    collect.set_defaults(func=run_collect)

    demo = subparsers.add_parser(
        "demo", help="the focus lock on the digital twin: drift, a knock, a blank field")
    _config_option(demo)
    demo.add_argument("--duration", type=float, default=90.0, metavar="S",
                      help="length of the run (default 90 s)")
    demo.add_argument("--out", type=Path, help="folder for the CSV, log and plot "
                                               "(default: a new folder under log_dir)")
    demo.add_argument("--drift", type=float, default=1.0, metavar="UM_PER_MIN",
                      help="thermal drift of the focal plane (default 1 µm/min)")
    demo.add_argument("--frame-size", type=int, metavar="PX",
                      help="square frames of PX pixels (default: twin.frame_size, else the "
                           "optics preset's frame)")
    demo.set_defaults(func=run_demo)


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config (default: built-in defaults)")


def _open(config: Config) -> tuple[Rig, FocusSensor]:
    from controller.hardware.rig import open_rig

    rig = open_rig(config)
    try:
        return rig, _sensor(config, rig)
    except BaseException:
        rig.close()
        raise


def _sensor(config: Config, rig: Rig) -> FocusSensor:
    from controller.sensing import open_sensor

    return open_sensor(config, rig.preset)[0]


def _run_log(config: Config, prefix: str) -> RunLog:
    from controller.preflight import check_log_dir
    from controller.runlog import RunLog, timestamped_dir

    check_log_dir(config.log_dir)
    folder = timestamped_dir(Path(config.log_dir), prefix)
    return RunLog(folder / "steps.jsonl", folder / "steps.csv",
                  max_bytes=round(config.log_max_mb * 1e6), keep=config.log_keep)


@contextmanager
def stop_on_ctrl_c(what: str) -> Iterator[Callable[[], bool]]:
    """Within it, Ctrl-C (SIGINT) asks ``what`` to stop at its next check, between two moves,
    instead of interrupting it mid-move; a second Ctrl-C interrupts at once. Yields the check.
    Main thread only (Python delivers signals there)."""
    requested = False

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal requested
        if requested:
            raise KeyboardInterrupt
        requested = True
        print(f"{what}: stopping before the next move (Ctrl-C again to interrupt at once)",
              file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield lambda: requested
    finally:
        signal.signal(signal.SIGINT, previous)


def run_focus(args: argparse.Namespace) -> int:
    import dataclasses

    from controller.loop import FocusLoop

    config = load_config(args.config)
    settings = config.focus
    if args.max_steps is not None:
        settings = dataclasses.replace(settings, max_steps=args.max_steps)
    rig, sensor = _open(config)
    try:
        with _run_log(config, "focus") as log:
            loop = FocusLoop.for_rig(rig, sensor, config, record_sink=log.write)
            report = _focus_now(loop, settings)
            print(f"log: {log.jsonl_path}")
    finally:
        rig.close()
    return 0 if report.success else 1


def _focus_now(loop: FocusLoop, settings: FocusSettings) -> FocusReport:
    """Focus now until it ends or Ctrl-C, and say how it ended."""
    with stop_on_ctrl_c("focus now") as should_stop:
        report = loop.focus_now(settings, should_stop)
    print(f"focus now: {'in focus' if report.success else 'FAILED'} after "
          f"{report.moves} moves ({report.steps} steps), ended {report.state.value}: "
          f"{report.reason}")
    return report


def run_lock(args: argparse.Namespace) -> int:
    from controller.lock_runner import LockRunner
    from controller.loop import FocusLoop

    config = load_config(args.config)
    rig, sensor = _open(config)
    try:
        with _run_log(config, "lock") as log:
            loop = FocusLoop.for_rig(rig, sensor, config, record_sink=log.write)
            if args.focus_first and not _focus_now(loop, config.focus).success:
                print(f"lock: not started, focus now did not end in focus; log: "
                      f"{log.jsonl_path}", file=sys.stderr)
                return 1
            runner = LockRunner(loop)

            def show(record: StepRecord) -> None:
                reading = "--" if record.error_um is None else f"{record.error_um:+.2f} µm"
                print(f"step {record.step:5d}  {record.state:<8}  reading {reading:<11} "
                      f"move {record.move_um:+.2f} µm  {record.rejected or ''}", flush=True)

            try:
                report = runner.run(duration_s=args.duration, on_step=show)
            except KeyboardInterrupt:
                print("lock: stopped by the user", file=sys.stderr)
                return 0
            print(f"lock ended {report.final_state.value}: {report.reason or 'as asked'}; "
                  f"{report.counts.steps} steps, {report.counts.moves} moves, "
                  f"{report.counts.locked_steps} locked; log: {log.jsonl_path}")
    finally:
        rig.close()
    return 0 if report.ok else 1


def run_collect(args: argparse.Namespace) -> int:
    from controller.collect import (
        check_rig_free,
        collect,
        next_field,
        plane_offsets,
        print_progress,
    )
    from controller.hardware.rig import open_rig

    config = load_config(args.config)
    if args.positions < 1:
        from controller.errors import FocuslockError

        raise FocuslockError("collect: --positions must be positive")
    offsets = plane_offsets(args.range_um, args.step_um)
    check_rig_free(config)
    rig = open_rig(config)
    try:
        paths = collect(rig, args.out, positions=args.positions, offsets_um=offsets,
                        next_position=next_field(rig, config, args.positions),
                        progress=print_progress)
    finally:
        rig.close()
    for path in paths:
        print(f"wrote {path}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    import dataclasses

    from controller.optics import preset
    from controller.runlog import RunLog, timestamped_dir
    from controller.sim.demo import (
        TRUTH_COLUMNS,
        LiveView,
        plot_run,
        run_scenario_lock,
        score_run,
        summary_lines,
    )
    from controller.sim.rigs import config_travel
    from controller.sim.scenario import demo_scenario
    from controller.sim.twin import open_twin

    config = load_config(args.config)
    sim_settings = dataclasses.replace(  # the demo's bad day, whatever the config's twin says
        config.sim, drift_um_per_min=args.drift, random_walk_um_per_sqrt_s=DEMO_RANDOM_WALK,
        start_z_um=config.sim.focus_z_um + DEMO_START_OUT_UM,
        frame_size=config.sim.frame_size if args.frame_size is None else args.frame_size)
    out = args.out or timestamped_dir(Path(config.log_dir), "demo")
    out.mkdir(parents=True, exist_ok=True)
    print(f"focuslock demo: {args.duration:.0f} s lock on the digital twin (virtual microscope, "
          f"real firmware under MicroPython), drift {sim_settings.drift_um_per_min} µm/min")
    twin = open_twin(preset(config.optics.preset), sim_settings,
                     steps_per_um=config.board.steps_per_um, travel_um=config_travel(config))
    try:
        sensor = _sensor(config, twin.rig)
        with RunLog(out / "run.jsonl", out / "run.csv", extra_columns=TRUTH_COLUMNS) as log:
            run = run_scenario_lock(twin.rig, sensor, config, duration_s=args.duration,
                                    events=demo_scenario(args.duration), log=log,
                                    view=LiveView(args.duration))
    finally:
        twin.close()
    tolerance = config.lock.tolerance_um
    score = score_run(run, tolerance)
    verdict = "OK" if score.ok else "FAILED"
    plot = plot_run(run.rows, out / "focus-error.png", tolerance_um=tolerance,
                    title=f"focuslock demo: lock on the digital twin ({verdict})")
    print()
    for line in summary_lines(score, tolerance_um=tolerance):
        print(line)
    print(f"run: {out / 'run.csv'}\nplot: {plot}")
    return 0 if score.ok else 1
