"""How long a log goes without a line: run a command, timestamp every line it prints, report the gaps.

    python bench/log_gaps.py -- python run.py                 # the default toy run, as `> log 2>&1` sees it
    python bench/log_gaps.py --limit 30 --log gaps.log -- python run.py experiment=smoke

The command runs with stdout and stderr joined into one pipe (not a terminal, so the project's
progress is in its plain-line mode, as in ``python run.py > log 2>&1``). Each line is stamped with
the seconds since the start when it arrives. At the end it prints the longest gaps between two
lines, each with the stage it was in (the last ``[<stage>]`` a line named before the gap) and the
lines on either side, the number of lines, and the command's exit status. With ``--limit S`` it
exits 1 when a gap is longer than S seconds (or the command failed), else with the command's
status.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

# A progress line names its stage in brackets: "[sft_teacher] training: ...", "[distill/adpa] building: ...".
STAGE = re.compile(r"\[([a-z][a-z0-9_]*(?:/[a-z0-9_]+)?)\] ")
IGNORED = {"info", "warning", "error", "debug", "critical"}  # logging levels in brackets are no stage


def stage_of(line: str) -> str | None:
    """The stage a line names: the last bracketed lower-case name followed by a space that is not a
    logging level or a logger's dotted name."""
    found = [m.group(1) for m in STAGE.finditer(line) if m.group(1).lower() not in IGNORED]
    return found[-1] if found else None


def gaps(stamped: list[tuple[float, str]], start: float = 0.0, end: float | None = None) -> list[dict]:
    """Every gap between consecutive lines (the first from ``start``, the last to ``end`` when given),
    longest first, each with its length, the stage in force and the lines around it."""
    out, current, prev_t, prev_line = [], None, start, "<start>"
    for t, line in stamped:
        out.append({"gap": t - prev_t, "stage": current, "before": prev_line, "after": line, "at": prev_t})
        current = stage_of(line) or current
        prev_t, prev_line = t, line
    if end is not None:
        out.append({"gap": end - prev_t, "stage": current, "before": prev_line, "after": "<exit>", "at": prev_t})
    return sorted(out, key=lambda g: -g["gap"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=float, default=None, help="exit 1 when a gap exceeds this many seconds")
    p.add_argument("--top", type=int, default=5, help="how many of the longest gaps to print (default 5)")
    p.add_argument("--log", default=None, help="also write every stamped line to this file")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = p.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        p.error("give the command after --, e.g. python bench/log_gaps.py -- python run.py")

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    sink = open(args.log, "w", encoding="utf-8") if args.log else None
    t0 = time.monotonic()
    stamped: list[tuple[float, str]] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            text=True, encoding="utf-8", errors="replace", bufsize=1)
    assert proc.stdout is not None
    for raw in proc.stdout:
        t = time.monotonic() - t0
        line = raw.rstrip("\n")
        stamped.append((t, line))
        text = f"{t:8.1f}s  {line}"
        print(text, flush=True)
        if sink:
            sink.write(text + "\n")
            sink.flush()
    rc = proc.wait()
    total = time.monotonic() - t0
    if sink:
        sink.close()

    found = gaps(stamped, end=total)
    print(f"\n{len(stamped)} lines in {total:.1f} s, exit status {rc}; longest gaps between lines:")
    for g in found[:args.top]:
        print(f"  {g['gap']:7.1f} s at {g['at']:7.1f} s, stage {g['stage'] or '(none yet)'}")
        print(f"      before: {g['before'][:150]}")
        print(f"      after:  {g['after'][:150]}")
    longest = found[0]["gap"] if found else total
    if args.limit is not None:
        ok = longest <= args.limit and rc == 0
        print(f"longest gap {longest:.1f} s {'<=' if longest <= args.limit else '>'} limit {args.limit:g} s"
              + ("" if rc == 0 else f"; the command failed (exit status {rc})"))
        return 0 if ok else 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
