"""``python -m degen`` / ``degen``: sweep, book, bench, clean."""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys

from degen.config import ConfigError
from degen.sweep import EXECUTORS, SweepError, build_book, root_or_error, run


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
        p.add_argument("--executor", default="local", choices=EXECUTORS)
        p.add_argument(
            "--device",
            default=None,
            help="auto (CUDA when present), cpu or cuda[:i]; default: the profile's",
        )
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    bench = sub.add_parser("bench", help="run the benchmark scripts")
    bench.add_argument("--device", default="auto")
    clean = sub.add_parser("clean", help="remove the built book and executed notebooks")
    clean.add_argument(
        "--results",
        action="store_true",
        help="also remove the results store (trained networks)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command in ("sweep", "book"):
            outputs = run(
                args.profile, args.executor, args.device, progress=not args.quiet
            )
            print(f"executed {len(outputs)} notebooks into book/generated/")
            if args.command == "book":
                index = build_book()
                print(f"the book is at {index}")
        elif args.command == "bench":
            return _bench(args.device)
        elif args.command == "clean":
            _clean(args.results)
    except (ConfigError, SweepError) as err:
        print(f"degen {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


def _bench(device: str) -> int:
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


def _clean(results: bool) -> None:
    root = root_or_error()
    targets = [root / "_build", root / "book" / "generated"]
    if results:
        targets.append(root / "results")
    for path in targets:
        if path.exists():
            shutil.rmtree(path)
            print(f"removed {path}")


if __name__ == "__main__":
    sys.exit(main())
