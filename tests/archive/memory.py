#!/usr/bin/env python3
"""Memory stays flat: writing and verifying an archive with a multi-GiB file
takes about as much memory (peak RSS, VmHWM in /proc, measured inside the
program by peak_rss.lua) as with a 1 MiB file.
Cheap compressible data at compression level 1 keeps the run short. A rough
guard, not a benchmark: the bound is generous so that sanitizer builds pass.

usage: memory.py PROGRAM SOURCE_DIR [SIZE_BYTES]   (default 2 GiB)
"""
import os
import subprocess
import sys
import tempfile
import time

SLACK_KIB = 64 * 1024  # what the big run may use beyond the small one


def max_rss(program, peak, args):
    """Runs `program run peak_rss.lua ARGS`; returns (exit code, peak RSS in KiB, seconds, stderr)."""
    start = time.time()
    r = subprocess.run([program, "run", peak] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, timeout=900)
    lines = r.stderr.splitlines()
    rss = int(lines[-1].split("=")[1]) if lines and lines[-1].startswith("peak_rss_kib=") else -1
    return r.returncode, rss, time.time() - start, "\n".join(lines[:-1])


def main():
    program, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 2 << 30
    script = os.path.join(src, "tests/archive/big_write.lua")
    peak = os.path.join(src, "tests/archive/peak_rss.lua")
    dump = os.path.join(src, "tests/archive/fixtures/sample.backup")
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for label, n in (("small", 1 << 20), ("big", size)):
            out = os.path.join(tmp, f"{label}.tar.gz")
            w = max_rss(program, peak, ["run", script, out, dump, str(n)])
            v = max_rss(program, peak, ["verify", out])
            results[label] = (w, v, os.path.getsize(out) if os.path.exists(out) else -1)
            for what, (rc, rss, secs, err) in (("write", w), ("verify", v)):
                print(f"{label:5} {what:6} {n:>11} bytes: exit {rc}, max RSS {rss} KiB, {secs:.1f} s {err}")
                if rc != 0:
                    failed += 1
                    print(f"FAIL {label} {what} exited with {rc}")
            print(f"{label:5} archive: {results[label][2]} bytes")
            if label == "big":
                os.remove(out)
        for i, what in enumerate(("write", "verify")):
            small, big = results["small"][i][1], results["big"][i][1]
            ok = 0 < big <= small + SLACK_KIB
            print(("ok   " if ok else "FAIL ") +
                  f"{what}: max RSS {big} KiB for {size} bytes vs {small} KiB for 1 MiB (bound +{SLACK_KIB} KiB)")
            failed += 0 if ok else 1
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
