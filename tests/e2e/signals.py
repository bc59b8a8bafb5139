#!/usr/bin/env python3
"""Signals during `backup` and `restore --stop-app`, on the local stack.

A backup interrupted at several offsets after the dump, up to its commit,
ends with 130/143 and no archive, or with 0 and a complete archive.

A restore is interrupted at each step (the
archive check, while the app's pods go, the upload) and at several offsets
after the database restore starts. Ctrl-C is sent to the whole process group
(as a terminal does), SIGTERM to the program only. Every run must end with
130/143 and the database untouched, or (from the database restore step on)
with 0 and the database restored (an interruption after the commit came too
late), never anything in between; and the app must run again afterwards.

usage: signals.py PROGRAM SOURCE_DIR     (needs MXPC_STACK_ENV; reseeds)
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "stack"))
import stacklib  # noqa: E402

checks = stacklib.Checks()
env = stacklib.stack_env_or_fail(checks)
program, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
run_env = dict(os.environ, KUBECONFIG=env["MXPC_KUBECONFIG"], PGSSLROOTCERT=env["MXPC_PG_CA"],
               MXPC_SCRIPTS="", MXPC_DATADIR="", MXPC_PG_BINDIR=env["MXPC_PG_BINDIR"])
info = stacklib.conninfo(host=env["MXPC_PG_HOST"], port=env["MXPC_PG_PLAIN_PORT"],
                         user=env["MXPC_PG_SUPERUSER"], dbname="demo_copy")

# Every row of every table in schema public, hashed.
FINGERPRINT = """
DO $$DECLARE r record; acc text := ''; h text; BEGIN
  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1 LOOP
    EXECUTE format('SELECT md5(coalesce(string_agg(t::text, chr(10) ORDER BY t::text), %L)) FROM public.%I t',
                   '', r.tablename) INTO h;
    acc := acc || r.tablename || ':' || h || ' ';
  END LOOP;
  RAISE NOTICE 'fingerprint %', md5(acc);
END$$;
"""


def fingerprint():
    p = stacklib.psql(env, info, FINGERPRINT, env["MXPC_PG_SUPERPASS"],
                      extra_env={"PGOPTIONS": "-c client_min_messages=notice"})
    m = re.search(r"fingerprint (\w+)", p.stderr)
    if not m:
        checks.abort(f"fingerprint of demo_copy: {p.stderr.strip()}")
    return m.group(1)


def replicas():
    k = subprocess.run(["kubectl", "-n", "mendix", "get", "mendixapp", "demo-copy", "-o",
                        "jsonpath={.spec.replicas}"], capture_output=True, text=True, env=run_env)
    return k.stdout.strip()


def running_pod():
    """Waits until demo-copy has one pod, not terminating (the operator takes
    a second or two after a restart), so that stopping it takes its time."""
    for _ in range(200):
        k = subprocess.run(["kubectl", "-n", "mendix", "get", "pods", "-l", "privatecloud.mendix.com/app=demo-copy",
                            "-o", "jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}|{end}"],
                           capture_output=True, text=True, env=run_env)
        pods = [p.split() for p in k.stdout.split("|") if p.strip()]
        if len(pods) == 1 and len(pods[0]) == 1:
            return
        time.sleep(0.1)
    checks.abort("demo-copy's pod did not come back")


def tool(*args):
    return subprocess.run([program, *args], capture_output=True, text=True, env=run_env)


def interrupt(archive, marker, delay, signo, argv=None):
    """Runs a restore (or argv) in its own process group, sends `signo` (if
    any) `delay` seconds after the stderr line containing `marker`; returns
    exit code, stderr (each line with the seconds since the marker in front),
    stdout and whether the marker was seen."""
    argv = argv or ["restore", "-n", "mendix", "-e", "demo-copy", "-f", archive, "--stop-app"]
    p = subprocess.Popen([program, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env,
                         start_new_session=True)
    lines, seen, at = [], threading.Event(), [None]

    def read():
        for line in p.stderr:
            now = time.monotonic()
            if marker in line and not seen.is_set():
                at[0] = now
                seen.set()
            lines.append(("%.3f " % (now - at[0]) if at[0] else "") + line)

    reader = threading.Thread(target=read)
    reader.start()
    if seen.wait(60) and signo:
        if delay:
            time.sleep(max(0, at[0] + delay - time.monotonic()))
        try:
            if signo == signal.SIGINT:
                os.killpg(p.pid, signo)  # a terminal's Ctrl-C reaches the whole group
            else:
                p.send_signal(signo)
        except ProcessLookupError:
            pass
    try:
        out = p.stdout.read()
        p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        out = ""
    reader.join()
    return p.returncode, "".join(lines), out, seen.is_set()


def backups(tmp):
    """Signals after the dump, up to and past the archive's commit."""
    out_dir = os.path.join(tmp, "out")
    os.mkdir(out_dir)
    target = os.path.join(out_dir, "b.tar.gz")
    argv = ["backup", "-n", "mendix", "-e", "demo-app", "-f", target]
    code, err, _, _ = interrupt(None, "database dumped", 0, None, argv)
    took = [float(line.split()[0]) for line in err.splitlines() if "backup written" in line]
    took = took[0] if took else 0.1
    print(f"# from the dump to the written archive: {took * 1000:.0f} ms", flush=True)
    checks.check("a backup without a signal", code == 0 and os.path.exists(target), err[-300:])
    offsets = sorted({0, 20, 50} | {max(0, round(took * 1000) + d) for d in (-20, -10, -5, 0, 5, 10)})
    outcomes = {"interrupted": 0, "completed": 0}
    for ms in offsets:
        for signo in (signal.SIGINT, signal.SIGTERM):
            if os.path.exists(target):
                os.remove(target)
            what = f"backup, {signal.Signals(signo).name} {ms} ms after 'database dumped'"
            code, err, out, _ = interrupt(None, "database dumped", ms / 1000, signo, argv)
            left = sorted(os.listdir(out_dir))
            if code == 128 + signo:
                outcomes["interrupted"] += 1
                checks.check(f"{what}: exit {code}, nothing left", left == [] and out == "", f"{left} {err[-300:]}")
            elif code == 0:
                outcomes["completed"] += 1
                ok = left == ["b.tar.gz"] and tool("-q", "verify", target).returncode == 0
                checks.check(f"{what}: exit 0, a complete archive", ok and out.startswith("backup of"),
                             f"{left} {err[-300:]}")
            else:
                checks.check(f"{what}: exit 0 or {128 + signo}", False, f"exit {code}: {err[-400:]}")
    print(f"# backup outcomes: {outcomes}", flush=True)


