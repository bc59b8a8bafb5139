#!/usr/bin/env python3
"""Runs a CLI transcript: command lines with their expected exit code and output.

Format of a .t file (cases separated by blank lines, '#' starts a comment):
    % shell command        setup, run with bash before the next '$' (must succeed)
    $ ARGS...              run the program with ARGS (shell-like quoting);
                           leading NAME=VALUE words set environment variables
    ~ shell command        instead of '$': run a shell command with bash; its
                           exit code and output are checked the same way
    < FILE                 stdin of the command (default: none)
    ? CODE                 expected exit code (default 0)
    > text                 stdout, exact: if any '>' line is given, stdout must
                           be exactly these lines
    >~ regex               some stdout line matches regex
    ! text / !~ regex      the same for stderr
    >! regex / !! regex    no stdout / stderr line matches regex
{tmp} is replaced by a temporary directory for the file, {src} by the source tree,
{bin} by the program, {env:NAME} by the environment variable NAME (which must be
set). Prints one line per case and 'N passed, N failed'.
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile


def parse(path):
    cases, cur = [], None
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip():
                cur = None
                continue
            if line.startswith("#"):
                continue
            if cur is None:
                cur = {"line": lineno, "setup": [], "args": None, "code": 0,
                       "out": [], "err": [], "out_re": [], "err_re": [], "out_not": [], "err_not": [], "stdin": None,
                       "shell": False}
                cases.append(cur)
            tag, _, rest = line.partition(" ")
            if tag == "%":
                cur["setup"].append(rest)
            elif tag == "$":
                cur["args"] = rest
            elif tag == "~":
                cur["args"], cur["shell"] = rest, True
            elif tag == "?":
                cur["code"] = int(rest)
            elif tag == "<":
                cur["stdin"] = rest
            elif tag == ">":
                cur["out"].append(rest)
            elif tag == "!":
                cur["err"].append(rest)
            elif tag == ">~":
                cur["out_re"].append(rest)
            elif tag == "!~":
                cur["err_re"].append(rest)
            elif tag == ">!":
                cur["out_not"].append(rest)
            elif tag == "!!":
                cur["err_not"].append(rest)
            else:
                sys.exit(f"{path}:{lineno}: unknown line tag {tag!r}")
    return cases


def run_case(binary, case, subst):
    def expand(s):
        for k, v in subst.items():
            s = s.replace("{" + k + "}", v)
        return re.sub(r"\{env:([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: os.environ[m.group(1)], s)

    for cmd in case["setup"]:
        r = subprocess.run(["bash", "-c", expand(cmd)], capture_output=True, text=True)
        if r.returncode != 0:
            return [f"setup failed ({r.returncode}): {cmd}\n{r.stderr}"]
    if case["args"] is None:
        return []
    env = dict(os.environ)
    if case["shell"]:
        words, argv = [], ["bash", "-c", expand(case["args"])]
    else:
        words = shlex.split(expand(case["args"]))
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        k, _, v = words.pop(0).partition("=")
        env[k] = v
    stdin = open(os.path.join(subst["tmp"], expand(case["stdin"])), "rb") if case["stdin"] else subprocess.DEVNULL
    try:
        if not case["shell"]:
            argv = [binary] + words
        r = subprocess.run(argv, capture_output=True, text=True, env=env,
                           cwd=subst["tmp"], stdin=stdin, timeout=120)
    finally:
        if case["stdin"]:
            stdin.close()
    problems = []
    if r.returncode != case["code"]:
        problems.append(f"exit code {r.returncode}, expected {case['code']}")
    for name, text, exact, regexes, nots in (
            ("stdout", r.stdout, case["out"], case["out_re"], case["out_not"]),
            ("stderr", r.stderr, case["err"], case["err_re"], case["err_not"])):
        lines = text.splitlines()
        if exact and lines != [expand(x) for x in exact]:
            problems.append(f"{name} differs:\n  expected: {exact}\n  actual:   {lines}")
        for rx in regexes:
            if not any(re.search(expand(rx), l) for l in lines):
                problems.append(f"{name} has no line matching {rx!r}:\n  " + "\n  ".join(lines))
        for rx in nots:
            bad = [l for l in lines if re.search(expand(rx), l)]
            if bad:
                problems.append(f"{name} has a line matching {rx!r}: {bad[0]!r}")
    return problems


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: transcript.py PROGRAM FILE.t")
    binary, path = os.path.abspath(sys.argv[1]), sys.argv[2]
    src = os.environ.get("MXPC_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(path))))
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        subst = {"tmp": tmp, "src": src, "bin": binary}
        for case in parse(path):
            problems = run_case(binary, case, subst)
            label = f"{os.path.basename(path)}:{case['line']}: {case['args'] if case['args'] is not None else case['setup'][0]}"
            if problems:
                failed += 1
                print(f"FAIL {label}")
                for p in problems:
                    print("  " + p.replace("\n", "\n  "))
            else:
                passed += 1
                print(f"ok   {label}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
