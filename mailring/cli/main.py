"""Entry point of the ``mailring`` command: parse, dispatch, and turn bad input into exit 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from mailring import interrupts
from mailring.cluster import TransportError
from mailring.errors import InputError

# Each module registers its verbs; imported lazily only through this list.
GROUPS = ("mailring.cli.model_cmds", "mailring.cli.lab_cmds", "mailring.cli.fault_cmds",
          "mailring.cli.run_cmds", "mailring.cli.fuzz_cmds")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailring", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in GROUPS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    interrupts.install()  # SIGTERM, like Ctrl-C, runs every finally: faults healed, lab down
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"mailring: {exc}", file=sys.stderr)
        return exc.exit_code
    except (TransportError, TimeoutError) as exc:
        print(f"mailring: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        why = f" ({exc})" if isinstance(exc, interrupts.Terminated) else ""
        print(f"mailring: interrupted{why}", file=sys.stderr)
        return interrupts.exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
