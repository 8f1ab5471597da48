"""Command line: ``python -m ddmi_lite {reproduce,data}`` (also installed as ``ddmi-lite``).

``reproduce`` executes the notebooks under a profile and writes ``runs/<profile>/report.md``
(see :mod:`ddmi_lite.reproduce`); ``data`` prepares the offline default datasets under ``data/``;
``bench`` times every stage against the device's matmul peak (see :mod:`ddmi_lite.bench`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ddmi_lite import __version__
from ddmi_lite.bench import bench_main
from ddmi_lite.data import prepare_emoji, prepare_moving_emoji, prepare_shapes, prepare_views
from ddmi_lite.device import resolve_device
from ddmi_lite.domains.nerf import nerf_vae_config
from ddmi_lite.data.emoji import default_data_dir
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import check_writable_folder
from ddmi_lite.notebook import run_name, select_notebooks
from ddmi_lite.presets import PROFILES, check_profile, check_profile_device
from ddmi_lite.report import write_report
from ddmi_lite.reproduce import check_params, parse_params, run_all

PROG = "ddmi-lite"


DATASETS = ("emoji", "shapes", "video", "views")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="DDMI-lite: reproduce the paper's experiments.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{reproduce,data,bench}")

    rep = commands.add_parser("reproduce", help="execute the notebooks under a profile and write the report")
    rep.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default: cpu)")
    rep.add_argument(
        "--only", nargs="+", action="extend", metavar="NAME",
        help="run only these notebooks: a name like 03_d2c_vae or its number 03",
    )
    rep.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index> (default: auto)")
    rep.add_argument("--seed", type=int, default=0, help="random seed passed to every notebook (default: 0)")
    rep.add_argument("--force", action="store_true", help="re-run notebooks whose outputs are up to date")
    rep.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="set a notebook parameter, e.g. DATA_DIR=/data/afhq (repeatable; results go to "
                          "OUT/<profile>-seed<k>-<digest>/)")
    rep.add_argument("--out", default="runs", help="output root; results go to OUT/<profile>/, or "
                     "OUT/<profile>-seed<k>/ for a seed other than 0 (default: runs)")
    rep.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")

    data = commands.add_parser("data", help="prepare the offline default datasets under data/")
    data.add_argument("--force", action="store_true", help="rebuild caches that already exist")
    data.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    data.add_argument("--only", nargs="+", choices=DATASETS, default=list(DATASETS),
                      help=f"datasets to prepare (default: all of {', '.join(DATASETS)})")
    bench = commands.add_parser("bench", help="time every stage, FLOP/s against the matmul peak, peak memory")
    bench.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default: cpu)")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index> (default: auto)")
    bench.add_argument("--out", default=None, help="JSON path (default: runs/<profile>/bench.json; a PNG beside it)")
    bench.add_argument("--no-progress", dest="progress", action="store_false", help="print nothing per stage")
    return parser


def _bench(args: argparse.Namespace) -> int:
    try:
        check_profile_device(args.profile, resolve_device(args.device))
        path = bench_main(args.profile, args.device, args.out, progress=args.progress)
    except DDMIError as err:
        _error(str(err))
        return 2
    print(f"bench written to {path}")
    return 0


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _reproduce(args: argparse.Namespace) -> int:
    try:  # argument errors first, before anything runs
        check_profile(args.profile)
        notebooks = select_notebooks(args.only)
        check_profile_device(args.profile, resolve_device(args.device))  # an unknown or unavailable device fails before any notebook
        params = parse_params(args.param)
        if isinstance(params.get("DATA_DIR"), str) and params["DATA_DIR"]:  # the notebooks run in notebooks/
            params["DATA_DIR"] = str(Path(params["DATA_DIR"]).expanduser().absolute())
        check_params(params, notebooks)
        name = run_name(args.profile, seed=args.seed, params=params)
        check_writable_folder(args.out, what="--out")
    except DDMIError as err:
        _error(str(err))
        return 2
    try:
        run_all(
            args.profile, only=args.only, out_root=args.out, device=args.device,
            seed=args.seed, params=params, force=args.force, progress=args.progress,
        )
        report = write_report(args.profile, args.out, only=args.only, run=name)
    except DDMIError as err:
        _error(str(err))
        return 1
    print(f"report written to {report}")
    return 0


def _data(args: argparse.Namespace) -> int:
    views = nerf_vae_config("cpu")  # the NeRF collection of the cpu and gpu presets (~20 s)
    preparers = {"emoji": prepare_emoji, "shapes": prepare_shapes,
                 "video": prepare_moving_emoji,  # moving-emoji clips (2,000 + 200 of 16 × 32², ~15 s)
                 "views": lambda **kw: prepare_views(n_objects=views.n_objects, views=views.views, size=views.size,
                                                     **kw)}
    try:
        root = check_writable_folder(default_data_dir(), what="the data folder (DDMI_DATA_DIR or data/)")
    except DDMIError as err:
        _error(str(err))
        return 2
    for name in args.only:
        try:
            path = preparers[name](force=args.force, progress=args.progress)
        except DDMIError as err:
            _error(str(err))
            return 1
        except OSError as err:  # a full or read-only disk, found only while writing
            where = f" ({err.filename})" if err.filename else ""
            _error(f"preparing {name} in {root} failed: {err.strerror or err}{where}; "
                   f"free some space or set DDMI_DATA_DIR to a writable folder")
            return 1
        print(f"{name} data ready in {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ddmi_lite`` and the ``ddmi-lite`` script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    if args.command == "reproduce":
        return _reproduce(args)
    return _data(args)


if __name__ == "__main__":
    sys.exit(main())
