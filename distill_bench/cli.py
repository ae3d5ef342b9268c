"""``distill-bench``: one command for the project's entry points, and compact configuration errors.

    distill-bench train [overrides]        # = python run.py [overrides]   (Hydra: -m, --help, --cfg job ...)
    distill-bench eval model=<ckpt> [...]  # = python -m eval ...
    distill-bench report results/ [...]    # = python -m eval.report ...
    distill-bench sweep FILE [...]         # = python -m sweeps.local FILE ...

Each subcommand runs the same code as the command it stands for, in this process, with the rest of
the command line as its own. A configuration error (the project's validation, an unknown or
malformed override, a missing mandatory value) prints its message and the fix, without a traceback,
and exits with status 2; ``HYDRA_FULL_ERROR=1`` shows the traceback.
"""
from __future__ import annotations

import os
import re
import runpy
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
CONFIG_ERROR_EXIT = 2

COMMANDS = {
    "train": "train a student (python run.py): Hydra overrides, -m for a multirun, --help for the groups",
    "eval": "evaluate a checkpoint with the benchmarks (python -m eval)",
    "report": "tables and plots of finished runs (python -m eval.report)",
    "sweep": "run a W&B sweep file without a server, resumable (python -m sweeps.local)",
}


# ----------------------------------------------------------------------------- configuration errors
def config_error_message(exc: BaseException) -> str | None:
    """The message (with its fix) of a configuration error; None for any other exception."""
    from hydra.errors import CompactHydraException
    from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue, OmegaConfBaseException

    from distill.validate import ConfigError

    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, CompactHydraException):  # unknown override, unknown option, bad syntax
        cause = exc.__cause__
        text = str(exc)
        if isinstance(cause, OmegaConfBaseException) and str(cause) not in text:
            text += "\n" + str(cause)
        return text
    missing = re.search(r"Missing mandatory value: ([\w.]+)", str(exc))
    if isinstance(exc, (MissingMandatoryValue, InterpolationToMissingValueError)) and missing:
        return (f"{exc}\nfix: give {missing.group(1)} a value on the command line, e.g. "
                f"{missing.group(1)}=<value> (or in the config file that leaves it as ???)")
    if isinstance(exc, OmegaConfBaseException):  # a bad value or key in a config or an override
        return str(exc)
    return None


def run_guarded(fn: Callable[[], object]) -> object:
    """Run a Hydra app (``fn``, e.g. a ``@hydra.main`` function) so that a configuration error
    prints ``error: <message and fix>`` and exits with status 2 instead of a traceback. Other errors
    keep their traceback; ``HYDRA_FULL_ERROR=1`` (set by the user) keeps it for every error."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return fn()
    # Hydra prints its own (partial) traceback unless HYDRA_FULL_ERROR is set; set, it lets the
    # exception reach this handler, which prints configuration errors compactly
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return fn()
    except Exception as e:
        message = config_error_message(e)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT) from None
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


# ----------------------------------------------------------------------------- the dispatcher
def _run_py() -> Path:
    path = ROOT / "run.py"
    if not path.is_file():
        raise SystemExit(f"distill-bench train runs {path}, which is not there: the command works from the "
                         "project's checkout, installed with pip install -e .")
    return path


def train(args: list[str]) -> int:
    path = _run_py()
    sys.argv = [str(path), *args]
    runpy.run_path(str(path), run_name="__main__")  # run.py's own __main__ block (run_guarded)
    return 0


def evaluate(args: list[str]) -> int:
    sys.argv = [str(ROOT / "eval" / "__main__.py"), *args]
    run_guarded(lambda: runpy.run_module("eval", run_name="__main__", alter_sys=True))
    return 0


def report(args: list[str]) -> int:
    from eval.report import main

    return int(main(args) or 0)


def sweep(args: list[str]) -> int:
    from sweeps.local import main

    return int(main(args) or 0)


HANDLERS = {"train": train, "eval": evaluate, "report": report, "sweep": sweep}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: distill-bench {train,eval,report,sweep} [arguments of that command]", "",
             "Preference-aligned distillation: train, evaluate, report, sweep.", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    lines += ["", "distill-bench <command> --help shows the command's own options (Hydra's for train and eval).",
              "Examples:",
              "  distill-bench train method=adpa method.gamma=0.2",
              "  distill-bench train -m method=dpo,dckd seed=0,1,2",
              "  distill-bench eval model=artifacts/distill/<key>/model",
              "  distill-bench report results/ --group <multirun or sweep name>",
              "  distill-bench sweep sweeps/adpa_gamma.yaml --max-runs 3"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from distill import allocator

    allocator.configure()  # large buffers stay mapped between steps; DISTILL_MALLOC=default turns it off
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else CONFIG_ERROR_EXIT
    command, rest = argv[0], argv[1:]
    if command not in HANDLERS:
        print(f"error: unknown command {command!r}; choose one of {', '.join(COMMANDS)}\n\n{usage()}",
              file=sys.stderr)
        return CONFIG_ERROR_EXIT
    return HANDLERS[command](rest)


if __name__ == "__main__":
    sys.exit(main())
