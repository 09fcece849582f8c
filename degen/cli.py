"""``python -m degen`` / ``degen``: sweep, book, status, bench, clean."""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys

from degen import experiment, killpoints
from degen.config import ConfigError
from degen.executors import EXECUTORS, JobError, SlurmOptions
from degen.sweep import SweepError, build_book, root_or_error, run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="degen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("sweep", "train what the store lacks and execute the notebooks"),
        ("book", "run the sweep, then build the Jupyter Book"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--profile",
            default="default",
            help="sweeps/<profile>.yaml or a path (default: default)",
        )
        p.add_argument(
            "--executor",
            default="local",
            choices=EXECUTORS,
            help="where jobs run: local processes, or Slurm job arrays through "
            "submitit (local processes where there is no Slurm)",
        )
        p.add_argument(
            "--jobs",
            type=int,
            default=1,
            help="jobs run at once on this machine (default: 1, in this process)",
        )
        slurm = p.add_argument_group("slurm executor")
        slurm.add_argument("--partition", help="default: the cluster's")
        slurm.add_argument(
            "--time",
            type=int,
            dest="time_min",
            help=f"minutes per job (default: {SlurmOptions.time_min})",
        )
        slurm.add_argument("--gpus", type=int, help="GPUs per job (default: none)")
        slurm.add_argument(
            "--array-parallelism",
            type=int,
            help="jobs of an array running at once "
            f"(default: {SlurmOptions.array_parallelism})",
        )
        p.add_argument(
            "--device",
            default=None,
            help="auto (CUDA when present), cpu or cuda[:i]; default: the profile's",
        )
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    status = sub.add_parser(
        "status",
        help="what is done, running, missing or failed, per task and factor "
        "(trains nothing)",
    )
    status.add_argument(
        "--profile",
        default="default",
        help="sweeps/<profile>.yaml or a path (default: default)",
    )
    bench = sub.add_parser("bench", help="run the benchmark scripts")
    bench.add_argument(
        "--device", default="auto", help="auto (CUDA when present), cpu or cuda[:i]"
    )
    clean = sub.add_parser(
        "clean",
        help="list (or with --yes remove) the built book and executed notebooks",
    )
    clean.add_argument(
        "--results",
        action="store_true",
        help="also the results store (trained networks)",
    )
    clean.add_argument(
        "--yes", action="store_true", help="remove them (default: only list them)"
    )
    return parser


def _slurm_options(args: argparse.Namespace) -> SlurmOptions | None:
    """The Slurm options given on the command line, or None if none was."""
    names = ("partition", "time_min", "gpus", "array_parallelism")
    given = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    return SlurmOptions(**given) if given else None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command in ("sweep", "book"):
            killpoints.arm()
            outputs = run(
                args.profile,
                args.executor,
                args.device,
                progress=not args.quiet,
                jobs=args.jobs,
                slurm=_slurm_options(args),
            )
            print(f"{len(outputs)} notebooks up to date in book/generated/")
            if args.command == "book":
                index = build_book(profile=args.profile)
                print(f"the book is at {index}")
        elif args.command == "bench":
            return _bench(args.device)
        elif args.command == "status":
            _status(args.profile)
        elif args.command == "clean":
            _clean(args.results, args.yes)
    except (ConfigError, SweepError, JobError) as err:
        print(f"degen {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


def _bench(device: str) -> int:
    from degen.model import resolve_device

    resolve_device(device)  # a bad name stops here, before any script runs
    root = root_or_error()
    scripts = sorted((root / "benchmarks").glob("bench_*.py"))
    if not scripts:
        print("degen bench: no benchmarks/bench_*.py scripts found", file=sys.stderr)
        return 2
    status = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        status |= subprocess.call([sys.executable, str(script), "--device", device])
    return status


def _status(profile: str) -> None:
    from degen.status import format_status, profile_status

    root = root_or_error()
    store = experiment.default_store()
    header = (
        f"profile {profile}: results in {store.root}, notebooks in "
        f"{root / 'book' / 'generated'}"
    )
    print(format_status(profile_status(profile, root, store), header))


def _clean(results: bool, yes: bool) -> None:
    root = root_or_error()
    targets = [root / "_build", root / "book" / "generated"]
    if results:
        targets.append(root / "results")
    targets = [path for path in targets if path.exists()]
    if not targets:
        print("nothing to remove")
    for path in targets:
        if yes:
            shutil.rmtree(path)
            print(f"removed {path}")
        else:
            print(f"would remove {path}")
    if targets and not yes:
        print("(a dry run: pass --yes to remove them)")


if __name__ == "__main__":
    sys.exit(main())
