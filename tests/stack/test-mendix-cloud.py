#!/usr/bin/env python3
"""The Mendix Cloud stand-in against the documentation (docs/mendix-cloud.md): each
documented request gets an answer of the documented example's shape (the same keys,
the same kinds of values), each documented error code comes with its documented HTTP
status, jobs move queued -> running -> completed/failed, and the archive's url is a
presigned GET of the archive in RGW that works without any Mendix header and stops
working when it expires. Needs MXPC_STACK_ENV."""

import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stacklib  # noqa: E402

checks = stacklib.Checks()
env = stacklib.stack_env_or_fail(checks)
BASE = env["MXPC_MENDIX_CLOUD_URL"]
PROJECT, PROD, ACCP = env["MXPC_MENDIX_PROJECT_ID"], env["MXPC_MENDIX_PRODUCTION_ID"], env["MXPC_MENDIX_ACCEPTANCE_ID"]
with open(os.path.join(env["MXPC_MENDIX_CLOUD_DIR"], "admin-token")) as f:
    ADMIN = f.read().strip()
USER = {"Mendix-Username": env["MXPC_MENDIX_USERNAME"], "Mendix-ApiKey": env["MXPC_MENDIX_API_KEY"]}

# The keys of the documentation's example outputs (Backups API v2, Deploy API v1).
SNAPSHOT_KEYS = {"snapshot_id", "model_version", "comment", "expires_at", "state", "status_message",
                 "created_at", "finished_at", "updated_at"}
LIST_KEYS = {"limit", "offset", "total", "snapshots"}
ARCHIVE_KEYS = {"status_message", "finished_at", "updated_at", "snapshot_id", "data_type", "created_at", "state",
                "archive_id", "url"}
APP_KEYS = {"Name", "Url", "ProjectId", "AppId"}
ENV_KEYS = {"Status", "EnvironmentId", "Mode", "Url", "ModelVersion", "MendixVersion", "Production"}


def call(method, path, headers=USER, body=None):
    parts = urlsplit(BASE)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    h = dict(headers)
    h["Content-Type"] = "application/json"
    conn.request(method, path, data, h)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, (json.loads(raw) if raw else None)


def admin(path, body=None, method="POST"):
    return call(method, "/_admin/" + path, {"X-Admin-Token": ADMIN}, body if body is not None else {})


def v2(env_id=PROD, tail="", project=PROJECT):
    return f"/api/v2/apps/{project}/environments/{env_id}/snapshots{tail}"


def is_error(answer, status, code):
    return answer[0] == status and isinstance(answer[1], dict) and answer[1].get("errorCode") == code \
        and isinstance(answer[1].get("errorMessage"), str)


def wait_state(path, states, seconds=10):
    deadline = time.time() + seconds
    seen = []
    while time.time() < deadline:
        status, doc = call("GET", path)
        if status == 200 and (not seen or seen[-1] != doc["state"]):
            seen.append(doc["state"])
        if status != 200 or doc["state"] in states:
            return doc, seen
        time.sleep(0.05)
    return doc, seen


admin("reset")

# --- Deploy API v1 ----------------------------------------------------------------
status, apps = call("GET", "/api/1/apps")
checks.check("GET /api/1/apps: a list of apps with the documented keys",
             status == 200 and isinstance(apps, list) and apps and set(apps[0]) == APP_KEYS, apps)
status, app = call("GET", f"/api/1/apps/{env['MXPC_MENDIX_APP_ID']}")
checks.check("GET /api/1/apps/APPID: the app, its ProjectId", status == 200 and app["ProjectId"] == PROJECT, app)
checks.check("... an unknown AppId: 404 APP_NOT_FOUND", is_error(call("GET", "/api/1/apps/nope"), 404, "APP_NOT_FOUND"))
status, envs = call("GET", f"/api/1/apps/{env['MXPC_MENDIX_APP_ID']}/environments")
checks.check("GET .../environments: Mode and EnvironmentId of each, the documented keys",
             status == 200 and {e["Mode"]: e["EnvironmentId"] for e in envs} == {"Production": PROD,
                                                                             "Acceptance": ACCP}
             and all(set(e) == ENV_KEYS for e in envs), envs)
status, one = call("GET", f"/api/1/apps/{env['MXPC_MENDIX_APP_ID']}/environments/Acceptance")
checks.check("GET .../environments/MODE: that environment", status == 200 and one["EnvironmentId"] == ACCP, one)
checks.check("... an unknown mode: 404 ENVIRONMENT_NOT_FOUND",
             is_error(call("GET", f"/api/1/apps/{env['MXPC_MENDIX_APP_ID']}/environments/Staging"), 404,
                      "ENVIRONMENT_NOT_FOUND"))

