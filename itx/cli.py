"""`itx` entry point. Each module in itx/commands/ adds its subcommand via register(subparsers)."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import itx.commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="itx", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in sorted(pkgutil.iter_modules(itx.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"itx.commands.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as exc:
        # User-facing errors are one line naming the file/field/shape; no traceback dump.
        print(f"itx {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
