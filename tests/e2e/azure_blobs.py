#!/usr/bin/env python3
"""What a container of the local stack's Azurite holds, committed and not, for
tests that interrupt uploads (tests/e2e/azure_signals.sh). Talks to Azurite
directly (MXPC_AZURE_BLOB_ENDPOINT, the account key), never through a proxy.

  azure_blobs.py state CONTAINER [PREFIX]
      one line a blob, sorted: NAME COMMITTED UNCOMMITTED, where COMMITTED is
      the md5 of its committed bytes or "-" (none: only uncommitted blocks,
      invisible to readers) and UNCOMMITTED how many uncommitted blocks it has
      (with AZURE_BLOBS_CACHE=FILE, a blob is read again only if its ETag changed)
  azure_blobs.py check BEFORE AFTER EXPECTED ERRFILE
      the states BEFORE and AFTER a run (files of `state` lines) against
      EXPECTED (the state of the files the run wrote, complete): every
      committed blob is as it was before or as expected, in full (no blob
      half-written); no blob has only uncommitted blocks unless it had
      before; a blob that has uncommitted blocks it did not have before is
      named by the run (ERRFILE, its stderr) as keeping them until Azure
      discards them after 7 days. Prints what is wrong; exit 1 if anything.
  azure_blobs.py put CONTAINER NAME FILE | delete CONTAINER NAME
      Put Blob (which discards the blob's uncommitted blocks) / Delete Blob

Needs the stack's env.sh in the environment (MXPC_AZURE_*).
"""
import hashlib
import json
import os
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "stack"))
from stacklib import AzureBlob, AzureError  # noqa: E402


def client():
    return AzureBlob(os.environ["MXPC_AZURE_BLOB_ENDPOINT"], os.environ["MXPC_AZURE_ACCOUNT_NAME"],
                     os.environ["MXPC_AZURE_ACCOUNT_KEY"], os.environ["MXPC_AZURE_CA"])


def state(az, container, prefix="", cache=None):
    """cache: a dict {"name etag": md5} kept between calls (a file: see main)."""
    cache = {} if cache is None else cache
    names, etags, marker = set(), {}, ""
    while True:
        q = [("restype", "container"), ("comp", "list"), ("include", "uncommittedblobs"), ("prefix", prefix)]
        if marker:
            q.append(("marker", marker))
        root = ET.fromstring(az.request("GET", container, query=q)[1])
        for b in root.iter("Blob"):
            names.add(b.findtext("Name"))
            etags[b.findtext("Name")] = b.findtext("Properties/Etag") or ""
        marker = root.findtext("NextMarker") or ""
        if not marker:
            break
    out = []
    for name in sorted(names):
        try:
            blocks = ET.fromstring(az.request("GET", container, name,
                                              query=[("comp", "blocklist"), ("blocklisttype", "all")])[1])
            section = blocks.find("UncommittedBlocks")
            uncommitted = len(section.findall("Block")) if section is not None else 0
        except AzureError:  # a blob of one Put Blob: no block list (Azurite answers so)
            uncommitted = 0
        key = f"{container}/{name} {etags.get(name)}"
        if key not in cache:
            try:
                cache[key] = hashlib.md5(az.get(container, name)).hexdigest()
            except AzureError as e:
                if e.status != 404:
                    raise
                cache[key] = "-"
        committed = cache[key]
        out.append(f"{name} {committed} {uncommitted}")
    return out


def read_state(path):
    with open(path, encoding="utf-8") as f:
        return {n: (c, int(u)) for n, c, u in (line.split() for line in f if line.strip())}


def check(before_path, after_path, expected_path, err_path):
    before, after, expected = read_state(before_path), read_state(after_path), read_state(expected_path)
    with open(err_path, encoding="utf-8", errors="replace") as f:
        err = f.read()
    container = os.environ.get("CONTAINER", "")
    problems = []
    for name, (committed, uncommitted) in sorted(after.items()):
        was = before.get(name, ("-", 0))
        if committed != "-" and committed not in (was[0], expected.get(name, ("?", 0))[0]):
            problems.append(f"{name}: committed bytes neither as before nor the complete file (md5 {committed})")
        if committed == "-" and uncommitted and not (was[0] == "-" and was[1]):
            problems.append(f"{name}: {uncommitted} uncommitted blocks and no blob (nothing discarded them)")
        if uncommitted > was[1]:
            said = (f"azblob://{container}/{name}: the blocks of the failed upload stay uncommitted beside the "
                    f"existing blob; Azure discards them after 7 days")
            if said not in err:
                problems.append(f"{name}: {uncommitted} uncommitted blocks left, and the run did not say so "
                                f"(no line: {said})")
    for name in sorted(set(before) - set(after)):
        if before[name][0] != "-":
            problems.append(f"{name}: the blob is gone")
    for p in problems:
        print(p)
    return 1 if problems else 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "state":
        # the md5 of a blob is asked again only when its ETag changed (AZURE_BLOBS_CACHE: a JSON file)
        path = os.environ.get("AZURE_BLOBS_CACHE")
        cache = {}
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                cache = json.load(f)
        print("\n".join(state(client(), *args, cache=cache)))
        if path:
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(cache, f)
            os.replace(path + ".tmp", path)
    elif cmd == "check":
        sys.exit(check(*args))
    elif cmd == "put":
        with open(args[2], "rb") as f:
            client().put(args[0], args[1], f.read())
    elif cmd == "delete":
        client().delete(args[0], args[1])
    else:
        sys.exit(f"azure_blobs.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
