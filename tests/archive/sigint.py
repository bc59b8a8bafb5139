#!/usr/bin/env python3
"""Interrupting a write: SIGINT (or SIGTERM) while an archive is being written
ends the program with 130 (143), and neither the target nor its temporary file
is left behind. Covers a Lua source, a C file loop and Lua entry writes.
Interrupting a read (a skip in C, reads from Lua, a pipe into a command) ends
the program with 130 as well.

usage: sigint.py PROGRAM SOURCE_DIR
"""
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def interrupt(program, script, out, mode, extra, signo):
    p = subprocess.Popen([program, "run", script, out, mode] + extra, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    temp = os.path.join(os.path.dirname(out), "." + os.path.basename(out) + ".tmp-*")
    deadline = time.time() + 30
    while not glob.glob(temp) and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    started = bool(glob.glob(temp))
    time.sleep(0.5)  # well inside the write loop
    p.send_signal(signo)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return started, p.returncode, err


def main():
    program, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    script = os.path.join(src, "tests/archive/slow_write.lua")
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "sparse")
        with open(big, "wb") as f:
            f.truncate(1 << 40)  # 1 TiB of holes: reads fast, never finishes in time
        for mode, signo, code in (("stream", signal.SIGINT, 130), ("file", signal.SIGINT, 130),
                                  ("entry", signal.SIGINT, 130), ("stream", signal.SIGTERM, 143)):
            out_dir = os.path.join(tmp, f"{mode}-{signo}")
            os.mkdir(out_dir)
            out = os.path.join(out_dir, "backup.tar.gz")
            started, rc, err = interrupt(program, script, out, mode, [big] if mode == "file" else [], signo)
            name = signal.Signals(signo).name
            check(started, f"{mode}: the temporary file appeared while writing")
            check(rc == code and f"interrupted by {name}" in err,
                  f"{mode}: {name} ends the program with {code} (got {rc}: {err.strip()})")
            left = os.listdir(out_dir)
            check(left == [], f"{mode}: neither target nor temporary file is left ({left})")
        for mode in ("skip", "read", "pipe"):
            p = subprocess.Popen([program, "run", os.path.join(src, "tests/archive/slow_read.lua"), mode],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(0.7)
            check(p.poll() is None, f"read {mode}: still reading after 0.7 s")
            p.send_signal(signal.SIGINT)
            try:
                _, err = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            check(p.returncode == 130 and "interrupted by SIGINT" in err,
                  f"read {mode}: SIGINT ends the program with 130 (got {p.returncode}: {err.strip()})")
    print(f"{len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