def main():
    seed = subprocess.run([os.path.join(src, "tests/stack/seed"), "--env-file", os.environ["MXPC_STACK_ENV"]],
                          capture_output=True, text=True)
    if seed.returncode != 0:
        checks.abort("seeding: " + seed.stderr[-500:])
    with tempfile.TemporaryDirectory() as tmp:
        backups(tmp)
        source, original = os.path.join(tmp, "demo.tar.gz"), os.path.join(tmp, "copy.tar.gz")
        checks.check("backup of demo-app", tool("-q", "backup", "-n", "mendix", "-e", "demo-app", "-f",
                                                source).returncode == 0)
        checks.check("backup of demo-copy as it was", tool("-q", "backup", "-n", "mendix", "-e", "demo-copy", "-f",
                                                           original).returncode == 0)
        before = fingerprint()
        code, err, _, _ = interrupt(source, "restoring the database", 0, None)
        after = fingerprint()
        checks.check("a restore without a signal changes the database", code == 0 and after != before, err[-300:])
        # how long the database restore takes here (to the commit, about)
        took = [float(line.split()[0]) for line in err.splitlines() if "database restored" in line]
        took = took[0] if took else 0.2
        print(f"# the database restore took {took * 1000:.0f} ms", flush=True)

        def reset():
            if fingerprint() != before:
                r = tool("-q", "restore", "-n", "mendix", "-e", "demo-copy", "-f", original, "--stop-app")
                if r.returncode != 0 or fingerprint() != before:
                    checks.abort("putting demo-copy back as it was: " + r.stderr[-300:])

        cases = []
        for signo in (signal.SIGINT, signal.SIGTERM):
            cases += [("checking the archive", 0.02, signo), ("stopping the app", 0.3, signo),
                      ("stopping the app", 1.5, signo), ("app stopped", 0, signo),
                      ("connected to the database", 0, signo)]
        # fixed offsets, and around the commit (the end of the restore step)
        offsets = sorted({0, 10, 20, 50, 100, 200, 500} | {max(0, round(took * 1000) + d) for d in (-30, -15, -5, 0, 5, 15)})
        for ms in offsets:
            cases.append(("restoring the database", ms / 1000, signal.SIGINT))
        for ms in (0, 50, max(0, round(took * 1000) - 5), round(took * 1000) + 5):
            cases.append(("restoring the database", ms / 1000, signal.SIGTERM))
        outcomes = {"interrupted": 0, "completed": 0}
        for marker, delay, signo in cases:
            reset()
            if replicas() != "1":  # a failed case must not hide the next ones
                subprocess.run(["kubectl", "-n", "mendix", "patch", "mendixapp", "demo-copy", "--type", "merge",
                                "-p", '{"spec":{"replicas":1}}'], capture_output=True, env=run_env)
            running_pod()
            name = signal.Signals(signo).name
            what = f"{name} {int(delay * 1000)} ms after '{marker}'"
            code, err, out, seen = interrupt(source, marker, delay, signo)
            now = fingerprint()
            if not seen:
                checks.check(f"{what}: the restore reached that step", False, err[-300:])
                continue
            if code == 128 + signo:
                outcomes["interrupted"] += 1
                checks.check(f"{what}: exit {code}, database untouched", now == before, err[-400:])
                checks.check(f"{what}: ... no success line", out == "", out)
                checks.check(f"{what}: ... one error line naming the signal",
                             f"error: interrupted by {name}\n" in err, err[-300:])
            elif code == 0 and marker != "restoring the database":
                checks.check(f"{what}: exit {128 + signo} (a signal before the restore step was lost)", False,
                             err[-400:])
            elif code == 0:
                outcomes["completed"] += 1
                checks.check(f"{what}: exit 0, database restored", now == after, err[-400:])
                checks.check(f"{what}: ... success line", out.startswith("restored "), out)
                if "too late" in err:
                    print(f"# {what}: came too late, said so", flush=True)
            else:
                checks.check(f"{what}: exit 0 or {128 + signo}", False, f"exit {code}: {err[-400:]}")
            checks.check(f"{what}: the app runs again", replicas() == "1", err[-300:])
        print(f"# outcomes: {outcomes}", flush=True)
        checks.check("both outcomes were seen (some signals came too late)",
                     outcomes["interrupted"] > 0 and outcomes["completed"] > 0, str(outcomes))
    subprocess.run([os.path.join(src, "tests/stack/seed"), "--env-file", os.environ["MXPC_STACK_ENV"]],
                   capture_output=True)
    checks.finish()


main()
