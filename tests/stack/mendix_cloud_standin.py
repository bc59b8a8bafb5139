#!/usr/bin/env python3
"""A stand-in for Mendix Cloud's Deploy API v1 and Backups API v2 (docs/mendix-cloud.md).

It answers the documented requests with the documented JSON and error codes:

  GET  /api/1/apps                                   apps (AppId, ProjectId, Name, Url)
  GET  /api/1/apps/APPID                             one app (404 APP_NOT_FOUND)
  GET  /api/1/apps/APPID/environments[/MODE]         environments (EnvironmentId, Mode, ...)
  GET  /api/v2/apps/PROJECT/environments/ENV/snapshots[?offset=&limit=]
  POST /api/v2/apps/PROJECT/environments/ENV/snapshots            {"comment": ...}
  GET  /api/v2/apps/PROJECT/environments/ENV/snapshots/SNAPSHOT
  POST /api/v2/apps/PROJECT/environments/ENV/snapshots/SNAPSHOT/archives?data_type=
  GET  /api/v2/apps/PROJECT/environments/ENV/snapshots/SNAPSHOT/archives/ARCHIVE

Every request must carry Mendix-Username and Mendix-ApiKey of a known user (else 401
UNAUTHORIZED: the documentation names no code for that, see docs/mendix-cloud.md).
Errors are {"errorCode": ..., "errorMessage": ...}. Snapshots and archive jobs move
queued -> running -> completed (or failed) as time passes. A completed archive's `url`
is a presigned GET of an object in the stack's RGW (the archive is uploaded there when
its job completes), or, without S3 (the Lua tests' own instance), a link to
/_download/ID on this server, checked the same way (expiry, signature).

State: DIR/cloud.json (apps, environments with their snapshots, users), read at start.
Test knobs, only through /_admin/ with the token in DIR/admin-token:
  POST /_admin/environment/ENV  {"busy", "maintenance", "not_supported", "unavailable",
                                 "listing_fails", "fail_jobs", "never_finish",
                                 "local_downloads": bool, "queued_seconds", "running_seconds",
                                 "url_seconds", "download_rate", "drop_at": number}
(/_download/ answers Range requests with 206 and Content-Range, sends an ETag, honours
If-Match with 412, and, with download_rate / drop_at, is slow or cuts an answer off.)
  POST /_admin/snapshot/ENV     a snapshot to add ({"archive": PATH, "db_archive": PATH, ...}; a
                                new snapshot holds what the newest one holds)
  POST /_admin/reset            back to cloud.json
  GET  /_admin/requests         the requests seen: method, path, header names

    mendix_cloud_standin.py init DIR --source SRC      (then DIR/s3.json to serve from RGW)
    mendix_cloud_standin.py serve DIR --port P         (0: any free port, written to DIR/port)

Only the Python standard library (and stacklib.py beside it) is used.
"""

import copy
import datetime
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stacklib  # noqa: E402

USERNAME = "migration@example.com"
NO_BACKUPS_USER = "developer@example.com"   # API rights, but no Access to Backups
PROJECT = "6b5c3f18-54f1-4c3e-9d2a-5f0c1e7a9b21"
APP_ID = "demo-shop"
ENVS = [("Production", "0c1f7a5e-3f2b-4d8e-9a61-2b7d4e5c6f70", True),
        ("Acceptance", "b9e2d8c4-6a1f-4b3e-8d7c-1e4f5a6b7c8d", False)]
EIGHT_HOURS = 8 * 3600   # "This link is valid for eight hours after completion."


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + f"{int(t * 1000) % 1000:03d}Z"


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def sample_archives(directory, source):
    """Two archives made with Python's tarfile from the corpus generator's good
    layout: a full one and a database-only one (the fixture dump)."""
    sys.path.insert(0, os.path.join(source, "tests", "archive"))
    import corpus   # noqa: E402
    with open(os.path.join(source, "tests", "archive", "fixtures", "sample.backup"), "rb") as f:
        dump = f.read()
    full = os.path.join(directory, "sample.tar.gz")
    with open(full, "wb") as f:
        f.write(corpus.gz(corpus.tar_bytes(corpus.good_members(dump))))
    db = os.path.join(directory, "sample.backup")
    with open(db, "wb") as f:
        f.write(dump)
    return full, db


