#!/usr/bin/env python3
"""Interoperability of the backup archive with GNU tar and Python's tarfile.

1. An archive written by us is listed by `tar -tzf` and by tarfile as exactly the
   documented layout (.metadata, db/db.backup, tree/xx/yy/<uuid>, in that order,
   regular files only), passes `gzip -t`, has mode 0600, and extracts to the
   same bytes.
2. Mendix-style archives built with GNU tar (not with our writer) - nested and
   flat tree/, no tree/, "./" names, several tar formats - are read by our
   reader byte for byte and accepted by `verify`.
3. Archives from Python's tarfile, concatenated gzip members and zero padding
   after the gzip stream are read too; an uncompressed tar is read but judged
   not Mendix Cloud compatible.

usage: interop.py PROGRAM SOURCE_DIR
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib

UUIDS = ["0d3e301f-5551-46f8-ad44-8de2be084c95", "1fbdf930-67f9-47ee-b30e-e84c4c983e85",
         "2a2b3c4d-0000-4000-8000-00000000000a"]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def sha(data):
    return hashlib.sha256(data).hexdigest()


def run(*argv, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=300, **kw)


def nested(u):
    return f"tree/{u[0:2]}/{u[2:4]}/{u}"


def main():
    program, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    here = os.path.join(src, "tests/archive")
    dump_path = os.path.join(here, "fixtures/sample.backup")
    with open(dump_path, "rb") as f:
        dump = f.read()
    contents = {UUIDS[0]: b"", UUIDS[1]: b"x", UUIDS[2]: os.urandom(300000)}

    with tempfile.TemporaryDirectory() as tmp:
        # --- 1. our writer, read by others ---------------------------------------
        def write_files(files):
            """Writes each file under tmp; returns write_sample.lua's UUID=PATH arguments."""
            args = []
            for u, data in files.items():
                p = os.path.join(tmp, u)
                with open(p, "wb") as f:
                    f.write(data)
                args.append(f"{u}={p}")
            return args

        paths = write_files(contents)
        ours = os.path.join(tmp, "ours.tar.gz")
        r = run(program, "run", os.path.join(here, "write_sample.lua"), ours, dump_path, *paths)
        check(r.returncode == 0, f"our writer wrote an archive ({r.stderr.strip()})")
        layout = [".metadata", "db/db.backup"] + [nested(u) for u in contents]
        r = run("tar", "-tzf", ours)
        check(r.returncode == 0 and r.stdout.splitlines() == layout and r.stderr == "",
              f"GNU tar -tzf lists exactly the documented layout: {r.stdout.splitlines()} {r.stderr}")
        with tarfile.open(ours, "r:gz") as t:
            members = t.getmembers()
            check([m.name for m in members] == layout, "tarfile lists exactly the documented layout")
            check(all(m.isreg() for m in members), "tarfile: every entry is a regular file")
            meta = json.loads(t.extractfile(".metadata").read())
            check(list(meta) == ["duration", "dumpSize", "modelVersion", "databaseSize", "filesSize"] and
                  all(isinstance(v, str) for v in meta.values()) and meta["dumpSize"] == str(len(dump)) and
                  meta["filesSize"] == str(sum(map(len, contents.values()))),
                  f".metadata has the documented keys in order, all strings: {meta}")
            check(t.extractfile("db/db.backup").read() == dump, "tarfile: db/db.backup is the dump, byte for byte")
            check(all(t.extractfile(nested(u)).read() == d for u, d in contents.items()),
                  "tarfile: every file (0 B, 1 B, 300 kB) is identical")
        check(run("gzip", "-t", ours).returncode == 0, "gzip -t accepts the archive (no padding after the stream)")
        check(os.stat(ours).st_mode & 0o777 == 0o600, "the archive has mode 0600")
        x = os.path.join(tmp, "x")
        os.mkdir(x)
        r = run("tar", "-xzf", ours, "-C", x)
        check(r.returncode == 0 and all(open(os.path.join(x, nested(u)), "rb").read() == d
                                        for u, d in contents.items()),
              "GNU tar extracts the same bytes")

        # --- 1b. compressed on several threads, mixed data -----------------------------
        # Text (compressible), random bytes (incompressible: stored blocks), many
        # small files and the dump, on more threads than this machine has cores.
        words = b"customer order Rotterdam paid shipped draft 12.50\n"
        mixed = {f"3c4d5e6f-0000-4000-8000-{i:012x}": os.urandom(1024) if i % 2 else words * (i % 40)
                 for i in range(300)}
        mixed["4d5e6f70-0000-4000-8000-000000000001"] = words * 40000           # 2 MB of text
        mixed["4d5e6f70-0000-4000-8000-000000000002"] = os.urandom(3 << 20)     # 3 MiB random
        mixed["4d5e6f70-0000-4000-8000-000000000003"] = words * 3000 + os.urandom(500000) + words * 3000
        mpaths = write_files(mixed)
        outs = {}
        for threads in (1, 4):
            outs[threads] = os.path.join(tmp, f"mixed{threads}.tar.gz")
            r = run(program, "run", os.path.join(here, "write_sample.lua"), outs[threads], dump_path,
                    f"--threads={threads}", *mpaths)
            check(r.returncode == 0, f"our writer wrote a mixed archive on {threads} threads ({r.stderr.strip()})")
        stats = json.loads(r.stdout)
        m4 = outs[4]
        check(stats["threads"] == 4 and 0 < stats["stored_blocks"] < stats["blocks"],
              f"4 threads; some blocks stored (incompressible), some compressed: {stats}")
        with open(outs[1], "rb") as f1, open(m4, "rb") as f4:
            check(f1.read() == f4.read(), "1 and 4 threads write the same bytes")
        mlayout = [".metadata", "db/db.backup"] + [nested(u) for u in mixed]
        r = run("tar", "-tzf", m4)
        check(r.returncode == 0 and r.stdout.splitlines() == mlayout and r.stderr == "",
              f"GNU tar -tzf lists the mixed archive ({len(r.stdout.splitlines())} entries) {r.stderr}")
        check(run("gzip", "-t", m4).returncode == 0, "gzip -t accepts the mixed archive")
        with open(m4, "rb") as f:
            raw = f.read()
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        whole_tar = d.decompress(raw)
        check(d.eof and d.unused_data == b"", "the mixed archive is one gzip member, nothing after it")
        with tarfile.open(m4, "r:gz") as t:
            check(all(t.extractfile(nested(u)).read() == data for u, data in mixed.items()) and
                  t.extractfile("db/db.backup").read() == dump,
                  "tarfile: every file of the mixed archive is identical")
        x = os.path.join(tmp, "xm")
        os.mkdir(x)
        r = run("tar", "-xzf", m4, "-C", x)
        check(r.returncode == 0 and all(open(os.path.join(x, nested(u)), "rb").read() == data
                                        for u, data in mixed.items()),
              "GNU tar extracts the mixed archive's bytes")
        r = run(program, "verify", m4)
        check(r.returncode == 0, f"verify reads the mixed archive ({r.stderr.strip()})")
        ratio = len(raw) / len(zlib.compress(whole_tar, 6))
        check(ratio < 1.01, f"the mixed archive is within 1 % of one zlib -6 stream of the same tar ({ratio:.4f})")

        # --- 2. GNU tar archives, read by us -----------------------------------------
        def mendix_dir(name, flat=False, files=True, metadata=True):
            d = os.path.join(tmp, name)
            os.makedirs(os.path.join(d, "db"))
            if metadata:
                with open(os.path.join(d, ".metadata"), "w") as f:
                    json.dump({"duration": "0", "dumpSize": str(len(dump)), "modelVersion": "1.0.0.40",
                               "databaseSize": "9730584", "filesSize": "300001"}, f)
            shutil.copy(dump_path, os.path.join(d, "db/db.backup"))
            if files:
                for u, data in contents.items():
                    p = os.path.join(d, f"tree/{u}" if flat else nested(u))
                    os.makedirs(os.path.dirname(p), exist_ok=True)
                    with open(p, "wb") as f:
                        f.write(data)
            return d

        variants = [
            ("nested", mendix_dir("nested"), ["--format=gnu"], ".metadata db tree", "nested"),
            ("flat", mendix_dir("flat", flat=True), ["--format=gnu"], ".metadata db tree", "flat"),
            ("no tree/", mendix_dir("notree", files=False), [], ".metadata db", "none"),
            ("posix format", mendix_dir("posix"), ["--format=posix"], ".metadata db tree", "nested"),
            ("ustar format", mendix_dir("ustar"), ["--format=ustar"], ".metadata db tree", "nested"),
            ("./ names", mendix_dir("dot"), [], ".", "nested"),
        ]
        for label, d, fmt, what, expect_layout in variants:
            a = os.path.join(tmp, label.replace(" ", "_").replace("/", "") + ".tar.gz")
            r = run("tar", *fmt, "-czf", a, "-C", d, *what.split())
            check(r.returncode == 0, f"GNU tar built the {label} archive")
            r = run(program, "verify", "--json", a)
            doc = json.loads(r.stdout) if r.stdout.startswith("{") else {}
            nfiles = 0 if expect_layout == "none" else 3
            check(r.returncode == 0 and doc.get("ok") is True and doc["files"] == nfiles and
                  doc["layout"] == expect_layout and doc["dump"]["size"] == len(dump) and
                  doc["metadata"]["modelVersion"] == "1.0.0.40" and doc["compatibility"]["mendix_cloud"],
                  f"verify reads the GNU tar {label} archive ({r.stderr.strip() or doc.get('layout')})")
            r = run(program, "run", os.path.join(here, "entries.lua"), a)
            got = {}
            for line in r.stdout.splitlines():
                e = json.loads(line)
                if e["type"] == "file":
                    got[e["name"].removeprefix("./")] = e["sha256"]
            want = {"db/db.backup": sha(dump)}
            if expect_layout != "none":
                want.update({(f"tree/{u}" if expect_layout == "flat" else nested(u)): sha(data)
                             for u, data in contents.items()})
            got.pop(".metadata", None)
            check(r.returncode == 0 and got == want, f"our reader returns every {label} file byte for byte")

        # --- 3. other producers ---------------------------------------------------------
        def tar_of(names, fmt=tarfile.PAX_FORMAT):
            buf = io.BytesIO()
            d = os.path.join(tmp, "nested")
            with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
                for n in names:
                    t.add(os.path.join(d, n), arcname=n, recursive=False)
            return buf.getvalue()

        names = [".metadata", "db/db.backup"] + [nested(u) for u in contents]
        whole = tar_of(names)
        cases = [
            ("python tarfile (pax)", gzip.compress(whole)),
            ("python tarfile (gnu)", gzip.compress(tar_of(names, tarfile.GNU_FORMAT))),
            ("two gzip members", gzip.compress(whole[:20480]) + gzip.compress(whole[20480:])),
            ("zero padding after gzip", gzip.compress(whole) + bytes(10240)),
        ]
        for label, data in cases:
            a = os.path.join(tmp, label.replace(" ", "_") + ".tar.gz")
            with open(a, "wb") as f:
                f.write(data)
            r = run(program, "verify", "--json", a)
            doc = json.loads(r.stdout) if r.stdout.startswith("{") else {}
            check(r.returncode == 0 and doc.get("files") == 3, f"verify reads {label} ({r.stderr.strip()})")
        a = os.path.join(tmp, "plain.tar")
        with open(a, "wb") as f:
            f.write(whole)
        r = run(program, "verify", "--json", a)
        doc = json.loads(r.stdout) if r.stdout.startswith("{") else {}
        check(r.returncode == 0 and doc.get("compression") == "none" and
              doc["compatibility"]["mendix_cloud"] is False,
              "an uncompressed tar restores with this tool but is not Mendix Cloud compatible")

    print(f"{len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