# --- authentication ----------------------------------------------------------------
checks.check("no Mendix-ApiKey header: 401", call("GET", v2(), {"Mendix-Username": USER["Mendix-Username"]})[0] == 401)
checks.check("a wrong API key: 401 UNAUTHORIZED",
             is_error(call("GET", v2(), dict(USER, **{"Mendix-ApiKey": "0" * 36})), 401, "UNAUTHORIZED"))
checks.check("another user's key: 401",
             call("GET", v2(), {"Mendix-Username": env["MXPC_MENDIX_NO_BACKUPS_USER"],
                                "Mendix-ApiKey": env["MXPC_MENDIX_API_KEY"]})[0] == 401)
checks.check("a user without Access to Backups: 403 NO_ACCESS",
             is_error(call("GET", v2(), {"Mendix-Username": env["MXPC_MENDIX_NO_BACKUPS_USER"],
                                         "Mendix-ApiKey": env["MXPC_MENDIX_NO_BACKUPS_API_KEY"]}), 403, "NO_ACCESS"))

# --- list snapshots ------------------------------------------------------------------
status, page = call("GET", v2(tail="?offset=0&limit=2"))
checks.check("GET .../snapshots?offset=0&limit=2: the documented keys, total, two snapshots",
             status == 200 and set(page) == LIST_KEYS and page["total"] == 3 and page["limit"] == 2
             and len(page["snapshots"]) == 2 and all(set(s) == SNAPSHOT_KEYS for s in page["snapshots"]), page)
status, rest = call("GET", v2(tail="?offset=2&limit=2"))
checks.check("... offset pages through them", status == 200 and len(rest["snapshots"]) == 1, rest)
checks.check("an unknown environment: 404 ENVIRONMENT_NOT_FOUND",
             is_error(call("GET", v2("00000000-0000-0000-0000-000000000000")), 404, "ENVIRONMENT_NOT_FOUND"))
checks.check("an unknown project: 404 ENVIRONMENT_NOT_FOUND",
             is_error(call("GET", v2(project="00000000-0000-0000-0000-000000000000")), 404,
                      "ENVIRONMENT_NOT_FOUND"))
checks.check("limit not a number: 400 INVALID_PARAMETERS",
             is_error(call("GET", v2(tail="?limit=x")), 400, "INVALID_PARAMETERS"))
admin(f"environment/{PROD}", {"listing_fails": True})
checks.check("listing fails: 500 SNAPSHOT_LISTING_FAILED", is_error(call("GET", v2()), 500, "SNAPSHOT_LISTING_FAILED"))
admin("reset")
admin(f"environment/{PROD}", {"not_supported": True})
checks.check("not Mendix Cloud: 400 NOT_SUPPORTED", is_error(call("GET", v2()), 400, "NOT_SUPPORTED"))
admin("reset")
admin(f"environment/{PROD}", {"unavailable": True})
checks.check("unavailable: 500 SERVICE_UNAVAILABLE", is_error(call("GET", v2()), 500, "SERVICE_UNAVAILABLE"))
admin("reset")

# --- create a snapshot ----------------------------------------------------------------
status, snap = call("POST", v2(), body={"comment": "My snapshot"})
checks.check("POST .../snapshots: the documented keys, state queued, the comment",
             200 <= status < 300 and set(snap) == SNAPSHOT_KEYS and snap["state"] == "queued"
             and snap["comment"] == "My snapshot" and snap["finished_at"] is None, snap)
done, seen = wait_state(v2(tail="/" + snap["snapshot_id"]), ("completed", "failed"))
checks.check("GET .../snapshots/ID: queued -> running -> completed over time",
             seen == ["queued", "running", "completed"] and set(done) == SNAPSHOT_KEYS
             and done["finished_at"] and done["model_version"], seen)
checks.check("an unknown snapshot: 404 NOT_FOUND",
             is_error(call("GET", v2(tail="/00000000-0000-0000-0000-000000000000")), 404, "NOT_FOUND"))
admin(f"environment/{PROD}", {"busy": True})
checks.check("a busy environment: 400 ENVIRONMENT_BUSY", is_error(call("POST", v2(), body={}), 400, "ENVIRONMENT_BUSY"))
admin("reset")
admin(f"environment/{PROD}", {"maintenance": True})
checks.check("maintenance in progress: 400 INVALID_STATE", is_error(call("POST", v2(), body={}), 400, "INVALID_STATE"))
admin("reset")

