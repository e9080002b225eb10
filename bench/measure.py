"""Run one command and report what its process tree cost, as JSON.

``python -m bench.measure --out RESULT.json [--log LOG] -- CMD ...`` runs CMD, waits for
it, and writes ``{"returncode", "wall_s", "user_s", "sys_s", "maxrss_kib"}``: wall time of
CMD alone, ``getrusage(RUSAGE_CHILDREN)`` user and system seconds (every descendant that
was waited for, grandchildren included) and ``ru_maxrss`` (KiB on Linux: the peak RSS of
the largest single process of the tree). This wrapper's own start-up is not counted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns CMD's exit status (127 when it cannot be started)."""
    parser = argparse.ArgumentParser(prog="python -m bench.measure")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--log", type=Path, help="CMD's stdout and stderr (default: inherited)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    log = args.log.open("ab") if args.log else None
    started = time.perf_counter()
    try:
        returncode = subprocess.run(command, stdout=log, stderr=log, check=False).returncode
    except OSError as exc:
        print(f"cannot run {command[0]}: {exc}", file=sys.stderr)
        returncode = 127
    wall = time.perf_counter() - started
    if log:
        log.close()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "returncode": returncode,
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "maxrss_kib": usage.ru_maxrss,
    }
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return returncode


if __name__ == "__main__":
    sys.exit(main())
