"""`itx` entry point. Each module in itx/commands/ adds its subcommand via register(subparsers); every error
leaves through itx.errors.report (one stderr line, exit code 0/1/2/3/130)."""
from __future__ import annotations

import importlib
import pkgutil
import sys

import itx.commands
from itx.golden.errors import UserError
from itx.errors import ArgumentParser, report


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="itx", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in sorted(pkgutil.iter_modules(itx.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"itx.commands.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = "itx"
    try:
        args = build_parser().parse_args(argv)
        prog = " ".join(["itx", args.command, *([args.action] if getattr(args, "action", None) else [])])
        return int(args.func(args) or 0)
    except SystemExit as exc:   # --help; sys.exit("message") in a command is a user error
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        return report(prog, UserError(str(exc.code)))
    except BaseException as exc:    # noqa: B036 - Ctrl-C included: one line and exit 130, no traceback
        return report(prog, exc)


if __name__ == "__main__":
    sys.exit(main())