# --- archives -------------------------------------------------------------------------
snap_id = call("GET", v2())[1]["snapshots"][0]["snapshot_id"]
status, job = call("POST", v2(tail=f"/{snap_id}/archives?data_type=database_only"))
checks.check("POST .../archives?data_type=database_only: the documented keys, queued, url null",
             200 <= status < 300 and set(job) == ARCHIVE_KEYS and job["state"] == "queued" and job["url"] is None
             and job["data_type"] == "database_only" and job["snapshot_id"] == snap_id, job)
done, seen = wait_state(v2(tail=f"/{snap_id}/archives/{job['archive_id']}"), ("completed", "failed"))
checks.check("GET .../archives/ID: queued -> running -> completed, then a url",
             seen == ["queued", "running", "completed"] and isinstance(done["url"], str), seen)
with urllib.request.urlopen(done["url"], timeout=30) as r:
    body = r.read()
checks.check("the url is a presigned RGW GET of the database-only archive (no Mendix headers)",
             body.startswith(b"PGDMP") and urlsplit(done["url"]).port == urlsplit(env["MXPC_S3_ENDPOINT"]).port
             and "X-Amz-Signature=" in done["url"], done["url"])
status, full = call("POST", v2(tail=f"/{snap_id}/archives"))
checks.check("without data_type: files_and_database (the default)",
             200 <= status < 300 and full["data_type"] == "files_and_database", full)
done, _ = wait_state(v2(tail=f"/{snap_id}/archives/{full['archive_id']}"), ("completed", "failed"))
with urllib.request.urlopen(done["url"], timeout=30) as r:
    body = r.read()
checks.check("... its url holds a gzip archive", body[:2] == b"\x1f\x8b", body[:4])
checks.check("an unknown data_type: 400 UNSUPPORTED",
             is_error(call("POST", v2(tail=f"/{snap_id}/archives?data_type=files_only")), 400, "UNSUPPORTED"))
checks.check("an unknown archive: 404 NOT_FOUND",
             is_error(call("GET", v2(tail=f"/{snap_id}/archives/00000000-0000-0000-0000-000000000000")), 404,
                      "NOT_FOUND"))
checks.check("an archive of an unknown snapshot: 404 NOT_FOUND",
             is_error(call("POST", v2(tail="/00000000-0000-0000-0000-000000000000/archives")), 404, "NOT_FOUND"))

admin(f"environment/{PROD}", {"fail_jobs": True})
job = call("POST", v2(tail=f"/{snap_id}/archives"))[1]
done, seen = wait_state(v2(tail=f"/{snap_id}/archives/{job['archive_id']}"), ("completed", "failed"))
checks.check("fail_jobs: queued -> running -> failed, no url",
             seen == ["queued", "running", "failed"] and done["url"] is None, seen)
admin("reset")
admin(f"environment/{PROD}", {"never_finish": True, "queued_seconds": 0, "running_seconds": 0})
job = call("POST", v2(tail=f"/{snap_id}/archives"))[1]
time.sleep(0.5)
checks.check("never_finish: the job stays running",
             call("GET", v2(tail=f"/{snap_id}/archives/{job['archive_id']}"))[1]["state"] == "running")
admin("reset")
admin(f"environment/{PROD}", {"url_seconds": 1, "queued_seconds": 0, "running_seconds": 0})
job = call("POST", v2(tail=f"/{snap_id}/archives?data_type=database_only"))[1]
done, _ = wait_state(v2(tail=f"/{snap_id}/archives/{job['archive_id']}"), ("completed", "failed"))
time.sleep(2.5)
try:
    urllib.request.urlopen(done["url"], timeout=30)
    expired = None
except urllib.error.HTTPError as e:
    expired = e.code
checks.check("url_seconds: RGW refuses the url once it expired (403)", expired == 403, expired)

# --- the admin endpoint ----------------------------------------------------------------
checks.check("/_admin/ without the token: 403", call("POST", "/_admin/reset", USER, {})[0] == 403)
status, added = admin(f"snapshot/{ACCP}", {"comment": "added by a test"})
checks.check("/_admin/snapshot adds a completed snapshot",
             status == 201 and any(s["snapshot_id"] == added["snapshot_id"] for s in call("GET", v2(ACCP))[1]
                                   ["snapshots"]), added)
status, seen = admin("requests", method="GET")
checks.check("/_admin/requests: what came in, with header names (not values)",
             any(r["path"] == v2(ACCP) and "Mendix-Apikey" in [h.title() for h in r["headers"]] for r in seen)
             and env["MXPC_MENDIX_API_KEY"] not in json.dumps(seen))
admin("reset")
checks.finish()
