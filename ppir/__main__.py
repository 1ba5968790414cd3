"""`ppir <command> [options]` (the console script) and `python -m ppir <command> [options]`."""
from __future__ import annotations

import difflib
import sys

from . import __version__
from .cli import program_name, run
from .commands import COMMANDS, load


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ppir <command> [options]     (ppir <command> --help: that command's options)", "",
             "MIRNet, HINet and MIMO-UNet image restoration in PaddlePaddle. Commands:"]
    lines += [f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run one command; `argv` None means this process's command line (then the command's `prepare` runs first)."""
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        print(f"ppir {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        print(f"error: unknown command '{name}'{hint}; `ppir --help` lists them", file=sys.stderr)
        return 2
    module = load(name)

    def prepared_main(args):
        if argv is None and hasattr(module, "prepare"):
            module.prepare(args)  # the process's own set-up (`ppir serve`: OpenCV's pixel limit, before cv2 loads)
        return module.main(args)

    with program_name(f"ppir {name}"):
        return run(prepared_main, rest)


if __name__ == "__main__":
    sys.exit(main())