def init(directory, source):
    """Writes DIR/cloud.json and DIR/admin-token; prints NAME=VALUE lines for env.sh
    (the users' API keys, the ids)."""
    os.makedirs(os.path.join(directory, "archives"), exist_ok=True)
    full, db = sample_archives(os.path.join(directory, "archives"), source)
    keys = {USERNAME: str(uuid.uuid4()), NO_BACKUPS_USER: str(uuid.uuid4())}
    now = time.time()
    environments = []
    for mode, env_id, production in ENVS:
        snapshots = []
        for days, comment in ((2, "Automatically created nightly snapshot"), (1, "Before the release"),
                              (0, "Automatically created nightly snapshot")):
            created = now - days * 86400 - 3600
            snapshots.append({"snapshot_id": str(uuid.uuid4()), "model_version": "1.0.0.40",
                              "comment": comment, "state": "completed",
                              "status_message": "Completed backup creation",
                              "created_at": iso(created), "finished_at": iso(created + 90),
                              "updated_at": iso(created + 90), "expires_at": iso(created + 14 * 86400),
                              "archive": full, "db_archive": db})
        environments.append({"EnvironmentId": env_id, "Mode": mode, "Status": "Running",
                             "Url": f"https://{APP_ID}{'' if production else '-accp'}.mendixcloud.com",
                             "ModelVersion": "1.0.0.40", "MendixVersion": "10.6.1",
                             "Production": production, "backups_users": [USERNAME],
                             "snapshots": snapshots, "archive": full, "db_archive": db})
    doc = {"users": keys, "apps": [{"AppId": APP_ID, "ProjectId": PROJECT, "Name": "Demo Shop",
                                    "Url": f"https://{APP_ID}.mendixcloud.com",
                                    "environments": environments}]}
    stacklib_write(os.path.join(directory, "cloud.json"), doc)
    stacklib_write(os.path.join(directory, "admin-token"), secrets.token_hex(16), raw=True)
    print(f"MXPC_MENDIX_CLOUD_DIR={directory}")
    print(f"MXPC_MENDIX_USERNAME={USERNAME}")
    print(f"MXPC_MENDIX_API_KEY={keys[USERNAME]}")
    print(f"MXPC_MENDIX_NO_BACKUPS_USER={NO_BACKUPS_USER}")
    print(f"MXPC_MENDIX_NO_BACKUPS_API_KEY={keys[NO_BACKUPS_USER]}")
    print(f"MXPC_MENDIX_PROJECT_ID={PROJECT}")
    print(f"MXPC_MENDIX_APP_ID={APP_ID}")
    for mode, env_id, _ in ENVS:
        print(f"MXPC_MENDIX_{mode.upper()}_ID={env_id}")


def stacklib_write(path, doc, raw=False):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(doc if raw else json.dumps(doc, indent=1))
    os.replace(tmp, path)


SNAPSHOT_FIELDS = ("snapshot_id", "model_version", "comment", "expires_at", "state", "status_message",
                   "created_at", "finished_at", "updated_at")
ARCHIVE_FIELDS = ("archive_id", "status_message", "finished_at", "updated_at", "snapshot_id", "data_type",
                  "created_at", "state", "url")
KNOB_DEFAULTS = {"busy": False, "maintenance": False, "not_supported": False, "unavailable": False,
                 "listing_fails": False, "fail_jobs": False, "never_finish": False,
                 "queued_seconds": 0.3, "running_seconds": 0.6, "url_seconds": EIGHT_HOURS,
                 # downloads from this server even with S3 (/_download/), slowed to download_rate
                 # bytes/s (0: not), the first answer that reaches byte drop_at cut off there (-1: none)
                 "local_downloads": False, "download_rate": 0, "drop_at": -1}


