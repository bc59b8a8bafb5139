#!/usr/bin/env python3
"""The malformed-archive corpus: generates broken backup archives (with Python's
tarfile and gzip, never with our writer) and checks that `verify` rejects each
one with exit code 1 and its own specific message, and writes nothing: the
working directory and TMPDIR stay empty and the corpus files unchanged.

usage: corpus.py PROGRAM SOURCE_DIR [--keep DIR]   (--keep: write the corpus to DIR and stop)
"""
import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib

UUID1 = "0d3e301f-5551-46f8-ad44-8de2be084c95"
UUID2 = "1fbdf930-67f9-47ee-b30e-e84c4c983e85"
METADATA = json.dumps({"duration": "0", "dumpSize": "2387", "modelVersion": "1.0.0.40",
                       "databaseSize": "9730584", "filesSize": "5"}).encode()


def member(name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = 1700000000
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, (data if kind == tarfile.REGTYPE else None)


def tar_bytes(members, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def gz(data, level=6):
    return gzip.compress(data, compresslevel=level, mtime=0)


def good_members(dump):
    return [member(".metadata", METADATA), member("db/db.backup", dump),
            member(f"tree/0d/3e/{UUID1}", b"hello")]


def without_end_marker(tar):
    """The tar with its end-of-archive zero blocks (and record padding) cut off."""
    end = len(tar)
    while end >= 512 and tar[end - 512:end] == bytes(512):
        end -= 512
    return tar[:end]


def pgdmp_header(fmt=1, minor=14):
    """A custom-format dump header by pg_dump's layout, for format variants."""
    def i(v):
        return bytes([1 if v < 0 else 0]) + struct.pack("<I", abs(v))

    def s(text):
        return i(len(text)) + text.encode()
    head = b"PGDMP" + bytes([1, minor, 0, 4, 8, fmt])
    head += bytes([1]) if minor >= 15 else i(-1)
    for v in (0, 0, 12, 1, 0, 124, 0):
        head += i(v)
    return head + s("app") + s("15.4") + s("15.4") + i(0)


def corpus(dump):
    """(file name, bytes, expected message fragment) for every broken archive."""
    good = good_members(dump)
    good_tar = tar_bytes(good)
    good_gz = gz(good_tar)
    # stored (level 0) deflate blocks: a flipped byte changes file data only,
    # so the gzip CRC is what notices it
    stored = gz(tar_bytes(good + [member(f"tree/1f/bd/{UUID2}", bytes(range(256)) * 400)]), level=0)
    flipped = bytearray(stored)
    flipped[len(stored) - 20000] ^= 0x55
    bad_isize = bytearray(good_gz)
    bad_isize[-1] ^= 0x01
    bad_block = bytearray(good_gz)
    bad_block[10] = 0xFF  # first deflate byte: block type 3 does not exist
    damaged_header = bytearray(good_tar)
    third = tarfile.open(fileobj=io.BytesIO(good_tar)).getmembers()[2].offset
    damaged_header[third + 148: third + 156] = b"0000000\0"  # the header's checksum field
    cut_tar = good_tar[:512 + 512 + 1000]  # inside db/db.backup's data

    cases = [
        ("absolute.tar.gz", good + [member("/etc/passwd", b"x")], 'entry "/etc/passwd": absolute path'),
        ("dotdot.tar.gz", good + [member("tree/../etc/passwd", b"x")],
         'entry "tree/../etc/passwd": path escapes the archive'),
        ("symlink.tar.gz", good + [member(f"tree/1f/bd/{UUID2}", kind=tarfile.SYMTYPE, link="/etc/shadow")],
         f'entry "tree/1f/bd/{UUID2}": symbolic link (to "/etc/shadow"): links are not allowed'),
        ("hardlink.tar.gz", good + [member(f"tree/1f/bd/{UUID2}", kind=tarfile.LNKTYPE, link="db/db.backup")],
         f'entry "tree/1f/bd/{UUID2}": hard link (to "db/db.backup"): links are not allowed'),
        ("device.tar.gz", good + [member("tree/null", kind=tarfile.CHRTYPE)], 'entry "tree/null": device file'),
        ("fifo.tar.gz", good + [member("tree/pipe", kind=tarfile.FIFOTYPE)], 'entry "tree/pipe": FIFO'),
        ("duplicate.tar.gz", good + [member(".metadata", METADATA)], 'entry ".metadata": duplicate entry'),
        ("duplicate-uuid.tar.gz", good + [member(f"tree/{UUID1}", b"other")],
         f'entry "tree/{UUID1}": duplicate file: UUID {UUID1} is also stored as "tree/0d/3e/{UUID1}"'),
        ("outside.tar.gz", good + [member("etc/passwd", b"x")],
         'entry "etc/passwd": not part of the backup archive layout'),
        ("outside-dir.tar.gz", good + [member("tree/0d/3e/sub", kind=tarfile.DIRTYPE)],
         'entry "tree/0d/3e/sub/": not part of the backup archive layout'),
        ("control-chars.tar.gz", good + [member("tree/\x1b[31mred", b"x")],
         'entry "tree/\\x1b[31mred": not part of the backup archive layout'),
        ("not-uuid.tar.gz", good + [member("tree/ab/cd/not-a-uuid", b"x")],
         'entry "tree/ab/cd/not-a-uuid": file name is not a UUID'),
        ("wrong-dirs.tar.gz", good + [member(f"tree/00/00/{UUID2}", b"x")],
         f'entry "tree/00/00/{UUID2}": directories do not match the UUID (expected tree/1f/bd/{UUID2})'),
        ("big-metadata.tar.gz", [member(".metadata", b" " * 100000)] + good[1:],
         'entry ".metadata": metadata too large (100000 bytes, at most 65536)'),
        ("metadata-not-json.tar.gz", [member(".metadata", b"dumpSize=5")] + good[1:],
         'entry ".metadata": not valid JSON'),
        ("metadata-number.tar.gz", [member(".metadata", b'{"dumpSize": 2387}')] + good[1:],
         'entry ".metadata": value of "dumpSize" must be a string, got number'),
        ("no-dump.tar.gz", [good[0], good[2]],
         "no database dump (db/db.backup): a files-only archive cannot be restored"),
        ("sql-dump.tar.gz", [good[0], member("db/db.backup", b"CREATE TABLE t (id int);\n")],
         'entry "db/db.backup": not a PostgreSQL custom-format dump'),
        ("tar-format-dump.tar.gz", [good[0], member("db/db.backup", pgdmp_header(fmt=3))],
         'entry "db/db.backup": a tar-format dump'),
        ("damaged-dump.tar.gz", [good[0], member("db/db.backup", dump[:300])],
         'entry "db/db.backup": pg_restore -l cannot read the dump'),
        ("truncated-gzip.tar.gz", good_gz[:len(good_gz) // 2], "truncated gzip data"),
        ("bad-block.tar.gz", bytes(bad_block), "corrupt gzip data (invalid block type)"),
        ("bad-crc.tar.gz", bytes(flipped), "corrupt gzip data (incorrect data check)"),
        ("bad-length.tar.gz", bytes(bad_isize), "corrupt gzip data (incorrect length check)"),
        ("trailing-garbage.tar.gz", good_gz + b"garbage", "data after the end of the gzip stream"),
        ("truncated-tar.tar.gz", gz(cut_tar), 'entry "db/db.backup": truncated'),
        ("no-end-marker.tar.gz", gz(without_end_marker(good_tar)),
         f'after entry "tree/0d/3e/{UUID1}": the tar data ends without an end-of-archive marker'),
        ("damaged-tar-header.tar.gz", gz(bytes(damaged_header)), f'after entry "db/db.backup": damaged tar archive'),
        ("not-tar.tar.gz", gz(b"just some text\n" * 100), "not a tar archive"),
        ("not-archive.tar.gz", b"just some text\n", "not a backup archive"),
        ("empty.tar.gz", b"", "empty file, not a backup archive"),
        ("truncated.backup", dump[:len(dump) // 2], "database-only backup: pg_restore -l cannot read the dump"),
        ("damaged-header.backup", b"PGDMP\x01\x0e\x00\x63", "damaged dump header"),
    ]
    out = []
    for name, content, expect in cases:
        data = gz(tar_bytes(content)) if isinstance(content, list) else content
        out.append((name, data, expect))
    return out


def snapshot(dirs):
    state = {}
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in files:
                p = os.path.join(root, f)
                with open(p, "rb") as fh:
                    state[p] = hashlib.sha256(fh.read()).hexdigest()
    return state


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    program, src = os.path.abspath(args[0]), args[1]
    with open(os.path.join(src, "tests/archive/fixtures/sample.backup"), "rb") as f:
        dump = f.read()
    cases = corpus(dump)
    if "--keep" in args:
        out = args[args.index("--keep") + 1]
        os.makedirs(out, exist_ok=True)
        for name, data, _ in cases:
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)
        print(f"wrote {len(cases)} archives to {out}")
        return

    failed = 0
    with tempfile.TemporaryDirectory() as top:
        cdir, cwd, tmp = (os.path.join(top, d) for d in ("corpus", "cwd", "tmp"))
        for d in (cdir, cwd, tmp):
            os.mkdir(d)
        for name, data, _ in cases:
            with open(os.path.join(cdir, name), "wb") as f:
                f.write(data)
        before = snapshot([cdir])
        env = dict(os.environ, TMPDIR=tmp)
        for name, _, expect in cases:
            path = os.path.join(cdir, name)
            r = subprocess.run([program, "verify", path], capture_output=True, text=True, cwd=cwd, env=env,
                               timeout=120)
            problems = []
            if r.returncode != 1:
                problems.append(f"exit code {r.returncode}, expected 1")
            first = r.stderr.splitlines()[0] if r.stderr else ""
            if not first.startswith(f"error: {path}: ") or expect not in first:
                problems.append(f"expected an error line containing {expect!r}, got:\n    {r.stderr.strip()}")
            if r.stdout:
                problems.append(f"unexpected stdout: {r.stdout!r}")
            rj = subprocess.run([program, "verify", "--json", path], capture_output=True, text=True, cwd=cwd, env=env,
                                timeout=120)
            try:
                doc = json.loads(rj.stdout)
                if rj.returncode != 1 or doc.get("ok") is not False or expect not in doc["error"]["message"]:
                    problems.append(f"--json: exit {rj.returncode}, output {rj.stdout!r}")
            except (ValueError, KeyError) as e:
                problems.append(f"--json: not the expected JSON ({e}): {rj.stdout!r}")
            if problems:
                failed += 1
                print(f"FAIL {name}\n  " + "\n  ".join(problems))
            else:
                print(f"ok   {name}: {first}")
        leftovers = os.listdir(cwd) + os.listdir(tmp)
        if leftovers or snapshot([cdir]) != before:
            failed += 1
            print(f"FAIL something was written: {leftovers or 'the corpus changed'}")
    print(f"{len(cases)} malformed archives, {failed} failures")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