class Cloud:
    def __init__(self, directory):
        self.dir = directory
        with open(os.path.join(directory, "cloud.json")) as f:
            self.initial = json.load(f)
        with open(os.path.join(directory, "admin-token")) as f:
            self.admin_token = f.read().strip()
        self.s3conf = None
        s3path = os.path.join(directory, "s3.json")
        if os.path.exists(s3path):
            with open(s3path) as f:
                self.s3conf = json.load(f)
            self.s3 = stacklib.S3(self.s3conf["endpoint"], self.s3conf["access_key"],
                                  self.s3conf["secret_key"], self.s3conf["region"])
            try:
                self.s3.create_bucket(self.s3conf["bucket"])
            except stacklib.S3Error as e:
                if e.status != 409:
                    raise
        self.url_key = secrets.token_bytes(32)
        self.lock = threading.Lock()   # one request at a time: the state is small
        self.reset()

    def reset(self):
        self.doc = copy.deepcopy(self.initial)
        self.knobs = {}
        self.archives = {}   # archive_id -> job
        self.downloads = {}  # archive_id -> local file (no S3)
        self.requests = []

    # -- lookups ----------------------------------------------------------------------

    def user(self, headers):
        name, key = headers.get("Mendix-Username"), headers.get("Mendix-ApiKey")
        known = self.doc["users"].get(name or "")
        if not name or not key or not known or not hmac.compare_digest(known, key):
            raise ApiError(401, "UNAUTHORIZED", "The Mendix-Username and Mendix-ApiKey headers do not "
                           "identify a user with an API key.")
        return name

    def app_by(self, field, value):
        for app in self.doc["apps"]:
            if app[field] == value:
                return app
        return None

    def environment(self, project, env_id, user):
        app = self.app_by("ProjectId", project)
        env = next((e for e in app["environments"] if e["EnvironmentId"] == env_id), None) if app else None
        if env is None:
            raise ApiError(404, "ENVIRONMENT_NOT_FOUND", "Environment not found.")
        knobs = self.knobs_of(env_id)
        if knobs["not_supported"]:
            raise ApiError(400, "NOT_SUPPORTED", "This endpoint can only be used with Mendix Cloud")
        if user not in env["backups_users"]:
            raise ApiError(403, "NO_ACCESS", "The user does not have access to the backups of this environment.")
        if knobs["unavailable"]:
            raise ApiError(500, "SERVICE_UNAVAILABLE",
                           "Operation failed. Please try again later or contact Support if the problem persists.")
        return env, knobs

    def knobs_of(self, env_id):
        k = dict(KNOB_DEFAULTS)
        k.update(self.knobs.get(env_id, {}))
        return k

    # -- jobs move with time ----------------------------------------------------------

    def advance(self, job, knobs, done_message, failed_message):
        """queued -> running -> completed/failed, by the job's age."""
        if job["state"] in ("completed", "failed"):
            return False
        age = time.time() - job["_t0"]
        if age < job["_queued"]:
            return False
        if job["state"] == "queued":
            job["state"], job["status_message"], job["updated_at"] = "running", "Running", iso(time.time())
        if job["_never"] or age < job["_queued"] + job["_running"]:
            return False
        now = iso(time.time())
        if job["_fail"]:
            job.update(state="failed", status_message=failed_message, finished_at=now, updated_at=now)
            return False
        job.update(state="completed", status_message=done_message, finished_at=now, updated_at=now)
        return True

    def new_job(self, knobs):
        return {"_t0": time.time(), "_queued": float(knobs["queued_seconds"]),
                "_running": float(knobs["running_seconds"]), "_fail": knobs["fail_jobs"],
                "_never": knobs["never_finish"], "state": "queued", "status_message": None,
                "created_at": iso(time.time()), "finished_at": None, "updated_at": None}

    def snapshot_view(self, s, knobs):
        self.advance(s, knobs, "Completed backup creation", "Backup creation failed")
        return {k: s.get(k) for k in SNAPSHOT_FIELDS}

    def archive_view(self, job, env, knobs):
        if self.advance(job, knobs, "Done preparing download archive", "Preparing the archive failed"):
            job["url"] = self.publish(job, env)
        return {k: job.get(k) for k in ARCHIVE_FIELDS}

    def publish(self, job, env):
        """The completed archive's download URL, valid for url_seconds."""
        snap = next(s for s in env["snapshots"] if s["snapshot_id"] == job["snapshot_id"])
        path = snap["db_archive"] if job["data_type"] == "database_only" else snap["archive"]
        expires = max(1, int(self.knobs_of(env["EnvironmentId"])["url_seconds"]))
        name = f"{job['archive_id']}.{'backup' if job['data_type'] == 'database_only' else 'tar.gz'}"
        if self.s3conf and not self.knobs_of(env["EnvironmentId"])["local_downloads"]:
            bucket, key = self.s3conf["bucket"], f"{env['EnvironmentId']}/{name}"
            with open(path, "rb") as f:
                self.s3.put(bucket, key, f.read())
            return stacklib.presign_url(self.s3conf["endpoint"], bucket, key, self.s3conf["access_key"],
                                        self.s3conf["secret_key"], self.s3conf["region"], expires)
        self.downloads[job["archive_id"]] = (path, env["EnvironmentId"])
        until = int(time.time()) + expires
        sig = hmac.new(self.url_key, f"{job['archive_id']}:{until}".encode(), hashlib.sha256).hexdigest()
        return f"http://127.0.0.1:{self.port}/_download/{name}?expires={until}&signature={sig}"

    # -- the API ----------------------------------------------------------------------

    def handle(self, method, path, query, headers, body):
        """(status, JSON document or None)."""
        user = self.user(headers)
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "1"] and parts[2:3] == ["apps"] and method == "GET":
            return self.deploy_v1(parts[3:])
        m = re.fullmatch(r"/api/v2/apps/([^/]+)/environments/([^/]+)/snapshots(?:/([^/]+))?"
                         r"(?:/(archives)(?:/([^/]+))?)?", path)
        if not m:
            raise ApiError(404, "NOT_FOUND", "No such endpoint.")
        project, env_id, snap_id, archives, archive_id = m.groups()
        env, knobs = self.environment(project, env_id, user)
        if snap_id is None:
            if method == "GET":
                return 200, self.list_snapshots(env, knobs, query)
            if method == "POST":
                return 201, self.create_snapshot(env, knobs, body)
            raise ApiError(405, "INVALID_PARAMETERS", f"{method} is not supported here")
        snap = next((s for s in env["snapshots"] if s["snapshot_id"] == snap_id), None)
        if snap is None:
            raise ApiError(404, "NOT_FOUND", "Snapshot not found.")
        if archives is None:
            if method == "GET":
                return 200, self.snapshot_view(snap, knobs)
            raise ApiError(405, "INVALID_PARAMETERS", f"{method} is not supported here")
        if archive_id is None and method == "POST":
            data_type = query.get("data_type", ["files_and_database"])[0]
            if data_type not in ("files_and_database", "database_only"):
                raise ApiError(400, "UNSUPPORTED", "Unsupported data_type")
            self.snapshot_view(snap, knobs)
            if snap["state"] != "completed":
                raise ApiError(400, "INVALID_STATE", "The snapshot is not completed.")
            job = self.new_job(knobs)
            job.update(archive_id=str(uuid.uuid4()), snapshot_id=snap_id, data_type=data_type, url=None,
                       _env=env_id)
            self.archives[job["archive_id"]] = job
            return 201, {k: job.get(k) for k in ARCHIVE_FIELDS}
        job = self.archives.get(archive_id or "")
        if method != "GET" or job is None or job["snapshot_id"] != snap_id:
            raise ApiError(404, "NOT_FOUND", "Archive not found.")
        return 200, self.archive_view(job, env, knobs)

    def deploy_v1(self, rest):
        apps = self.doc["apps"]
        if not rest:
            return 200, [{k: a[k] for k in ("Name", "Url", "ProjectId", "AppId")} for a in apps]
        app = self.app_by("AppId", rest[0])
        if app is None:
            raise ApiError(404, "APP_NOT_FOUND", "App not found")
        if len(rest) == 1:
            return 200, {k: app[k] for k in ("AppId", "ProjectId", "Url", "Name")}
        fields = ("Status", "EnvironmentId", "Mode", "Url", "ModelVersion", "MendixVersion", "Production")
        if rest[1:] == ["environments"]:
            return 200, [{k: e[k] for k in fields} for e in app["environments"]]
        if len(rest) == 3 and rest[1] == "environments":
            env = next((e for e in app["environments"] if e["Mode"].lower() == rest[2].lower()), None)
            if env is None:
                raise ApiError(404, "ENVIRONMENT_NOT_FOUND", "Environment not found.")
            return 200, {k: env[k] for k in fields}
        raise ApiError(404, "NOT_FOUND", "No such endpoint.")

    def list_snapshots(self, env, knobs, query):
        if knobs["listing_fails"]:
            raise ApiError(500, "SNAPSHOT_LISTING_FAILED",
                           "An error occurred while listing the backups. Please contact Support.")
        try:
            offset = int(query.get("offset", ["0"])[0])
            limit = int(query.get("limit", ["100"])[0])
        except ValueError:
            raise ApiError(400, "INVALID_PARAMETERS", "offset and limit must be numbers")
        snaps = sorted(env["snapshots"], key=lambda s: s["created_at"], reverse=True)
        return {"limit": limit, "offset": offset, "total": len(snaps),
                "snapshots": [self.snapshot_view(s, knobs) for s in snaps[offset:offset + limit]]}

    def create_snapshot(self, env, knobs, body):
        if knobs["busy"]:
            raise ApiError(400, "ENVIRONMENT_BUSY",
                           "Environment is busy, please try again later or contact Support for assistance.")
        if knobs["maintenance"]:
            raise ApiError(400, "INVALID_STATE", "Failed to create a backup. There is currently a maintenance "
                           "action in progress. Please wait until that is finished.")
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(400, "INVALID_PARAMETERS", "the body is not JSON")
        snap = self.new_job(knobs)
        # the environment's data as it is now: that of its newest snapshot
        newest = max(env["snapshots"], key=lambda x: x["created_at"], default=env)
        snap.update(snapshot_id=str(uuid.uuid4()), model_version=None, comment=doc.get("comment"),
                    expires_at=iso(time.time() + 90 * 86400), archive=newest["archive"],
                    db_archive=newest["db_archive"])
        env["snapshots"].append(snap)
        view = {k: snap.get(k) for k in SNAPSHOT_FIELDS}
        snap["model_version"] = env["ModelVersion"]   # known once it runs
        return view

    def admin(self, method, path, body):
        doc = json.loads(body or b"{}")
        parts = [p for p in path.split("/") if p][1:]
        if parts == ["reset"] and method == "POST":
            self.reset()
            return 200, {}
        if parts == ["requests"] and method == "GET":
            return 200, self.requests
        if len(parts) == 2 and parts[0] == "environment" and method == "POST":
            unknown = set(doc) - set(KNOB_DEFAULTS)
            if unknown:
                return 400, {"error": f"unknown knobs {sorted(unknown)}"}
            self.knobs.setdefault(parts[1], {}).update(doc)
            return 200, self.knobs_of(parts[1])
        if len(parts) == 2 and parts[0] == "snapshot" and method == "POST":
            env = next((e for a in self.doc["apps"] for e in a["environments"]
                        if e["EnvironmentId"] == parts[1]), None)
            if env is None:
                return 404, {"error": "no such environment"}
            t = time.time()
            snap = {"snapshot_id": str(uuid.uuid4()), "model_version": "1.0.0.40", "comment": "",
                    "state": "completed", "status_message": "Completed backup creation", "created_at": iso(t),
                    "finished_at": iso(t), "updated_at": iso(t), "expires_at": iso(t + 14 * 86400),
                    "archive": env["archive"], "db_archive": env["db_archive"]}
            snap.update(doc)
            env["snapshots"].append(snap)
            return 201, {k: snap.get(k) for k in SNAPSHOT_FIELDS}
        return 404, {"error": "no such admin endpoint"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mxpc-stack-mendix-cloud"

    def handle_any(self, method):
        cloud = self.server.cloud
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with cloud.lock:
            cloud.requests.append({"method": method, "path": parts.path, "query": parts.query,
                                   "headers": sorted(self.headers.keys())})
            try:
                if parts.path.startswith("/_admin/"):
                    if not hmac.compare_digest(self.headers.get("X-Admin-Token", ""), cloud.admin_token):
                        status, doc = 403, {"error": "admin token"}
                    else:
                        status, doc = cloud.admin(method, parts.path, body)
                elif parts.path.startswith("/_download/") and method == "GET":
                    return self.download(cloud, parts)
                else:
                    status, doc = cloud.handle(method, parts.path, parse_qs(parts.query),
                                               self.headers, body)
            except ApiError as e:
                status, doc = e.status, {"errorCode": e.code, "errorMessage": e.message}
        self.answer(status, doc)

    def download(self, cloud, parts):
        name = parts.path.rsplit("/", 1)[-1]
        archive_id = name.split(".", 1)[0]
        q = parse_qs(parts.query)
        until = q.get("expires", ["0"])[0]
        want = hmac.new(cloud.url_key, f"{archive_id}:{until}".encode(), hashlib.sha256).hexdigest()
        path, env_id = cloud.downloads.get(archive_id, (None, None))
        if not path or not hmac.compare_digest(q.get("signature", [""])[0], want):
            return self.answer(403, None, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
        if time.time() > int(until):
            return self.answer(403, None, b"<Error><Code>AccessDenied</Code><Message>Request has expired"
                               b"</Message></Error>")
        knobs = cloud.knobs_of(env_id)
        with open(path, "rb") as f:
            data = f.read()
        etag = '"' + hashlib.md5(data).hexdigest() + '"'
        if self.headers.get("If-Match") not in (None, etag):
            return self.answer(412, None, b"<Error><Code>PreconditionFailed</Code></Error>")
        start, end, status = 0, len(data), 200
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            start = int(m.group(1))
            end = min(len(data), int(m.group(2)) + 1) if m.group(2) else len(data)
            if start >= len(data):
                return self.answer(416, None, b"<Error><Code>InvalidRange</Code></Error>")
            status = 206
        drop = int(knobs["drop_at"])
        cut = start <= drop < end
        if cut:   # once
            cloud.knobs.setdefault(env_id, {})["drop_at"] = -1
        # outside the lock: a slow answer does not hold up the API
        cloud.lock.release()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start))
            self.send_header("ETag", etag)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.end_headers()
            rate = float(knobs["download_rate"])
            pos, step = start, 64 * 1024 if rate <= 0 else max(1, int(rate / 20))
            while pos < end:
                n = min(step, end - pos, drop - pos if cut else end)
                self.wfile.write(data[pos:pos + n])
                pos += n
                if cut and pos >= drop:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if rate > 0:
                    time.sleep(n / rate)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            cloud.lock.acquire()

    def answer(self, status, doc, raw=None, ctype="application/xml"):
        data = raw if raw is not None else (b"" if doc is None else json.dumps(doc).encode())
        self.send_response(status)
        self.send_header("Content-Type", ctype if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def log_message(self, fmt, *args):
        pass


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "init":
        import argparse
        p = argparse.ArgumentParser(description="write the stand-in's state into DIR")
        p.add_argument("command")
        p.add_argument("dir")
        p.add_argument("--source", required=True, help="the source tree (for the sample archives)")
        a = p.parse_args()
        init(a.dir, a.source)
        return
    args = stacklib.daemon_options(__doc__)
    cloud = Cloud(args.dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    cloud.port = server.server_address[1]
    server.cloud = cloud
    with open(os.path.join(args.dir, "port.tmp"), "w") as f:
        f.write(str(cloud.port))
    os.replace(os.path.join(args.dir, "port.tmp"), os.path.join(args.dir, "port"))
    server.serve_forever()


if __name__ == "__main__":
    main()
