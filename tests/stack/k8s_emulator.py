#!/usr/bin/env python3
"""A small Kubernetes API server stand-in for the mxpc test stack.

It serves, over HTTPS, the part of the Kubernetes API that a Mendix for Private
Cloud tool touches: namespaces, secrets, pods, service accounts, RBAC roles and
role bindings, the privatecloud.mendix.com MendixApp / StorageInstance custom
resources and the Secrets Store CSI Driver's SecretProviderClass (strictly validated). Requests are authenticated (bearer token, client certificate,
or a service account token from the TokenRequest API), authorised against a
small RBAC table and the Roles bound in a namespace, and errors come back as
real `Status` objects. Writes take `dryRun=All`. State lives in one JSON file.
A background loop plays the Mendix operator and the scheduler: pods follow a
MendixApp's spec.replicas after a short delay, and a pod created directly
becomes Running after the same delay.

    k8s_emulator.py init DIR --port P --tls-dir TLS   write auth.json and kubeconfigs, print env
    k8s_emulator.py serve DIR                         run the server (state in DIR/state.json)
    k8s_emulator.py token DIR --sa NAME [...]         print a service account token (JWT)

As the API server of an EKS cluster, it is an OIDC issuer: service account tokens are
RS256 JWTs (iss, aud, sub), and /.well-known/openid-configuration and /openid/v1/jwks
are served without authentication. `init` writes projected tokens for the jump pod's
service account: for IRSA (audience sts.amazonaws.com) to DIR/irsa/token, for Azure
Workload Identity (audience api://AzureADTokenExchange) to DIR/azure/token.

Only the Python standard library is used.
"""

import argparse
import base64
import collections
import copy
import datetime
import hashlib
import http.server
import json
import os
import random
import re
import secrets
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import oidc

SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0",
                  "gitCommit": "0000000000000000000000000000000000000000",
                  "gitTreeState": "clean", "buildDate": "2024-12-11T00:00:00Z",
                  "goVersion": "go1.23.3", "compiler": "gc", "platform": "linux/amd64"}
MENDIX_GROUP = "privatecloud.mendix.com"
CSI_GROUP = "secrets-store.csi.x-k8s.io"
APP_LABEL = MENDIX_GROUP + "/app"
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
DISCOVERY_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


# --------------------------------------------------------------------------
# Resource types
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    short_names: tuple = ()
    status_subresource: bool = False   # CRDs with a status subresource ignore status on main writes
    review: bool = False   # create-only, answered from the request and never stored

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self):
        """How the API server names the resource in messages: plural[.group]."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def is_custom(self):
        return self.group in (MENDIX_GROUP, CSI_GROUP)

    @property
    def verbs(self):
        return ["create"] if self.review else list(VERBS)


NAMESPACES = ResourceType("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",))
SECRETS = ResourceType("", "v1", "secrets", "secret", "Secret")
PODS = ResourceType("", "v1", "pods", "pod", "Pod", True, ("po",))
MENDIXAPPS = ResourceType(MENDIX_GROUP, "v1alpha1", "mendixapps", "mendixapp", "MendixApp",
                          True, (), True)
STORAGEINSTANCES = ResourceType(MENDIX_GROUP, "v1alpha1", "storageinstances", "storageinstance",
                                "StorageInstance", True, (), True)
SERVICEACCOUNTS = ResourceType("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount",
                               True, ("sa",))
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES = ResourceType(RBAC_GROUP, "v1", "roles", "role", "Role")
ROLEBINDINGS = ResourceType(RBAC_GROUP, "v1", "rolebindings", "rolebinding", "RoleBinding")
# What `kubectl auth whoami` and `kubectl auth can-i` ask.
SELFSUBJECTREVIEWS = ResourceType("authentication.k8s.io", "v1", "selfsubjectreviews", "",
                                  "SelfSubjectReview", False, review=True)
SELFSUBJECTACCESSREVIEWS = ResourceType("authorization.k8s.io", "v1",
                                        "selfsubjectaccessreviews", "",
                                        "SelfSubjectAccessReview", False, review=True)
# Scheduled backups: CronJobs, and the Jobs they (or kubectl create job --from) make.
CRONJOBS = ResourceType("batch", "v1", "cronjobs", "cronjob", "CronJob", True, ("cj",))
JOBS = ResourceType("batch", "v1", "jobs", "job", "Job")
# The Secrets Store CSI Driver's CRD (secrets-store.csi.x-k8s.io/v1).
SECRETPROVIDERCLASSES = ResourceType(CSI_GROUP, "v1", "secretproviderclasses",
                                     "secretproviderclass", "SecretProviderClass")
RESOURCES = [NAMESPACES, SECRETS, PODS, SERVICEACCOUNTS, ROLES, ROLEBINDINGS, MENDIXAPPS,
             STORAGEINSTANCES, SECRETPROVIDERCLASSES, SELFSUBJECTREVIEWS,
             SELFSUBJECTACCESSREVIEWS, CRONJOBS, JOBS]
BY_KIND = {(rt.api_version, rt.kind): rt for rt in RESOURCES}


def subject_matches(subject, namespace, user):
    """Whether a RoleBinding subject (in `namespace`) names the user."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        return user.name == f"system:serviceaccount:{subject.get('namespace') or namespace}:{name}"
    return False


# A subset of the OpenAPI schemas of the kinds the jump pod is made of, for
# `fieldValidation=Strict` (what kubectl asks for): an unknown field is an error,
# as on a real API server. Fields outside this subset are rejected too, so keep it
# to what the tool writes and a little more.
ANY, STR, INT, BOOL, STRMAP = "any", "string", "integer", "boolean", "map"
_CAPS = {"add": [STR], "drop": [STR]}
_SECCOMP = {"type": STR, "localhostProfile": STR}
_CONTAINER = {
    "name": STR, "image": STR, "command": [STR], "args": [STR], "workingDir": STR,
    "env": [{"name": STR, "value": STR, "valueFrom": ANY}], "envFrom": ANY, "ports": ANY,
    "resources": {"limits": STRMAP, "requests": STRMAP},
    "volumeMounts": [{"name": STR, "mountPath": STR, "readOnly": BOOL, "subPath": STR}],
    "securityContext": {"allowPrivilegeEscalation": BOOL, "readOnlyRootFilesystem": BOOL,
                        "runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT,
                        "privileged": BOOL, "capabilities": _CAPS, "seccompProfile": _SECCOMP},
    "imagePullPolicy": STR, "stdin": BOOL, "tty": BOOL, "lifecycle": ANY, "livenessProbe": ANY,
    "readinessProbe": ANY, "startupProbe": ANY, "terminationMessagePath": STR,
    "terminationMessagePolicy": STR}
SCHEMAS = {
    # The CRD's structural schema: validated on every write, not only with Strict
    "SecretProviderClass": {"spec": {"provider": STR, "parameters": STRMAP,
                                     "secretObjects": [{"secretName": STR, "type": STR,
                                                        "labels": STRMAP, "annotations": STRMAP,
                                                        "data": [{"objectName": STR,
                                                                  "key": STR}]}]}},
    "ServiceAccount": {"secrets": ANY, "imagePullSecrets": ANY,
                       "automountServiceAccountToken": BOOL},
    "Role": {"rules": [{"apiGroups": [STR], "resources": [STR], "verbs": [STR],
                        "resourceNames": [STR], "nonResourceURLs": [STR]}]},
    "RoleBinding": {"roleRef": {"apiGroup": STR, "kind": STR, "name": STR},
                    "subjects": [{"kind": STR, "name": STR, "namespace": STR, "apiGroup": STR}]},
    "Pod": {"spec": {
        "serviceAccountName": STR, "serviceAccount": STR, "automountServiceAccountToken": BOOL,
        "restartPolicy": STR, "terminationGracePeriodSeconds": INT, "activeDeadlineSeconds": INT,
        "securityContext": {"runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT,
                            "fsGroup": INT, "fsGroupChangePolicy": STR,
                            "supplementalGroups": [INT], "seccompProfile": _SECCOMP},
        "containers": [_CONTAINER], "initContainers": [_CONTAINER],
        "volumes": [{"name": STR, "emptyDir": {"medium": STR, "sizeLimit": ANY}, "secret": ANY,
                     "configMap": ANY, "persistentVolumeClaim": ANY}],
        "nodeSelector": STRMAP, "tolerations": ANY, "affinity": ANY, "imagePullSecrets": ANY,
        "nodeName": STR, "priorityClassName": STR, "hostname": STR, "dnsPolicy": STR,
        "enableServiceLinks": BOOL, "schedulerName": STR}, "status": ANY},
}
_METADATA = {"name": STR, "generateName": STR, "namespace": STR, "labels": STRMAP,
             "annotations": STRMAP, "uid": STR, "resourceVersion": STR, "generation": INT,
             "creationTimestamp": ANY, "deletionTimestamp": ANY,
             "deletionGracePeriodSeconds": INT, "ownerReferences": ANY, "finalizers": [STR],
             "managedFields": ANY}
# batch/v1: a Job's spec around a pod template, a CronJob's around a Job template
_TEMPLATE_META = {"name": STR, "labels": STRMAP, "annotations": STRMAP, "creationTimestamp": ANY}
_JOB_SPEC = {"backoffLimit": INT, "activeDeadlineSeconds": INT, "ttlSecondsAfterFinished": INT,
             "completions": INT, "parallelism": INT, "completionMode": STR, "suspend": BOOL,
             "manualSelector": BOOL, "selector": ANY, "podFailurePolicy": ANY,
             "template": {"metadata": _TEMPLATE_META, "spec": SCHEMAS["Pod"]["spec"]}}
SCHEMAS["Job"] = {"spec": _JOB_SPEC, "status": ANY}
SCHEMAS["CronJob"] = {"spec": {
    "schedule": STR, "timeZone": STR, "concurrencyPolicy": STR, "startingDeadlineSeconds": INT,
    "suspend": BOOL, "successfulJobsHistoryLimit": INT, "failedJobsHistoryLimit": INT,
    "jobTemplate": {"metadata": _TEMPLATE_META, "spec": _JOB_SPEC}}, "status": ANY}


def strict_check(schema, value, path):
    """Raises 400 for the first field the schema does not know, or a wrong type."""
    def wrong(want):
        raise ApiError(400, f"strict decoding error: {path or 'object'}: expected {want}, "
                            f"got {type(value).__name__}")
    if schema == ANY or value is None:
        return
    if schema == STR and not isinstance(value, str):
        wrong("string")
    if schema == INT and (isinstance(value, bool) or not isinstance(value, int)):
        wrong("integer")
    if schema == BOOL and not isinstance(value, bool):
        wrong("boolean")
    if schema == STRMAP:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            wrong("a map of strings")
    if isinstance(schema, list):
        if not isinstance(value, list):
            wrong("a list")
        for i, item in enumerate(value):
            strict_check(schema[0], item, f"{path}[{i}]")
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            wrong("an object")
        for key, item in value.items():
            if key not in schema:
                raise ApiError(400, f'strict decoding error: unknown field "{path + "." if path else ""}{key}"')
            strict_check(schema[key], item, f"{path + '.' if path else ''}{key}")


def resource_for(group, version, plural):
    for rt in RESOURCES:
        if (rt.group, rt.version, rt.plural) == (group, version, plural):
            return rt
    return None


# --------------------------------------------------------------------------
# Errors as Status objects
# --------------------------------------------------------------------------

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
           415: "UnsupportedMediaType", 422: "Invalid", 500: "InternalError",
           503: "ServiceUnavailable"}


class ApiError(Exception):
    def __init__(self, code, message, reason=None, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason}
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def details_for(rt, name):
    d = {}
    if name:
        d["name"] = name
    if rt.group:
        d["group"] = rt.group
    d["kind"] = rt.plural
    return d


def not_found(rt, name):
    return ApiError(404, f'{rt.qualified} "{name}" not found', details=details_for(rt, name))


def path_not_found():
    return ApiError(404, "the server could not find the requested resource", details={})


def already_exists(rt, name):
    return ApiError(409, f'{rt.qualified} "{name}" already exists', "AlreadyExists",
                    details_for(rt, name))


def conflict(rt, name):
    return ApiError(409, f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object '
                         "has been modified; please apply your changes to the latest version "
                         "and try again", details=details_for(rt, name))


def invalid(rt, name, field, value, why):
    message = f'{rt.kind}{"." + rt.group if rt.group else ""} "{name}" is invalid: ' \
              f"{field}: Invalid value: {json.dumps(value)}: {why}"
    d = details_for(rt, name)
    d["kind"] = rt.kind
    d["causes"] = [{"reason": "FieldValueInvalid", "message": f"Invalid value: "
                    f"{json.dumps(value)}: {why}", "field": field}]
    return ApiError(422, message, details=d)


def forbidden(user, verb, rt, subresource, namespace, name):
    subject = f'{rt.qualified} "{name}"' if name else rt.qualified
    resource = rt.plural + (f"/{subresource}" if subresource else "")
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return ApiError(403, f'{subject} is forbidden: User "{user.name}" cannot {verb} resource '
                         f'"{resource}" in API group "{rt.group}" {where}',
                    details=details_for(rt, name))


# --------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------

_KEY = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EQ_RE = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_EXISTS_RE = re.compile(rf"^(!?)\s*({_KEY})$")


def _split_requirements(text):
    """Split on commas that are not inside a `( ... )` value set."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text):
    """Return a predicate over a labels dict; raises ApiError(400) like the API server."""
    reqs = []
    for req in _split_requirements(text or ""):
        m = _EQ_RE.match(req)
        if m:
            key, op, value = m.groups()
            reqs.append((key, "!=" if op == "!=" else "=", {value}))
            continue
        m = _SET_RE.match(req)
        if m:
            key, op, values = m.groups()
            vals = {v.strip() for v in values.split(",")}
            if not all(re.fullmatch(_VALUE, v) for v in vals):
                raise ApiError(400, f"unable to parse requirement: values in {req!r} are invalid")
            reqs.append((key, op, vals))
            continue
        m = _EXISTS_RE.match(req)
        if m:
            neg, key = m.groups()
            reqs.append((key, "!exists" if neg else "exists", None))
            continue
        raise ApiError(400, f"unable to parse requirement: {req!r} is not a valid label selector")

    def matches(labels):
        for key, op, vals in reqs:
            present = key in labels
            if op == "exists" and not present:
                return False
            if op == "!exists" and present:
                return False
            if op in ("=", "in") and (not present or labels[key] not in vals):
                return False
            # `!=` and `notin` also select objects that lack the label, as in Kubernetes.
            if op in ("!=", "notin") and present and labels[key] in vals:
                return False
        return True
    return matches


FIELD_GETTERS = {
    "metadata.name": lambda o: o["metadata"].get("name", ""),
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
}
EXTRA_FIELDS = {
    "pods": {"status.phase": lambda o: o.get("status", {}).get("phase", ""),
             "spec.nodeName": lambda o: o.get("spec", {}).get("nodeName", "")},
    "secrets": {"type": lambda o: o.get("type", "")},
    "namespaces": {"status.phase": lambda o: o.get("status", {}).get("phase", "")},
}


def parse_field_selector(rt, text):
    getters = dict(FIELD_GETTERS, **EXTRA_FIELDS.get(rt.plural, {}))
    reqs = []
    for req in _split_requirements(text or ""):
        m = re.match(r"^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$", req)
        if not m:
            raise ApiError(400, f"invalid selector: {req!r}; can't understand {req!r}")
        field, op, value = m.groups()
        if field not in getters:
            raise ApiError(400, f'"{field}" is not a known field selector: only '
                                f'"{", ".join(sorted(getters))}"')
        reqs.append((getters[field], op == "!=", value))
    return lambda obj: all((g(obj) == v) != neg for g, neg, v in reqs)


# --------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------

class PatchError(Exception):
    pass


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(container, token, for_add=False):
    if token == "-" and for_add:
        return len(container)
    if not re.fullmatch(r"0|[1-9][0-9]*", token):
        raise PatchError(f"invalid array index {token!r}")
    i = int(token)
    if i > len(container) or (i == len(container) and not for_add):
        raise PatchError(f"array index {i} out of bounds")
    return i


def _parent(doc, tokens, path):
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return node


def _get(doc, path):
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last)]
    raise PatchError(f"doc is missing path: {path!r}")


def _add(doc, path, value):
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), value)
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def _remove(doc, path):
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last)]
    else:
        raise PatchError(f"doc is missing path: {path!r}: missing value")
    return doc


def json_equal(a, b):
    """JSON equality: unlike Python's ==, true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return a == b


def json_patch(doc, ops):
    """RFC 6902 JSON patch; malformed operations raise ValueError, failing ones PatchError."""
    if not isinstance(ops, list):
        raise ValueError("json patch must be a JSON array of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ValueError(f"invalid json patch operation: {json.dumps(op)}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise ValueError(f'json patch operation "{kind}" needs a value')
        if kind in ("move", "copy") and "from" not in op:
            raise ValueError(f'json patch operation "{kind}" needs "from"')
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)   # must exist
            doc = _add(_remove(doc, path), path, copy.deepcopy(op["value"])) if path else \
                copy.deepcopy(op["value"])
        elif kind == "move":
            value = _get(doc, op["from"])
            doc = _add(_remove(doc, op["from"]), path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if not json_equal(_get(doc, path), op["value"]):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise ValueError(f"unexpected kind of json patch operation: {kind!r}")
    return doc


# --------------------------------------------------------------------------
# Protobuf request bodies
# --------------------------------------------------------------------------
# kubectl's typed clients (`kubectl create namespace`, `kubectl create secret generic`,
# `kubectl auth can-i`/`whoami`) send built-in objects as protobuf and do not retry with
# JSON. This decodes just the fields such commands set; anything else gets 415.

PROTOBUF = "application/vnd.kubernetes.protobuf"
STRATEGIC = "application/strategic-merge-patch+json"
# What a real server lists for custom resources (minus strategic) and built-in ones.
PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json",
               "application/apply-patch+yaml", STRATEGIC]


def _proto_fields(data):
    """Yield (field number, value) of a protobuf message; value is int or bytes."""
    i = 0

    def varint():
        nonlocal i
        shift = result = 0
        while True:
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7
    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            n = varint()
            yield number, data[i:i + n]
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _proto_map(entries):
    out = {}
    for entry in entries:
        f = dict(_proto_fields(entry))
        out[f.get(1, b"").decode()] = f.get(2, b"")
    return out


def _proto_object_meta(data):
    meta, labels, annotations = {}, [], []
    for number, value in _proto_fields(data):
        if number in (1, 2, 3) and value:   # proto2 writes empty strings too
            meta[("name", "generateName", "namespace")[number - 1]] = value.decode()
        elif number == 11:
            labels.append(value)
        elif number == 12:
            annotations.append(value)
    if labels:
        meta["labels"] = {k: v.decode() for k, v in _proto_map(labels).items()}
    if annotations:
        meta["annotations"] = {k: v.decode() for k, v in _proto_map(annotations).items()}
    return meta


def decode_protobuf(body):
    """k8s protobuf envelope ("k8s\\0" + runtime.Unknown) -> JSON-style object."""
    if body[:4] != b"k8s\x00":
        raise ValueError("missing protobuf magic")
    unknown = dict(_proto_fields(body[4:]))
    type_meta = dict(_proto_fields(unknown.get(1, b"")))
    api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
    obj = {"apiVersion": api_version, "kind": kind}
    fields = list(_proto_fields(unknown.get(2, b"")))
    if (api_version, kind) == ("v1", "Namespace"):
        for number, value in fields:
            if number == 1:
                obj["metadata"] = _proto_object_meta(value)
    elif (api_version, kind) == ("v1", "Secret"):
        data, string_data = [], []
        for number, value in fields:
            if number == 1:
                obj["metadata"] = _proto_object_meta(value)
            elif number == 2:
                data.append(value)
            elif number == 3:
                obj["type"] = value.decode()
            elif number == 4:
                string_data.append(value)
        if data:
            obj["data"] = {k: base64.b64encode(v).decode() for k, v in _proto_map(data).items()}
        if string_data:
            obj["stringData"] = {k: v.decode() for k, v in _proto_map(string_data).items()}
    elif (api_version, kind) == ("batch/v1", "Job"):   # kubectl create job --from=cronjob/NAME
        obj.update(_proto_message(unknown.get(2, b""), _JOB_PROTO))
    elif kind in ("SelfSubjectReview", "SelfSubjectAccessReview"):
        for number, value in fields:
            if number == 2 and kind == "SelfSubjectAccessReview":
                obj["spec"] = _proto_access_review_spec(value)
    else:
        raise LookupError(f"{api_version}/{kind}")
    return obj


# Field numbers of the k8s.io/api generated.proto messages a Job is made of, as far
# as the tool's manifests use them: number -> (JSON name, type[, "repeated" | "ptr"]).
# Types: "str", "int", "bool", "map" (of strings), or a message's table. Non-pointer
# fields are written even when empty (proto2); they are dropped when zero, as JSON's
# omitempty does, pointer fields ("ptr") are kept.
_P_TIME = {1: ("seconds", "int"), 2: ("nanos", "int")}
_P_OWNER = {1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"), 5: ("apiVersion", "str"),
            6: ("controller", "bool", "ptr"), 7: ("blockOwnerDeletion", "bool", "ptr")}
_P_META = {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"),
           5: ("uid", "str"), 6: ("resourceVersion", "str"), 7: ("generation", "int"),
           11: ("labels", "map"), 12: ("annotations", "map"),
           13: ("ownerReferences", _P_OWNER, "repeated"), 14: ("finalizers", "str", "repeated")}
_P_SECCOMP = {1: ("type", "str"), 2: ("localhostProfile", "str", "ptr")}
_P_CAPS = {1: ("add", "str", "repeated"), 2: ("drop", "str", "repeated")}
_P_CSEC = {1: ("capabilities", _P_CAPS), 2: ("privileged", "bool", "ptr"), 4: ("runAsUser", "int", "ptr"),
           5: ("runAsNonRoot", "bool", "ptr"), 6: ("readOnlyRootFilesystem", "bool", "ptr"),
           7: ("allowPrivilegeEscalation", "bool", "ptr"), 8: ("runAsGroup", "int", "ptr"),
           11: ("seccompProfile", _P_SECCOMP)}
_P_PSEC = {2: ("runAsUser", "int", "ptr"), 3: ("runAsNonRoot", "bool", "ptr"),
           4: ("supplementalGroups", "int", "repeated"), 5: ("fsGroup", "int", "ptr"),
           6: ("runAsGroup", "int", "ptr"), 9: ("fsGroupChangePolicy", "str", "ptr"),
           10: ("seccompProfile", _P_SECCOMP)}
_P_ENV = {1: ("name", "str"), 2: ("value", "str")}
_P_MOUNT = {1: ("name", "str"), 2: ("readOnly", "bool"), 3: ("mountPath", "str"), 4: ("subPath", "str")}
_P_CONTAINER = {1: ("name", "str"), 2: ("image", "str"), 3: ("command", "str", "repeated"),
                4: ("args", "str", "repeated"), 5: ("workingDir", "str"),
                7: ("env", _P_ENV, "repeated"), 9: ("volumeMounts", _P_MOUNT, "repeated"),
                13: ("terminationMessagePath", "str"), 14: ("imagePullPolicy", "str"),
                15: ("securityContext", _P_CSEC), 16: ("stdin", "bool"), 18: ("tty", "bool"),
                20: ("terminationMessagePolicy", "str")}
_P_EMPTYDIR = {1: ("medium", "str")}
_P_VOLUME = {1: ("name", "str"), 2: (None, {2: ("emptyDir", _P_EMPTYDIR)})}   # VolumeSource, inline
_P_PODSPEC = {1: ("volumes", _P_VOLUME, "repeated"), 2: ("containers", _P_CONTAINER, "repeated"),
              3: ("restartPolicy", "str"), 4: ("terminationGracePeriodSeconds", "int", "ptr"),
              5: ("activeDeadlineSeconds", "int", "ptr"), 6: ("dnsPolicy", "str"),
              7: ("nodeSelector", "map"), 8: ("serviceAccountName", "str"), 9: ("serviceAccount", "str"),
              10: ("nodeName", "str"), 14: ("securityContext", _P_PSEC), 16: ("hostname", "str"),
              19: ("schedulerName", "str"), 20: ("initContainers", _P_CONTAINER, "repeated"),
              21: ("automountServiceAccountToken", "bool", "ptr"), 24: ("priorityClassName", "str"),
              30: ("enableServiceLinks", "bool", "ptr")}
_P_TEMPLATE = {1: ("metadata", _P_META), 2: ("spec", _P_PODSPEC)}
_P_SELECTOR = {1: ("matchLabels", "map")}
_P_JOBSPEC = {1: ("parallelism", "int", "ptr"), 2: ("completions", "int", "ptr"),
              3: ("activeDeadlineSeconds", "int", "ptr"), 4: ("selector", _P_SELECTOR),
              5: ("manualSelector", "bool", "ptr"), 6: ("template", _P_TEMPLATE),
              7: ("backoffLimit", "int", "ptr"), 8: ("ttlSecondsAfterFinished", "int", "ptr"),
              9: ("completionMode", "str", "ptr"), 10: ("suspend", "bool", "ptr")}
_JOB_PROTO = {1: ("metadata", _P_META), 2: ("spec", _P_JOBSPEC)}


def _proto_message(data, table):
    """A protobuf message -> its JSON form, by a table of field numbers (above)."""
    out = {}
    for number, value in _proto_fields(data):
        entry = table.get(number)
        if entry is None:
            continue
        name, kind, flag = entry[0], entry[1], (entry[2] if len(entry) > 2 else None)
        if kind == "map":
            out.setdefault(name, {}).update(
                {k: v.decode() for k, v in _proto_map([value]).items()})
            continue
        if kind == "str":
            v = value.decode()
        elif kind == "int":
            v = value - (1 << 64) if value >= 1 << 63 else value
        elif kind == "bool":
            v = bool(value)
        else:
            v = _proto_message(value, kind)
            if name is None:   # an inline message: its fields are the parent's
                out.update(v)
                continue
        if flag == "repeated":
            out.setdefault(name, []).append(v)
        elif flag == "ptr" or not isinstance(kind, str) or v not in ("", 0, False):
            out[name] = v
    return out


def _proto_access_review_spec(data):
    """SelfSubjectAccessReviewSpec: resourceAttributes (1) or nonResourceAttributes (2)."""
    spec = {}
    for number, value in _proto_fields(data):
        if number == 1:
            names = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
            spec["resourceAttributes"] = {names[n - 1]: v.decode()
                                          for n, v in _proto_fields(value) if n <= len(names)}
        elif number == 2:
            spec["nonResourceAttributes"] = {("path", "verb")[n - 1]: v.decode()
                                             for n, v in _proto_fields(value) if n <= 2}
    return spec


# --------------------------------------------------------------------------
# Object store
# --------------------------------------------------------------------------

def now_rfc3339(t=None):
    return datetime.datetime.fromtimestamp(t if t is not None else time.time(),
                                           datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")   # namespaces: DNS-1123 label


class Store:
    """All objects, one lock, and an event log for watches.

    Every mutation bumps the global resourceVersion, appends a watch event and
    rewrites the state file atomically, so a restart of the emulator keeps its data.
    """

    def __init__(self, path):
        self.path = path
        self.cond = threading.Condition()
        self.objects = {}                  # (plural, namespace, name) -> object
        self.rv = 0
        self.events = collections.deque(maxlen=2000)   # (rv, type, rt, object)
        if os.path.exists(path):
            with open(path) as f:
                state = json.load(f)
            self.rv = state["resourceVersion"]
            for obj in state["objects"]:
                rt = BY_KIND[(obj["apiVersion"], obj["kind"])]
                self.objects[self.key(rt, obj["metadata"].get("namespace"),
                                      obj["metadata"]["name"])] = obj
        self.log_start = self.rv   # the event log covers every change after this version
        self.remove_at = {}        # pod uid -> when a Terminating pod goes (sub-second)

    @staticmethod
    def key(rt, namespace, name):
        return (rt.plural, namespace if rt.namespaced else None, name)

    def save(self):
        state = {"resourceVersion": self.rv,
                 "objects": [self.objects[k] for k in sorted(self.objects, key=lambda k:
                                                               (k[0], k[1] or "", k[2]))]}
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def get(self, rt, namespace, name):
        return self.objects.get(self.key(rt, namespace, name))

    def items(self, rt, namespace=None):
        found = [o for (plural, ns, _), o in self.objects.items()
                 if plural == rt.plural and (namespace is None or ns == namespace)]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""),
                                            o["metadata"]["name"]))

    def _record(self, kind, rt, obj):
        if len(self.events) == self.events.maxlen:
            self.log_start = self.events[0][0]
        self.events.append((self.rv, kind, rt, copy.deepcopy(obj)))
        self.cond.notify_all()

    def put(self, rt, obj, created=False):
        """Store obj under a new resourceVersion (the caller holds the lock)."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        self.objects[self.key(rt, meta.get("namespace"), meta["name"])] = obj
        self._record("ADDED" if created else "MODIFIED", rt, obj)
        self.save()
        return obj

    def mark_terminating(self, pod, seconds, now):
        """Graceful deletion: set deletionTimestamp (the time the pod will be gone, as in
        Kubernetes); the operator loop removes it then."""
        pod = copy.deepcopy(pod)
        pod["metadata"]["deletionTimestamp"] = now_rfc3339(now + seconds)
        pod["metadata"]["deletionGracePeriodSeconds"] = int(seconds)
        self.remove_at[pod["metadata"]["uid"]] = now + seconds
        return self.put(PODS, pod)

    def remove(self, rt, obj):
        self.remove_at.pop(obj["metadata"].get("uid"), None)
        meta = obj["metadata"]
        del self.objects[self.key(rt, meta.get("namespace"), meta["name"])]
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._record("DELETED", rt, obj)
        self.save()
        return obj


# --------------------------------------------------------------------------
# Authentication and authorisation
# --------------------------------------------------------------------------

@dataclass
class User:
    name: str
    groups: tuple


ANONYMOUS_PATHS = {"/healthz", "/readyz", "/livez", "/version",
                   "/.well-known/openid-configuration", "/openid/v1/jwks"}


class Auth:
    """Tokens and RBAC rules from auth.json, re-read when the file changes so tests can
    adjust the rules of a running server."""

    def __init__(self, path):
        self.path = path
        self.mtime = None
        self.tokens = {}
        self.sa_tokens = {}   # tokens issued by the TokenRequest API (kept in memory)
        self.rules = []
        self.lock = threading.Lock()
        self.reload()

    def reload(self):
        with self.lock:
            mtime = os.stat(self.path).st_mtime_ns
            if mtime == self.mtime:
                return
            with open(self.path) as f:
                conf = json.load(f)
            self.tokens = {u["token"]: User(u["name"], tuple(u.get("groups", [])))
                           for u in conf["users"] if u.get("token")}
            self.rules = conf["rules"]
            self.mtime = mtime

    def authenticate(self, peercert, authorization, path):
        """Client certificate first, then bearer token, as the API server's union
        authenticator does. Returns a User, None for anonymous health checks, or raises 401."""
        self.reload()
        if peercert:
            cn, orgs = None, []
            for rdn in peercert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        cn = value
                    elif key == "organizationName":
                        orgs.append(value)
            if cn:
                return User(cn, tuple(orgs) + ("system:authenticated",))
        if authorization:
            scheme, _, token = authorization.partition(" ")
            token = token.strip()
            user = (self.tokens.get(token) or self.sa_tokens.get(token)) \
                if scheme.lower() == "bearer" else None
            if user:
                return User(user.name, user.groups + ("system:authenticated",))
            raise ApiError(401, "Unauthorized")
        if path in ANONYMOUS_PATHS:
            return None
        raise ApiError(401, "Unauthorized")

    def allowed(self, user, verb, group, resource, namespace, name=None):
        """resource is "plural" or "plural/subresource"; namespace None = cluster scope;
        a rule with resourceNames allows only those names."""
        subjects = {"user:" + user.name} | {"group:" + g for g in user.groups}
        for rule in self.rules:
            if not subjects & set(rule["subjects"]):
                continue
            namespaces = rule.get("namespaces", ["*"])
            if "*" not in namespaces and (namespace is None or namespace not in namespaces):
                continue
            if not {"*", group} & set(rule.get("apiGroups", ["*"])):
                continue
            if not {"*", resource} & set(rule["resources"]):
                continue
            if rule.get("resourceNames") and name not in rule["resourceNames"]:
                continue
            if {"*", verb} & set(rule["verbs"]):
                return True
        return False


# --------------------------------------------------------------------------
# Tables (what `kubectl get` prints)
# --------------------------------------------------------------------------

def human_age(created):
    """Like k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(time.time() - parse_rfc3339(created))
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d" if d < 365 * 2 else f"{d // 365}y"


def _col(name, kind="string", fmt="", priority=0, description=""):
    return {"name": name, "type": kind, "format": fmt, "description": description,
            "priority": priority}


def _pod_status(pod):
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    return pod.get("status", {}).get("phase", "Pending")


def _pod_ready(pod):
    statuses = pod.get("status", {}).get("containerStatuses", [])
    total = len(pod.get("spec", {}).get("containers", [])) or len(statuses)
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


# Per resource: column definitions and a function (object, age) -> row cells, like the
# API server's built-in printers; custom resources without printer columns get Name, Age.
TABLE_COLUMNS = {
    "namespaces": ([_col("Name", fmt="name"), _col("Status"), _col("Age")],
                   lambda o, age: [o["metadata"]["name"],
                                   o.get("status", {}).get("phase", "Active"), age]),
    "secrets": ([_col("Name", fmt="name"), _col("Type"), _col("Data", "integer"), _col("Age")],
                lambda o, age: [o["metadata"]["name"], o.get("type", "Opaque"),
                                len(o.get("data", {})), age]),
    "pods": ([_col("Name", fmt="name"), _col("Ready"), _col("Status"), _col("Restarts"),
              _col("Age"), _col("IP", priority=1), _col("Node", priority=1)],
             lambda o, age: [o["metadata"]["name"], _pod_ready(o), _pod_status(o),
                             str(sum(c.get("restartCount", 0) for c in
                                     o.get("status", {}).get("containerStatuses", []))),
                             age, o.get("status", {}).get("podIP", "<none>"),
                             o.get("spec", {}).get("nodeName", "<none>")]),
}
DEFAULT_COLUMNS = ([_col("Name", fmt="name"), _col("Age")],
                   lambda o, age: [o["metadata"]["name"], age])


def to_table(rt, objects, include_object, rv):
    columns, cells = TABLE_COLUMNS.get(rt.plural, DEFAULT_COLUMNS)
    rows = []
    for obj in objects:
        row = {"cells": cells(obj, human_age(obj["metadata"]["creationTimestamp"]))}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(rv)}, "columnDefinitions": columns,
            "rows": rows}


# --------------------------------------------------------------------------
# Discovery documents
# --------------------------------------------------------------------------

def api_resource_list(group, version):
    resources = []
    for rt in RESOURCES:
        if (rt.group, rt.version) != (group, version):
            continue
        entry = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                 "kind": rt.kind, "verbs": rt.verbs}
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        resources.append(entry)
        if rt.status_subresource:
            resources.append({"name": rt.plural + "/status", "singularName": "",
                              "namespaced": rt.namespaced, "kind": rt.kind,
                              "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


def discovery_v2(core):
    """Aggregated discovery (apidiscovery.k8s.io/v2) for /api (core) or /apis."""
    groups = {}
    for rt in RESOURCES:
        if (rt.group == "") != core:
            continue
        entry = {"resource": rt.plural,
                 "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                 "scope": "Namespaced" if rt.namespaced else "Cluster",
                 "singularResource": rt.singular, "verbs": rt.verbs}
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.status_subresource:
            entry["subresources"] = [{"subresource": "status", "responseKind": entry[
                "responseKind"], "verbs": ["get", "patch", "update"]}]
        groups.setdefault((rt.group, rt.version), []).append(entry)
    items = [{"metadata": {"name": group} if group else {"creationTimestamp": None},
              "versions": [{"version": version, "resources": res, "freshness": "Current"}]}
             for (group, version), res in groups.items()]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}


def groups():
    return sorted({rt.group for rt in RESOURCES if rt.group})


def api_group(group):
    versions = sorted({rt.version for rt in RESOURCES if rt.group == group})
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs,
            "preferredVersion": gvs[0]}


# OpenAPI v3: only what kubectl reads before it writes. Without it kubectl cannot tell
# whether the server validates fields itself (`fieldValidation`, `dryRun`), and
# `kubectl create -f` fails with "failed to download openapi". Paths and operations are
# real; schemas are left out (so `kubectl explain` has nothing to show).

def _openapi_gv_path(group, version):
    return f"api/{version}" if group == "" else f"apis/{group}/{version}"


def openapi_v3_root():
    gvs = sorted({(rt.group, rt.version) for rt in RESOURCES})
    return {"paths": {_openapi_gv_path(g, v): {"serverRelativeURL":
                      f"/openapi/v3/{_openapi_gv_path(g, v)}?hash=mxpc-stack-1"}
                      for g, v in gvs}}


def openapi_v3_doc(group, version):
    write_params = [{"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("dryRun", "fieldManager", "fieldValidation")]
    paths = {}
    for rt in RESOURCES:
        if (rt.group, rt.version) != (group, version):
            continue
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        base = "/" + _openapi_gv_path(group, version)
        scope = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else \
            f"{base}/{rt.plural}"

        def op(verb, params=()):
            return {"operationId": f"{verb}{rt.kind}", "parameters": list(params),
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": verb, "x-kubernetes-group-version-kind": gvk}
        paths[scope] = {"get": op("list"), "post": op("post", write_params)}
        paths[scope + "/{name}"] = {"get": op("get"), "put": op("put", write_params),
                                    "patch": op("patch", write_params),
                                    "delete": op("delete", write_params[:1])}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths, "components": {}}


OPENAPI_V2_PROTOBUF = "application/octet-stream"   # what the API server answers for it


def wants(accept, as_kind, version=None):
    """True when one of the Accept media ranges asks for `as=<as_kind>` (and version)."""
    for media in (accept or "").split(","):
        params = dict(p.strip().split("=", 1) for p in media.split(";")[1:] if "=" in p)
        if params.get("as") == as_kind and (version is None or params.get("v") == version):
            return True
    return False


# --------------------------------------------------------------------------
# The API: requests in, (code, body, content type) out
# --------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    user: User


def _query(req, key, default=None):
    return req.query.get(key, [default])[0]


def _number(req, key, default, kind=int):
    try:
        return kind(_query(req, key, default) or default)
    except ValueError:
        raise ApiError(400, f"{key}: invalid value {_query(req, key)!r}")


class Api:
    def __init__(self, store, auth, address, grace):
        self.store = store
        self.auth = auth
        self.address = address
        self.grace = grace   # seconds a deleted pod stays Terminating

    # ---- routing -----------------------------------------------------------

    def handle(self, req):
        """Returns (code, body, content_type) or a generator for watch streams."""
        parts = [p for p in req.path.split("/") if p]
        if req.path in ("/healthz", "/readyz", "/livez"):
            return 200, b"ok", "text/plain; charset=utf-8"
        if req.path == "/version":
            return 200, SERVER_VERSION, "application/json"
        if req.path == "/.well-known/openid-configuration":
            return 200, oidc.discovery("https://" + self.address), "application/json"
        if req.path == "/openid/v1/jwks":
            return 200, oidc.jwks(self.oidc_key), "application/jwk-set+json"
        if req.method == "GET" and parts[:1] in (["api"], ["apis"], ["openapi"]):
            accept = req.headers.get("accept", "")
            doc = self.openapi(parts, accept) if parts[0] == "openapi" else \
                self.discovery(parts, accept)
            if doc is not None:
                return doc
        target = self.resolve(parts)
        if target is None:
            raise path_not_found()
        return self.resource_request(req, *target)

    def discovery(self, parts, accept):
        if parts == ["api"]:
            if wants(accept, "APIGroupDiscoveryList", "v2"):
                return 200, discovery_v2(core=True), DISCOVERY_V2
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs":
                         [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.address}]}, \
                "application/json"
        if parts == ["apis"]:
            if wants(accept, "APIGroupDiscoveryList", "v2"):
                return 200, discovery_v2(core=False), DISCOVERY_V2
            return 200, {"kind": "APIGroupList", "apiVersion": "v1",
                         "groups": [api_group(g) for g in groups()]}, "application/json"
        if parts == ["api", "v1"]:
            return 200, api_resource_list("", "v1"), "application/json"
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups():
            return 200, api_group(parts[1]), "application/json"
        if len(parts) == 3 and parts[0] == "apis" and \
                any((rt.group, rt.version) == (parts[1], parts[2]) for rt in RESOURCES):
            return 200, api_resource_list(parts[1], parts[2]), "application/json"
        return None

    @staticmethod
    def openapi(parts, accept):
        if parts == ["openapi", "v2"]:
            # Older kubectl (Debian's 1.20) validates manifests against OpenAPI v2, asking
            # for protobuf. An empty document holds no schemas, and kubectl skips
            # validation for kinds it has no schema for.
            if "protobuf" in accept:
                return 200, b"", OPENAPI_V2_PROTOBUF
            return 200, {"swagger": "2.0", "info": {"title": "Kubernetes",
                                                    "version": SERVER_VERSION["gitVersion"]},
                         "paths": {}, "definitions": {}}, "application/json"
        if parts == ["openapi", "v3"]:
            return 200, openapi_v3_root(), "application/json"
        gv = parts[2:]   # /openapi/v3/api/v1 or /openapi/v3/apis/GROUP/VERSION
        if parts[:2] == ["openapi", "v3"] and gv[:1] == ["api"] and len(gv) == 2:
            group, version = "", gv[1]
        elif parts[:2] == ["openapi", "v3"] and gv[:1] == ["apis"] and len(gv) == 3:
            group, version = gv[1], gv[2]
        else:
            return None
        if any((rt.group, rt.version) == (group, version) for rt in RESOURCES):
            return 200, openapi_v3_doc(group, version), "application/json"
        return None

    @staticmethod
    def resolve(parts):
        """URL path -> (rt, namespace, name, subresource) or None."""
        if len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] and \
                parts[4] == "serviceaccounts" and parts[6] == "token":
            return SERVICEACCOUNTS, parts[3], parts[5], "token"   # TokenRequest
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        rt = resource_for(group, version, rest[0])
        if rt is None or (namespace is not None and not rt.namespaced):
            return None
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource and not (subresource == "status" and rt.status_subresource) and \
                not (rt is PODS and subresource == "log"):
            return None
        if rt.namespaced and namespace is None and name is not None:
            return None   # a namespaced object needs its namespace in the path
        return rt, namespace, name, subresource

    def verb(self, req, name):
        if req.method == "GET":
            if name:
                return "get"
            return "watch" if _query(req, "watch") in ("true", "1") else "list"
        if req.method == "POST" and not name:
            return "create"
        if name:
            return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(req.method)
        return None

    def resource_request(self, req, rt, namespace, name, subresource):
        verb = self.verb(req, name) if subresource != "token" else \
            ("create" if req.method == "POST" else None)
        if verb is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if rt.review:
            if verb != "create":
                raise ApiError(405, "the server does not allow this method on the requested "
                                    "resource")
            return 201, self.review(rt, req), "application/json"
        resource = rt.plural + (f"/{subresource}" if subresource else "")
        if not self.allowed(req.user, verb, rt.group, resource, namespace, name):
            raise forbidden(req.user, verb, rt, subresource, namespace, name)
        if subresource == "token":
            with self.store.cond:
                return 201, self.token_request(req, namespace, name), "application/json"
        if subresource == "log":
            with self.store.cond:
                pod = self.must_get(rt, namespace, name)
            return 200, Kubelet.log_of(pod), "text/plain"
        if verb == "watch":
            return self.watch(req, rt, namespace)   # streams; takes the lock per event
        dry_run = _query(req, "dryRun") == "All"
        with self.store.cond:
            if verb == "get":
                return self.reply(req, rt, [self.must_get(rt, namespace, name)], single=True)
            elif verb == "list":
                return self.list(req, rt, namespace)
            elif verb == "create":
                body = self.json_body(req)
                if _query(req, "fieldValidation") == "Strict" and rt.kind in SCHEMAS:
                    strict_check(dict(SCHEMAS[rt.kind], apiVersion=STR, kind=STR, metadata=_METADATA),
                                 body, "")
                return 201, self.create(rt, namespace, body, dry_run), "application/json"
            elif verb == "update":
                return 200, self.update(rt, namespace, name, subresource, self.json_body(req),
                                        dry_run), "application/json"
            elif verb == "patch":
                return 200, self.patch(req, rt, namespace, name, subresource, dry_run), \
                    "application/json"
            else:
                return 200, self.delete(req, rt, namespace, name, dry_run), "application/json"

    def allowed(self, user, verb, group, resource, namespace, name=None):
        """The static rules of auth.json, then the Roles bound in the namespace. A
        rule with resourceNames allows only requests for one of those objects by
        name, as in Kubernetes: never a list, watch or create (they name none)."""
        if self.auth.allowed(user, verb, group, resource, namespace, name):
            return True
        if namespace is None:
            return False
        with self.store.cond:
            for binding in self.store.items(ROLEBINDINGS, namespace):
                ref = binding.get("roleRef", {})
                if ref.get("kind") != "Role" or not any(
                        subject_matches(s, namespace, user) for s in binding.get("subjects", [])):
                    continue
                role = self.store.get(ROLES, namespace, ref.get("name"))
                for rule in (role or {}).get("rules", []):
                    if {"*", group} & set(rule.get("apiGroups", [])) and \
                            {"*", resource} & set(rule.get("resources", [])) and \
                            {"*", verb} & set(rule.get("verbs", [])) and \
                            (not rule.get("resourceNames") or name in rule["resourceNames"]):
                        return True
        return False

    def token_request(self, req, namespace, name):
        """POST .../serviceaccounts/NAME/token: a service account token, an RS256 JWT of
        the cluster's OIDC issuer for spec.audiences (default: the API server, whose
        tokens also log in here) valid spec.expirationSeconds (600 s to 2^32 s, default
        an hour), as `kubectl create token` and EKS/AKS workloads get them."""
        self.must_get(SERVICEACCOUNTS, namespace, name)
        try:   # kubectl sends protobuf: only a JSON body's spec is read
            body = json.loads(req.body) if req.body.strip() else {}
        except ValueError:
            body = {}
        spec = (body if isinstance(body, dict) else {}).get("spec") or {}
        seconds = spec.get("expirationSeconds")
        seconds = 3600 if seconds is None else seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int) or \
                not 600 <= seconds <= 2 ** 32:
            raise ApiError(422, f'TokenRequest.authentication.k8s.io "{name}" is invalid: '
                                f"spec.expirationSeconds: Invalid value: {seconds}: may not "
                                "specify a duration less than 10 minutes",
                           reason="Invalid")
        issuer = "https://" + self.address
        audiences = spec.get("audiences") or [issuer]
        if not isinstance(audiences, list) or not all(isinstance(a, str) and a
                                                      for a in audiences):
            raise ApiError(400, "spec.audiences: expected a list of strings")
        now = int(time.time())
        token = oidc.sign(self.oidc_key, {
            "aud": audiences, "exp": now + seconds, "iat": now, "nbf": now, "iss": issuer,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name}}})
        if issuer in audiences:   # only tokens for the API server log in to it
            self.auth.sa_tokens[token] = User(f"system:serviceaccount:{namespace}:{name}",
                                              ("system:serviceaccounts",
                                               f"system:serviceaccounts:{namespace}"))
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace,
                             "creationTimestamp": now_rfc3339()},
                "spec": {"audiences": audiences, "expirationSeconds": seconds},
                "status": {"token": token,
                           "expirationTimestamp": now_rfc3339(time.time() + seconds)}}

    def json_body(self, req):
        """Create and update bodies: JSON, or protobuf for the types decode_protobuf knows."""
        ctype = req.headers.get("content-type", "application/json").split(";")[0].strip()
        if ctype == PROTOBUF:
            try:
                return decode_protobuf(req.body)
            except (ValueError, IndexError, LookupError, UnicodeDecodeError):
                pass
        elif ctype == "application/json":
            return self.body(req)
        raise ApiError(415, "the body of the request was in an unknown format - accepted "
                            "media types include: application/json")

    def review(self, rt, req):
        """Self reviews are open to every authenticated user, as in Kubernetes."""
        obj = self.json_body(req)
        user = req.user
        if rt is SELFSUBJECTREVIEWS:
            status = {"userInfo": {"username": user.name, "groups": list(user.groups)}}
        else:
            spec = obj.get("spec", {})
            attrs = spec.get("resourceAttributes")
            if attrs:
                resource = attrs.get("resource", "") + \
                    (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
                allowed = self.allowed(user, attrs.get("verb", ""), attrs.get("group", ""),
                                       resource, attrs.get("namespace") or None,
                                       attrs.get("name") or None)
            else:   # non-resource URLs: discovery and health for everyone, the rest for admins
                path = spec.get("nonResourceAttributes", {}).get("path", "")
                allowed = path.startswith(("/api", "/apis", "/version", "/openapi", "/healthz",
                                           "/readyz", "/livez")) or \
                    self.auth.allowed(user, "*", "*", "*", None)
            status = {"allowed": allowed}
        return {"kind": rt.kind, "apiVersion": rt.api_version,
                "metadata": {"creationTimestamp": None}, "spec": obj.get("spec", {}),
                "status": status}

    @staticmethod
    def body(req):
        try:
            obj = json.loads(req.body or b"null")
        except ValueError as e:
            raise ApiError(400, f"error decoding request body as JSON: {e}")
        if not isinstance(obj, (dict, list)):
            raise ApiError(400, "the request body must be a JSON object")
        return obj

    # ---- reads -------------------------------------------------------------

    def must_get(self, rt, namespace, name):
        obj = self.store.get(rt, namespace, name)
        if obj is None:
            raise not_found(rt, name)
        return obj

    def reply(self, req, rt, objects, single=False, list_meta=None):
        """Full object(s), or a meta.k8s.io/v1 Table when the client asks for one."""
        if wants(req.headers.get("accept"), "Table"):
            table = to_table(rt, objects, _query(req, "includeObject", "Metadata"), self.store.rv)
            if list_meta:
                table["metadata"].update(list_meta)
            return 200, table, "application/json"
        if single:
            return 200, objects[0], "application/json"
        items = objects
        if not rt.is_custom:   # typed core lists carry no kind/apiVersion per item
            items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                     for o in objects]
        meta = {"resourceVersion": str(self.store.rv)}
        meta.update(list_meta or {})
        return 200, {"kind": rt.kind + "List", "apiVersion": rt.api_version, "metadata": meta,
                     "items": items}, "application/json"

    def selected(self, req, rt, namespace):
        labels = parse_label_selector(_query(req, "labelSelector", ""))
        fields = parse_field_selector(rt, _query(req, "fieldSelector", ""))
        return [o for o in self.store.items(rt, namespace)
                if labels(o["metadata"].get("labels", {})) and fields(o)]

    def list(self, req, rt, namespace):
        objects = self.selected(req, rt, namespace)
        # Paging: `continue` is the opaque position after the last item returned.
        start = 0
        token = _query(req, "continue")
        if token:
            try:
                start = int(base64.urlsafe_b64decode(token.encode()).decode())
            except ValueError:
                raise ApiError(400, "continue key is not valid")
        limit = _number(req, "limit", 0)
        page = objects[start:start + limit] if limit > 0 else objects[start:]
        meta = {}
        if limit > 0 and start + limit < len(objects):
            meta["continue"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
            meta["remainingItemCount"] = len(objects) - start - limit
        return self.reply(req, rt, page, list_meta=meta)

    def watch(self, req, rt, namespace):
        """A chunked stream of watch events. Starts after `resourceVersion` when given
        (410 Gone if that is older than the event log), else with ADDED for every match."""
        labels = parse_label_selector(_query(req, "labelSelector", ""))
        fields = parse_field_selector(rt, _query(req, "fieldSelector", ""))
        timeout = _number(req, "timeoutSeconds", 1800, float)
        since = _query(req, "resourceVersion", "")
        with self.store.cond:
            if since and since != "0":
                if not since.isdigit() or int(since) < self.store.log_start:
                    raise ApiError(410, f"too old resource version: {since} "
                                        f"({self.store.rv})", "Expired")
                cursor = int(since)
                initial = []
            else:
                cursor = self.store.rv
                initial = [("ADDED", o) for o in self.store.items(rt, namespace)]

        def match(obj):
            return (namespace is None or obj["metadata"].get("namespace") == namespace) and \
                labels(obj["metadata"].get("labels", {})) and fields(obj)

        as_table = wants(req.headers.get("accept"), "Table")
        include = _query(req, "includeObject", "Metadata")

        def event(kind, obj):
            # `kubectl get -w` asks for Table events: one row per event.
            if as_table:
                obj = to_table(rt, [obj], include, obj["metadata"]["resourceVersion"])
            return {"type": kind, "object": obj}

        def stream():
            nonlocal cursor
            for kind, obj in initial:
                if match(obj):
                    yield event(kind, obj)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with self.store.cond:
                    self.store.cond.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                    if cursor < self.store.log_start:   # fell behind the event log
                        yield {"type": "ERROR", "object": ApiError(
                            410, f"too old resource version: {cursor}", "Expired").status()}
                        return
                    fresh = [e for e in self.store.events if e[0] > cursor]
                for rv, kind, ert, obj in fresh:
                    cursor = rv
                    if ert == rt and match(obj):
                        yield event(kind, obj)
        return 200, stream(), "application/json"

    # ---- writes ------------------------------------------------------------

    def check_kind(self, rt, obj):
        if not isinstance(obj, dict):
            raise ApiError(400, "the request body must be a JSON object")
        if "kind" not in obj or "apiVersion" not in obj:
            raise ApiError(400, "Object 'Kind' is missing in the request body")
        if (obj["apiVersion"], obj["kind"]) != (rt.api_version, rt.kind):
            raise ApiError(400, f"the API version in the data ({obj['apiVersion']}) and kind "
                                f"({obj['kind']}) do not match the expected "
                                f"{rt.api_version}, Kind={rt.kind}")

    def validate(self, rt, obj):
        """The few checks the real API server (or the CRD schema) would make."""
        name = obj["metadata"]["name"]
        pattern = LABEL_NAME_RE if rt is NAMESPACES else NAME_RE
        if len(name) > 253 or not pattern.match(name):
            raise invalid(rt, name, "metadata.name", name,
                          "a lowercase RFC 1123 name must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric "
                          "character")
        if rt is SECRETS:
            for key, value in obj.get("data", {}).items():
                try:
                    base64.b64decode(value, validate=True)
                except (ValueError, TypeError):
                    raise ApiError(400, f"illegal base64 data in data.{key}")
        if rt is ROLES:
            rules = obj.get("rules")
            if rules is not None and not isinstance(rules, list):
                raise ApiError(400, "rules: expected a list")
            for i, rule in enumerate(rules or []):
                for field in ("verbs", "apiGroups", "resources"):
                    value = rule.get(field)
                    if not isinstance(value, list) or not value or \
                            not all(isinstance(v, str) for v in value):
                        raise invalid(rt, name, f"rules[{i}].{field}", value,
                                      "at least one value is required")
        if rt is ROLEBINDINGS:
            ref = obj.get("roleRef") or {}
            if ref.get("apiGroup") != RBAC_GROUP or ref.get("kind") not in ("Role", "ClusterRole") \
                    or not ref.get("name"):
                raise invalid(rt, name, "roleRef", ref,
                              "roleRef needs apiGroup rbac.authorization.k8s.io, kind Role or "
                              "ClusterRole, and a name")
            for i, subject in enumerate(obj.get("subjects") or []):
                if subject.get("kind") not in ("ServiceAccount", "User", "Group") or \
                        not subject.get("name"):
                    raise invalid(rt, name, f"subjects[{i}]", subject,
                                  "a subject needs kind ServiceAccount, User or Group, and a name")
        if rt is PODS:
            containers = (obj.get("spec") or {}).get("containers")
            if not isinstance(containers, list) or not containers:
                raise invalid(rt, name, "spec.containers", containers, "Required value")
            for i, c in enumerate(containers):
                for field in ("name", "image"):
                    if not isinstance(c.get(field), str) or not c.get(field):
                        raise invalid(rt, name, f"spec.containers[{i}].{field}", c.get(field),
                                      "Required value")
        if rt is CRONJOBS:
            self.validate_cronjob(rt, name, obj)
        if rt is JOBS:
            self.validate_job_spec(rt, name, obj.get("spec"), "spec")
        if rt is MENDIXAPPS and "replicas" in obj.get("spec", {}):
            replicas = obj["spec"]["replicas"]
            if isinstance(replicas, bool) or not isinstance(replicas, int):
                raise invalid(rt, name, "spec.replicas", replicas,
                              "spec.replicas in body must be of type integer")
            if replicas < 0:
                raise invalid(rt, name, "spec.replicas", replicas,
                              "spec.replicas in body should be greater than or equal to 0")
        if rt is SECRETPROVIDERCLASSES:
            strict_check(dict(SCHEMAS[rt.kind], apiVersion=STR, kind=STR, metadata=_METADATA),
                         obj, "")
            provider = (obj.get("spec") or {}).get("provider")
            if provider not in ("aws", "azure", "gcp", "vault"):
                raise invalid(rt, name, "spec.provider", provider,
                              'supported values: "aws", "azure", "gcp", "vault"')

    def validate_job_spec(self, rt, name, spec, path):
        """What the API server checks of a Job spec (also a CronJob's jobTemplate)."""
        if not isinstance(spec, dict):
            raise invalid(rt, name, path, spec, "Required value")
        for field in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
            value = spec.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < (1 if field == "activeDeadlineSeconds" else 0)):
                raise invalid(rt, name, f"{path}.{field}", value,
                              "must be greater than or equal to "
                              f"{1 if field == 'activeDeadlineSeconds' else 0}")
        pod = (spec.get("template") or {}).get("spec")
        containers = (pod or {}).get("containers")
        if not isinstance(containers, list) or not containers:
            raise invalid(rt, name, f"{path}.template.spec.containers", containers, "Required value")
        for i, c in enumerate(containers):
            for field in ("name", "image"):
                if not isinstance(c.get(field), str) or not c.get(field):
                    raise invalid(rt, name, f"{path}.template.spec.containers[{i}].{field}",
                                  c.get(field), "Required value")
        if pod.get("restartPolicy") not in ("Never", "OnFailure"):
            raise invalid(rt, name, f"{path}.template.spec.restartPolicy", pod.get("restartPolicy"),
                          'Unsupported value: supported values: "OnFailure", "Never"')

    def validate_cronjob(self, rt, name, obj):
        if len(name) > 52:
            raise invalid(rt, name, "metadata.name", name, "must be no more than 52 characters")
        spec = obj.get("spec") or {}
        schedule = spec.get("schedule")
        fields = schedule.split() if isinstance(schedule, str) else []
        if not (len(fields) == 5 or (len(fields) == 1 and fields[0].startswith("@"))) or \
                not all(re.match(r"^[A-Za-z0-9*/,?@-]+$", f) for f in fields):
            raise invalid(rt, name, "spec.schedule", schedule, "unparseable cron schedule")
        tz = spec.get("timeZone")
        if tz is not None and (not re.match(r"^[A-Za-z_][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$", tz)
                               or not os.path.isfile(os.path.join("/usr/share/zoneinfo", tz))):
            raise invalid(rt, name, "spec.timeZone", tz, "unknown time zone " + str(tz))
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy not in ("Allow", "Forbid", "Replace"):
            raise invalid(rt, name, "spec.concurrencyPolicy", policy,
                          'Unsupported value: supported values: "Allow", "Forbid", "Replace"')
        for field in ("startingDeadlineSeconds", "successfulJobsHistoryLimit",
                      "failedJobsHistoryLimit"):
            value = spec.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise invalid(rt, name, f"spec.{field}", value,
                              "must be greater than or equal to 0")
        self.validate_job_spec(rt, name, (spec.get("jobTemplate") or {}).get("spec"),
                               "spec.jobTemplate.spec")

    @staticmethod
    def normalise(rt, obj):
        """Defaults the API server fills in on every write."""
        if rt is SECRETS:
            if not obj.get("type"):
                obj["type"] = "Opaque"
            string_data = obj.pop("stringData", None) or {}
            if string_data:
                obj.setdefault("data", {})
                for k, v in string_data.items():
                    obj["data"][k] = base64.b64encode(v.encode()).decode()
        elif rt is NAMESPACES:
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = \
                obj["metadata"]["name"]
        elif rt is PODS:
            obj.setdefault("status", {"phase": "Pending"})

    def create(self, rt, namespace, obj, dry_run=False):
        self.check_kind(rt, obj)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if namespace is None:
                raise ApiError(405, "the server does not allow this method on the requested "
                                    "resource")
            if meta.get("namespace", namespace) != namespace:
                raise ApiError(400, "the namespace of the provided object does not match the "
                                    "namespace sent on the request")
            if self.store.get(NAMESPACES, None, namespace) is None:
                raise not_found(NAMESPACES, namespace)
            meta["namespace"] = namespace
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(rt, "", "metadata.name", "", "name or generateName is required")
            meta["name"] = meta["generateName"] + random_suffix()
        if self.store.get(rt, namespace, meta["name"]) is not None:
            raise already_exists(rt, meta["name"])
        if rt.status_subresource:
            obj.pop("status", None)   # only the /status subresource sets status
        self.normalise(rt, obj)
        self.validate(rt, obj)
        for k in ("resourceVersion", "deletionTimestamp"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.is_custom:
            meta["generation"] = 1
        if rt is PODS:
            self.azure_workload_identity(obj)
        if dry_run:
            return obj
        return self.store.put(rt, obj, created=True)

    def azure_workload_identity(self, pod):
        """What Azure Workload Identity's mutating webhook does to a pod created with the
        label azure.workload.identity/use: "true" (through the API, or by the Job
        controller or the operator: the webhook sees every pod) whose ServiceAccount is annotated
        azure.workload.identity/client-id: each container gets AZURE_CLIENT_ID,
        AZURE_TENANT_ID (the annotation azure.workload.identity/tenant-id, else the
        webhook's own, from STATE_DIR/azure-webhook.json), AZURE_FEDERATED_TOKEN_FILE
        and AZURE_AUTHORITY_HOST (likewise), and the projected token volume they name (audience
        api://AzureADTokenExchange, an hour). A pod without the label, or whose
        ServiceAccount has no client id, is left as it is, as the webhook leaves it."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if (meta.get("labels") or {}).get("azure.workload.identity/use") != "true":
            return
        account = self.store.get(SERVICEACCOUNTS, meta["namespace"],
                                 spec.get("serviceAccountName") or "default") or {}
        annotations = (account.get("metadata") or {}).get("annotations") or {}
        client_id = annotations.get("azure.workload.identity/client-id")
        if not client_id:
            return
        try:   # the webhook's own settings, written by tests/stack/up once the tenant is made
            with open(self.azure_webhook_conf) as f:
                conf = json.load(f)
        except (AttributeError, OSError, ValueError):
            conf = {}
        tenant = annotations.get("azure.workload.identity/tenant-id") or conf.get("tenant_id", "")
        token_dir = "/var/run/secrets/azure/tokens"
        env = [{"name": "AZURE_CLIENT_ID", "value": client_id},
               {"name": "AZURE_TENANT_ID", "value": tenant},
               {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": token_dir + "/azure-identity-token"},
               {"name": "AZURE_AUTHORITY_HOST",
                "value": conf.get("authority_host", "https://login.microsoftonline.com/")}]
        for c in spec.get("containers") or []:
            names = {e.get("name") for e in c.get("env") or []}
            c["env"] = list(c.get("env") or []) + [e for e in env if e["name"] not in names]
            c["volumeMounts"] = list(c.get("volumeMounts") or []) + [
                {"name": "azure-identity-token", "mountPath": token_dir, "readOnly": True}]
        spec["volumes"] = list(spec.get("volumes") or []) + [{"name": "azure-identity-token", "projected": {
            "defaultMode": 420, "sources": [{"serviceAccountToken": {
                "audience": AZURE_AUDIENCE, "expirationSeconds": 3600, "path": "azure-identity-token"}}]}}]

    def apply_write(self, rt, old, new, subresource, dry_run):
        """Shared tail of update and patch: identity fields, optimistic concurrency,
        status subresource rules, validation, store."""
        self.check_kind(rt, new)
        meta = new.setdefault("metadata", {})
        name = old["metadata"]["name"]
        if meta.get("name", name) != name:
            raise ApiError(400, f'the name of the object ({meta.get("name")}) does not match '
                                f"the name on the URL ({name})")
        if meta.get("resourceVersion") not in (None, old["metadata"]["resourceVersion"]):
            raise conflict(rt, name)
        if rt.status_subresource:
            if subresource == "status":
                new = dict(copy.deepcopy(old), status=new.get("status"))
                if new["status"] is None:
                    del new["status"]
                meta = new["metadata"]
            elif "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                  "generation"):
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
            else:
                meta.pop(k, None)
        if rt.is_custom and new.get("spec") != old.get("spec"):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        self.normalise(rt, new)
        self.validate(rt, new)
        if dry_run:
            return new
        if new == old:
            return old   # a write that changes nothing keeps its resourceVersion
        return self.store.put(rt, new)

    def update(self, rt, namespace, name, subresource, obj, dry_run):
        old = self.must_get(rt, namespace, name)
        return self.apply_write(rt, old, copy.deepcopy(obj), subresource, dry_run)

    def patch(self, req, rt, namespace, name, subresource, dry_run):
        ctype = req.headers.get("content-type", "").split(";")[0].strip()
        if ctype not in PATCH_TYPES or (ctype == STRATEGIC and rt.is_custom):
            accepted = [t for t in PATCH_TYPES if t != STRATEGIC or not rt.is_custom]
            raise ApiError(415, "the body of the request was in an unknown format - accepted "
                                f"media types include: {', '.join(accepted)}")
        if ctype == "application/apply-patch+yaml":
            raise ApiError(415, "server-side apply (application/apply-patch+yaml) is not "
                                "supported by this emulator; use a merge or JSON patch")
        body = self.body(req)
        old = self.must_get(rt, namespace, name)
        if ctype == "application/merge-patch+json" or (
                ctype == STRATEGIC and not rt.is_custom):
            # Strategic merge on built-in types is served as a plain merge patch:
            # equal for maps, approximate for lists (they are replaced, not merged by key).
            if not isinstance(body, dict):
                raise ApiError(400, "a merge patch must be a JSON object")
            new = merge_patch(old, body)
        else:
            try:
                new = json_patch(old, body)
            except ValueError as e:
                raise ApiError(400, str(e))
            except PatchError as e:
                raise ApiError(422, str(e))
        return self.apply_write(rt, old, new, subresource, dry_run)

    def delete(self, req, rt, namespace, name, dry_run):
        obj = self.must_get(rt, namespace, name)
        options = self.body(req) if req.body.strip() else {}
        grace = options.get("gracePeriodSeconds") if isinstance(options, dict) else None
        if _query(req, "gracePeriodSeconds") is not None:
            grace = _number(req, "gracePeriodSeconds", 0)
        if dry_run:
            return obj
        if rt is PODS and (grace is None or grace > 0):
            if obj["metadata"].get("deletionTimestamp"):
                return obj   # already terminating
            wait = self.grace if grace is None else min(grace, self.grace)
            return self.store.mark_terminating(obj, wait, time.time())
        if rt is SERVICEACCOUNTS:   # its tokens are bound to it
            user = f"system:serviceaccount:{namespace}:{name}"
            for token in [t for t, u in self.auth.sa_tokens.items() if u.name == user]:
                del self.auth.sa_tokens[token]
        if rt is NAMESPACES:
            for other in (SECRETS, PODS, SERVICEACCOUNTS, ROLES, ROLEBINDINGS, MENDIXAPPS,
                          STORAGEINSTANCES, SECRETPROVIDERCLASSES):
                for child in self.store.items(other, name):
                    self.store.remove(other, child)
        return self.store.remove(rt, obj)


def random_suffix(n=5):
    # The alphabet Kubernetes uses for generated names (no vowels, no look-alikes).
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


# --------------------------------------------------------------------------
# The operator: pods follow MendixApp spec.replicas
# --------------------------------------------------------------------------

class Operator(threading.Thread):
    """Reconciles every MendixApp's pods, after `delay` seconds, the way a Deployment
    managed by the Mendix operator would: new pods appear Running, surplus pods go
    Terminating for `delay` seconds and then disappear. Pods whose MendixApp is gone
    are garbage-collected at once (ownerReferences)."""

    def __init__(self, store, delay, admit=lambda pod: None):
        super().__init__(daemon=True)
        self.store = store
        self.delay = delay
        self.admit = admit   # the pods' mutating webhook
        self.pending = {}   # app uid -> (desired replicas, time to act)

    def run(self):
        while True:
            time.sleep(0.05)
            try:
                with self.store.cond:
                    self.reconcile(time.time())
            except Exception as e:   # keep the loop alive; the access log shows requests
                print(f"operator: {e!r}", file=sys.stderr, flush=True)

    def reconcile(self, now):
        apps = {a["metadata"]["uid"]: a for a in self.store.items(MENDIXAPPS)}
        for pod in self.store.items(PODS):
            meta = pod["metadata"]
            owners = [o["uid"] for o in meta.get("ownerReferences", [])
                      if o.get("kind") == "MendixApp"]
            if owners and owners[0] not in apps:
                self.store.remove(PODS, pod)
            elif meta.get("deletionTimestamp"):
                due = self.store.remove_at.get(meta["uid"]) or \
                    parse_rfc3339(meta["deletionTimestamp"])   # after a restart
                if now >= due:
                    self.store.remove(PODS, pod)
            elif not owners and "job-name" not in meta.get("labels", {}) and \
                    pod.get("status", {}).get("phase", "Pending") == "Pending" and \
                    now >= parse_rfc3339(meta["creationTimestamp"]) + self.delay:
                self.start_pod(pod, now, parse_rfc3339(meta["creationTimestamp"]))
        for uid, app in apps.items():
            self.reconcile_app(app, now)
        for uid in list(self.pending):
            if uid not in apps:
                del self.pending[uid]

    def reconcile_app(self, app, now):
        uid = app["metadata"]["uid"]
        desired = app.get("spec", {}).get("replicas", 1)
        pods = [p for p in self.store.items(PODS, app["metadata"]["namespace"])
                if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))
                and not p["metadata"].get("deletionTimestamp")]
        if len(pods) == desired:
            self.pending.pop(uid, None)
            return
        want, due = self.pending.get(uid, (None, 0))
        if want != desired:
            self.pending[uid] = (desired, now + self.delay)
            return
        if now < due:
            return
        del self.pending[uid]
        for _ in range(desired - len(pods)):
            pod = self.new_pod(app, now)
            self.admit(pod)
            self.store.put(PODS, pod, created=True)
        # Scale down newest first, as a ReplicaSet does among equally ready pods.
        surplus = sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"],
                         reverse=True)[:max(0, len(pods) - desired)]
        for pod in surplus:
            self.store.mark_terminating(pod, self.delay, now)

    # The one node: its labels, for a pod's nodeSelector.
    NODE = "mxpc-stack-node"
    NODE_LABELS = {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
                   "kubernetes.io/arch": "amd64"}

    def why_not_started(self, pod, now, created):
        """What keeps a pod Pending, as the scheduler and the kubelet report it: a
        nodeSelector no node matches (PodScheduled=False, Unschedulable); an image
        whose registry host ends in .invalid (RFC 2606: never resolves), which is
        how a test marks an image as unpullable (ErrImagePull, then
        ImagePullBackOff); an env var from a missing Secret
        (CreateContainerConfigError). None when it can start."""
        spec = pod["spec"]
        selector = spec.get("nodeSelector") or {}
        if any(self.NODE_LABELS.get(k) != v for k, v in selector.items()):
            return {"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "lastTransitionTime": now_rfc3339(created),
                "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
                           "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."}]}
        waiting = {}
        for c in spec["containers"]:
            host = c["image"].split("/")[0] if "/" in c["image"] else ""
            if host.split(":")[0].endswith(".invalid"):
                if now < created + 2 * self.delay:
                    waiting[c["name"]] = ("ErrImagePull",
                        f'failed to pull and unpack image "{c["image"]}": failed to resolve reference '
                        f'"{c["image"]}": dial tcp: lookup {host.split(":")[0]}: no such host')
                else:
                    waiting[c["name"]] = ("ImagePullBackOff", f'Back-off pulling image "{c["image"]}"')
                continue
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional") and \
                        not self.store.get(SECRETS, pod["metadata"]["namespace"], ref.get("name")):
                    waiting[c["name"]] = ("CreateContainerConfigError", f'secret "{ref.get("name")}" not found')
        if not waiting:
            return None
        return {"phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True"},
                               {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "containerStatuses": [
                    {"name": c["name"], "image": c["image"], "ready": False, "restartCount": 0,
                     "started": False,
                     "state": {"waiting": {"reason": waiting[c["name"]][0], "message": waiting[c["name"]][1]}}
                     if c["name"] in waiting else {"running": {"startedAt": now_rfc3339(created)}}}
                    for c in spec["containers"]]}

    def start_pod(self, pod, now, created):
        """A pod created directly (not by an app) is scheduled and its containers
        start, unless something keeps it Pending (why_not_started)."""
        pod = copy.deepcopy(pod)
        pending = self.why_not_started(pod, now, created)
        if pending:
            if pod.get("status") != pending:
                pod["status"] = pending
                self.store.put(PODS, pod)
            return
        pod["spec"].setdefault("nodeName", "mxpc-stack-node")
        pod["status"] = {"phase": "Running", "podIP": "10.244.1." + str(random.randint(2, 254)),
                         "startTime": now_rfc3339(now),
                         "conditions": [{"type": "Ready", "status": "True"}],
                         "containerStatuses": [{"name": c["name"], "image": c["image"],
                                                "ready": True, "restartCount": 0,
                                                "started": True}
                                               for c in pod["spec"]["containers"]]}
        self.store.put(PODS, pod)

    def new_pod(self, app, now):
        meta = app["metadata"]
        name = meta["name"]
        template_hash = hashlib.sha256(meta["uid"].encode()).hexdigest()[:10]
        created = now_rfc3339(now)
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": f"{name}-master-{template_hash}-{random_suffix()}",
                "namespace": meta["namespace"],
                "uid": str(uuid.uuid4()),
                "creationTimestamp": created,
                "labels": {APP_LABEL: name, "pod-template-hash": template_hash},
                "ownerReferences": [{"apiVersion": f"{MENDIX_GROUP}/v1alpha1",
                                     "kind": "MendixApp", "name": name, "uid": meta["uid"],
                                     "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {"containers": [{"name": "mendix", "image": f"mendix/{name}:latest"}],
                     "nodeName": "mxpc-stack-node"},
            "status": {"phase": "Running", "podIP": "10.244.0." + str(random.randint(2, 254)),
                       "startTime": created,
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "mendix", "ready": True,
                                              "restartCount": 0, "started": True}]},
        }


# --------------------------------------------------------------------------
# Jobs: the Job controller, and a kubelet that runs their pods' containers
# --------------------------------------------------------------------------

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"   # where pods see their token


class Kubelet:
    """Runs a Job pod's first container as a kubelet would, on this host: its command
    and args, its env, the service account's token in a directory the program is
    told of (MXPC_K8S_SA_DIR; in an image it is /var/run/secrets/kubernetes.io/
    serviceaccount), the API server as KUBERNETES_SERVICE_HOST/PORT, EKS's web
    identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE) when the service account
    is annotated with eks.amazonaws.com/role-arn, projected service account token
    volumes (the one Azure Workload Identity's webhook adds: the token at the
    container's mountPath, and in host runs its variables pointing at the host's
    copy), as the pod's user (runAsUser) when this runs as root. What an image holds
    comes from DIR/kubelet.json, which tests write:

        {"images": {"IMAGE": {"path": [DIR, ...], "env": {NAME: VALUE},
                              "root": DIR, "files": {PATH: HOST_FILE}}}}

    path: where the image's programs are (its PATH); env: the image's environment.
    root (optional): the image's root filesystem; the container then runs in it
    (run_in_root), with the token at SA_MOUNT, and files copied into its volumes.
    An image not listed cannot be pulled: the pod waits (ErrImagePull)."""

    logs = {}   # pod uid -> log file

    def __init__(self, state_dir, conf, api):
        self.dir = os.path.join(state_dir, "kubelet")
        self.conf_path = os.path.join(state_dir, "kubelet.json")
        self.port = conf["port"]
        self.ca = conf["client_ca"]
        self.api = api
        self.procs = {}   # pod uid -> Popen

    @classmethod
    def log_of(cls, pod):
        path = cls.logs.get(pod["metadata"]["uid"])
        if not path or not os.path.exists(path):
            return b""
        with open(path, "rb") as f:
            return f.read()

    def image(self, name):
        try:
            with open(self.conf_path) as f:
                return json.load(f).get("images", {}).get(name)
        except (OSError, ValueError):
            return None

    def start(self, store, pod):
        """Called with the store locked: starts the container, or leaves the pod waiting."""
        spec = pod["spec"]
        c = spec["containers"][0]
        image = self.image(c["image"])
        if image is None:
            pod["status"] = {"phase": "Pending", "containerStatuses": [{
                "name": c["name"], "image": c["image"], "ready": False, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull",
                                      "message": f"image {c['image']} not found"}}}]}
            return store.put(PODS, pod, created=True)
        ns, uid = pod["metadata"]["namespace"], pod["metadata"]["uid"]
        sa_name = spec.get("serviceAccountName") or "default"
        sec = dict(spec.get("securityContext") or {}, **(c.get("securityContext") or {}))
        run_as = sec.get("runAsUser")
        if sec.get("runAsNonRoot") and not run_as:
            pod["status"] = {"phase": "Pending", "containerStatuses": [{
                "name": c["name"], "ready": False, "restartCount": 0, "state": {"waiting": {
                    "reason": "CreateContainerConfigError",
                    "message": "container has runAsNonRoot and image will run as root"}}}]}
            return store.put(PODS, pod, created=True)
        pod_dir = os.path.join(self.dir, uid)
        sa_dir = os.path.join(pod_dir, "serviceaccount")
        os.makedirs(sa_dir, exist_ok=True)
        token = secrets.token_hex(24)
        self.api.auth.sa_tokens[token] = User(f"system:serviceaccount:{ns}:{sa_name}", (
            "system:serviceaccounts", f"system:serviceaccounts:{ns}"))
        files = {"token": token, "namespace": ns}
        with open(self.ca) as f:
            files["ca.crt"] = f.read()
        env = dict(image.get("env") or {})
        env["PATH"] = ":".join(list(image.get("path") or []) + ["/usr/bin", "/bin"])
        image_root = image.get("root")   # the image's root filesystem: run in it (needs root)
        seen_sa_dir = SA_MOUNT if image_root else sa_dir   # where the pod sees the token
        env.update({"HOSTNAME": pod["metadata"]["name"], "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                    "KUBERNETES_SERVICE_PORT": str(self.port)})
        if not image_root:
            env["MXPC_K8S_SA_DIR"] = sa_dir
        account = store.get(SERVICEACCOUNTS, ns, sa_name) or {}
        role_arn = ((account.get("metadata") or {}).get("annotations") or {}).get(
            "eks.amazonaws.com/role-arn")
        if role_arn:   # what EKS's pod identity webhook adds
            files["eks-token"] = oidc.service_account_token(
                self.api.oidc_key, "https://" + self.api.address, ns, sa_name,
                "sts.amazonaws.com", 86400)
            env.update({"AWS_ROLE_ARN": role_arn,
                        "AWS_WEB_IDENTITY_TOKEN_FILE": os.path.join(seen_sa_dir, "eks-token"),
                        "AWS_STS_REGIONAL_ENDPOINTS": "regional"})
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = e["value"]
        projected = self.projected_tokens(spec, c, ns, sa_name, pod_dir)
        if not image_root:   # no mount namespace: the variables name the host's copy
            for k, v in env.items():
                for mount_path, host_dir in projected.items():
                    if v == mount_path or v.startswith(mount_path.rstrip("/") + "/"):
                        env[k] = host_dir + v[len(mount_path.rstrip("/")):]
        for name, text in files.items():
            with open(os.path.join(sa_dir, name), "w") as f:
                f.write(text)
        as_root = os.geteuid() == 0
        gid = sec.get("runAsGroup", run_as)
        if as_root and run_as:
            for path in [pod_dir, sa_dir] + [os.path.join(sa_dir, n) for n in files]:
                os.chown(path, run_as, gid or 0)
            for host_dir in projected.values():
                for path in [os.path.dirname(host_dir), host_dir] + [
                        os.path.join(host_dir, n) for n in os.listdir(host_dir)]:
                    os.chown(path, run_as, gid or 0)
        log_path = os.path.join(pod_dir, "log")
        Kubelet.logs[uid] = log_path
        argv = list(c.get("command") or []) + list(c.get("args") or [])
        log = open(log_path, "wb")
        try:
            if image_root:
                proc = self.run_in_root(image_root, image, c, spec, sa_dir, env, argv, run_as, gid,
                                        log, projected)
            else:
                program = shutil.which(argv[0], path=env["PATH"]) if argv else None
                workdir = c.get("workingDir") if os.path.isdir(c.get("workingDir") or "") else "/"
                if not program:
                    raise FileNotFoundError(f"exec: {argv[:1]}: executable file not found in $PATH")
                proc = subprocess.Popen([program] + argv[1:], env=env, cwd=workdir,
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        user=run_as if as_root and run_as else None,
                                        group=gid if as_root and run_as else None,
                                        extra_groups=[] if as_root and run_as else None)
        except OSError as e:
            log.write(str(e).encode() + b"\n")
            log.close()
            pod["status"] = {"phase": "Failed", "containerStatuses": [{
                "name": c["name"], "ready": False, "restartCount": 0, "state": {"terminated": {
                    "exitCode": 128, "reason": "StartError", "message": str(e)}}}]}
            return store.put(PODS, pod, created=True)
        log.close()
        self.procs[uid] = proc
        started = now_rfc3339()
        pod["status"] = {"phase": "Running", "startTime": started, "podIP": "10.244.2.7",
                         "containerStatuses": [{"name": c["name"], "image": c["image"],
                                                "ready": True, "restartCount": 0, "started": True,
                                                "state": {"running": {"startedAt": started}}}]}
        return store.put(PODS, pod, created=True)

    def projected_tokens(self, spec, c, ns, sa_name, pod_dir):
        """The container's projected volumes of service account tokens, each token
        written (RS256 by the issuer, the source's audience and expirationSeconds) into
        a directory of the pod's: {mountPath: that directory}. (A kubelet renews them
        at 80% of their lifetime; a job here ends long before.)"""
        volumes = {v["name"]: v["projected"] for v in spec.get("volumes") or [] if "projected" in v}
        mounts = {}
        for m in c.get("volumeMounts") or []:
            projected = volumes.get(m.get("name"))
            if projected is None:
                continue
            host_dir = os.path.join(pod_dir, "volumes", m["name"])
            os.makedirs(host_dir, exist_ok=True)
            for source in projected.get("sources") or []:
                t = source.get("serviceAccountToken")
                if t:
                    write_private(os.path.join(host_dir, t["path"]), oidc.service_account_token(
                        self.api.oidc_key, "https://" + self.api.address, ns, sa_name,
                        t.get("audience") or "https://kubernetes.default.svc",
                        t.get("expirationSeconds", 3600)))
            mounts[m["mountPath"]] = host_dir
        return mounts

    def run_in_root(self, root, image, c, spec, sa_dir, env, argv, uid, gid, log, projected=None):
        """The container in the image's root, as a container runtime would: a private
        mount namespace, the root bind-mounted (read-only with readOnlyRootFilesystem),
        an emptyDir volume as a tmpfs at its mountPath, /proc, /dev/null, /dev/zero,
        /dev/random and /dev/urandom, the service account's
        directory at SA_MOUNT, projected token volumes (read-only) at their mountPath,
        the image's "files" copied into a volume (like a ConfigMap), then chroot as the
        pod's user."""
        if os.geteuid() != 0:
            raise PermissionError("an image root needs the emulator to run as root")
        sec = c.get("securityContext") or {}
        empty = {v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v}
        tmpfs = [m["mountPath"] for m in c.get("volumeMounts") or [] if m.get("name") in empty]
        script = r"""
set -e
root=$1 sa=$2 ro=$3
shift 3
mount --bind "$root" "$root"
[ "$ro" = 1 ] && mount -o remount,bind,ro "$root"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=755,size=64k tmpfs "$root/dev"   # the devices every container has
for d in null zero random urandom; do touch "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
mount --bind "$sa" "$root/""" + SA_MOUNT.lstrip("/") + r""""
mount -o remount,bind,ro "$root/""" + SA_MOUNT.lstrip("/") + r""""
while [ "$1" != -- ]; do
  case $1 in
    tmpfs=*) mount -t tmpfs -o mode=1777,size=1g tmpfs "$root${1#tmpfs=}" ;;
    bind=*) spec=${1#bind=}; mount --bind "${spec#*:}" "$root${spec%%:*}"
      mount -o remount,bind,ro "$root${spec%%:*}" ;;
    file=*) spec=${1#file=}; cp "${spec#*:}" "$root${spec%%:*}"; chmod 0644 "$root${spec%%:*}" ;;
  esac
  shift
done
shift
exec "$@"
"""
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        workdir = c.get("workingDir") or "/"
        user = f"--userspec={uid}:{gid}" if uid else "--userspec=0:0"
        args = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "kubelet",
                root, sa_dir, "1" if sec.get("readOnlyRootFilesystem") else "0"]
        args += [f"tmpfs={m}" for m in tmpfs]
        for mount_path, host_dir in (projected or {}).items():
            # its mount point, made in the root as a container runtime makes it
            os.makedirs(os.path.join(root, mount_path.lstrip("/")), exist_ok=True)
            args.append(f"bind={mount_path}:{host_dir}")
        args += [f"file={dst}:{src}" for dst, src in (image.get("files") or {}).items()]
        # chroot, then the working directory and the program by the image's PATH
        args += ["--", "/usr/bin/env", "-i"] + [f"{k}={v}" for k, v in env.items()] + [
            chroot, user, root, "/bin/sh", "-c", 'cd "$0" && exec "$@"', workdir] + argv
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def finished(self, store, pod):
        """Called with the store locked: the pod's status once its process ended, else None."""
        proc = self.procs.get(pod["metadata"]["uid"])
        if proc is None or proc.poll() is None:
            return None
        del self.procs[pod["metadata"]["uid"]]
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        c = pod["spec"]["containers"][0]
        pod = copy.deepcopy(pod)
        pod["status"] = dict(pod["status"], phase="Succeeded" if code == 0 else "Failed")
        pod["status"]["containerStatuses"] = [{
            "name": c["name"], "image": c["image"], "ready": False, "restartCount": 0,
            "started": False, "state": {"terminated": {
                "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "finishedAt": now_rfc3339()}}}]
        return store.put(PODS, pod)

    def kill(self, pod):
        proc = self.procs.get(pod["metadata"]["uid"])
        if proc is not None and proc.poll() is None:
            proc.terminate()


class JobController(threading.Thread):
    """Jobs (batch/v1) as the Job controller runs them: one pod at a time from the
    template, a new one after a failure until backoffLimit (default 6) failures,
    activeDeadlineSeconds, the Complete or Failed condition, and the Job deleted
    ttlSecondsAfterFinished after it finished."""

    def __init__(self, store, kubelet):
        super().__init__(daemon=True)
        self.store = store
        self.kubelet = kubelet
        self.admit = kubelet.api.azure_workload_identity   # the pods' mutating webhook

    def run(self):
        while True:
            time.sleep(0.1)
            try:
                with self.store.cond:
                    self.reconcile(time.time())
            except Exception as e:   # keep the loop alive
                print(f"jobs: {e!r}", file=sys.stderr, flush=True)
                traceback.print_exc()

    def pods_of(self, job):
        uid = job["metadata"]["uid"]
        return [p for p in self.store.items(PODS, job["metadata"]["namespace"])
                if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))]

    def reconcile(self, now):
        # garbage collection: Jobs of a deleted CronJob, pods of a deleted Job
        cronjobs = {c["metadata"]["uid"] for c in self.store.items(CRONJOBS)}
        for job in self.store.items(JOBS):
            owners = [o["uid"] for o in job["metadata"].get("ownerReferences", [])
                      if o.get("kind") == "CronJob"]
            if owners and owners[0] not in cronjobs:
                self.store.remove(JOBS, job)
        jobs = {j["metadata"]["uid"] for j in self.store.items(JOBS)}
        for pod in self.store.items(PODS):
            owners = [o["uid"] for o in pod["metadata"].get("ownerReferences", [])
                      if o.get("kind") == "Job"]
            if owners and owners[0] not in jobs:
                self.kubelet.kill(pod)
                self.store.remove(PODS, pod)
        for job in self.store.items(JOBS):
            self.reconcile_job(job, now)

    def reconcile_job(self, job, now):
        meta, spec = job["metadata"], job.get("spec") or {}
        status = copy.deepcopy(job.get("status") or {})
        done = [c for c in status.get("conditions", []) if c.get("type") in ("Complete", "Failed")]
        pods = self.pods_of(job)
        for pod in pods:
            if pod["status"].get("phase") == "Running":
                self.kubelet.finished(self.store, pod)
        pods = self.pods_of(job)
        if done:
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None and now >= parse_rfc3339(status["completionTime"]) + ttl:
                for pod in pods:
                    self.store.remove(PODS, pod)
                self.store.remove(JOBS, job)
            return
        if "selector" not in spec:   # what the API server sets on create
            job = copy.deepcopy(job)
            labels = {"batch.kubernetes.io/controller-uid": meta["uid"],
                      "controller-uid": meta["uid"], "job-name": meta["name"],
                      "batch.kubernetes.io/job-name": meta["name"]}
            job["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid":
                                                       meta["uid"]}}
            tmeta = job["spec"]["template"].setdefault("metadata", {})
            tmeta["labels"] = dict(tmeta.get("labels") or {}, **labels)
            self.store.put(JOBS, job)
            return
        phases = [p["status"].get("phase") for p in pods]
        active = [p for p in pods if p["status"].get("phase") in ("Pending", "Running")]
        status.update({"active": len(active), "succeeded": phases.count("Succeeded"),
                       "failed": phases.count("Failed")})
        status.setdefault("startTime", now_rfc3339(now))
        condition = None
        if status["succeeded"]:
            condition = ("Complete", "Completed", "")
        elif status["failed"] > spec.get("backoffLimit", 6):
            condition = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif spec.get("activeDeadlineSeconds") is not None and \
                now >= parse_rfc3339(status["startTime"]) + spec["activeDeadlineSeconds"]:
            for pod in active:
                self.kubelet.kill(pod)
                self.store.remove(PODS, pod)
            condition = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        elif not active:
            pod = self.new_pod(job, now)
            self.admit(pod)
            self.kubelet.start(self.store, pod)
            status["active"] = 1
        if condition:
            status["active"] = 0
            status["completionTime"] = now_rfc3339(now)
            status["conditions"] = [{"type": condition[0], "status": "True", "reason": condition[1],
                                     "message": condition[2], "lastTransitionTime": now_rfc3339(now)}]
        if status != job.get("status"):
            job = copy.deepcopy(job)
            job["status"] = status
            self.store.put(JOBS, job)

    def new_pod(self, job, now):
        meta, template = job["metadata"], job["spec"]["template"]
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{random_suffix()}", "namespace": meta["namespace"],
                "uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339(now),
                "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True,
                                     "blockOwnerDeletion": True}]},
            "spec": dict(copy.deepcopy(template["spec"]), nodeName="mxpc-stack-node"),
            "status": {"phase": "Pending"},
        }


# --------------------------------------------------------------------------
# Outages, for tests
# --------------------------------------------------------------------------

class Faults:
    """Test-only outages, armed by writing a JSON file (DIR/fault.json, named by
    MXPC_K8S_FAULT_FILE in env.sh):

        {"mode": "503" | "drop", "seconds": N, "match": REGEX}

    The outage starts with the first request whose "METHOD PATH BODY" matches
    REGEX (at once without "match"); the file is then removed, so it fires once.
    For N seconds every request is answered 503 ServiceUnavailable ("503") or has
    its connection closed without an answer ("drop"). A new file replaces the
    outage under way ("seconds": 0 ends it)."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.until = 0.0
        self.mode = None

    def check(self, method, path, body):
        """The outage mode for this request, or None."""
        with self.lock:
            now = time.monotonic()
            try:
                with open(self.path) as f:
                    spec = json.load(f)
            except (OSError, ValueError):
                spec = None
            text = f"{method} {path} {body.decode('utf-8', 'replace')}"
            if spec is not None and (not spec.get("match") or re.search(spec["match"], text)):
                os.remove(self.path)
                self.mode = str(spec.get("mode", "503"))
                self.until = now + float(spec.get("seconds", 1))
            return self.mode if now < self.until else None


# --------------------------------------------------------------------------
# HTTP(S) server
# --------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mxpc-stack-k8s"
    sys_version = ""

    def do_GET(self):
        self.serve("GET")

    def do_POST(self):
        self.serve("POST")

    def do_PUT(self):
        self.serve("PUT")

    def do_PATCH(self):
        self.serve("PATCH")

    def do_DELETE(self):
        self.serve("DELETE")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def serve(self, method):
        started = time.monotonic()
        url = urlsplit(self.path)
        user = None
        try:
            body = self.read_body()
            fault = self.server.faults.check(method, self.path, body)
            if fault == "drop":
                self.close_connection = True
                self.server.log(f"- {method} {self.path} dropped (test outage)")
                return
            if fault:
                raise ApiError(503, "the server is currently unable to handle the request (test outage)",
                               "ServiceUnavailable")
            user = self.server.auth.authenticate(self.connection.getpeercert(),
                                                 self.headers.get("Authorization"), url.path)
            req = Request(method, url.path, parse_qs(url.query),
                          {k.lower(): v for k, v in self.headers.items()}, body, user)
            code, payload, ctype = self.server.api.handle(req)
        except ApiError as e:
            code, payload, ctype = e.code, e.status(), "application/json"
        except Exception as e:   # a bug here must still answer with a Status
            traceback.print_exc()
            code, payload, ctype = 500, ApiError(500, f"internal error: {e!r}").status(), \
                "application/json"
        if hasattr(payload, "__next__"):
            self.send_stream(code, payload, ctype)
        else:
            self.send_body(code, payload, ctype)
        self.server.log(f"{user.name if user else '-'} {method} {self.path} {code} "
                        f"{(time.monotonic() - started) * 1000:.1f}ms")

    def send_body(self, code, payload, ctype):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(data)

    def send_stream(self, code, events, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in events:
                data = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True

    def log_message(self, fmt, *args):
        pass   # requests are logged by serve()


class TLSServer(http.server.ThreadingHTTPServer):
    """Does the TLS handshake in the connection's own thread, so a client that connects
    and sends nothing cannot stall the accept loop."""
    daemon_threads = True
    request_queue_size = 128   # kubectl opens several connections at once

    def __init__(self, address, context, api, auth, log_path):
        self.context = context
        self.api = api
        self.auth = auth
        self.log_file = open(log_path, "a", buffering=1)
        self.log_lock = threading.Lock()
        self.faults = Faults(os.path.join(os.path.dirname(log_path), "fault.json"))
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        # as real API servers do: a response's headers and body are separate
        # writes, and with Nagle's algorithm the body would wait for the
        # client's delayed ACK (about 40 ms a request)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(30)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.log(f"- TLS handshake from {client_address[0]} failed: {e}")
            return
        try:
            tls.settimeout(300)
            self.RequestHandlerClass(tls, client_address, self)
        except OSError:
            pass
        finally:
            tls.close()

    def log(self, line):
        with self.log_lock:
            self.log_file.write(f"{now_rfc3339()} {line}\n")


def serve(state_dir):
    with open(os.path.join(state_dir, "server.json")) as f:
        conf = json.load(f)
    store = Store(os.path.join(state_dir, "state.json"))
    auth = Auth(os.path.join(state_dir, "auth.json"))
    address = f"127.0.0.1:{conf['port']}"
    api = Api(store, auth, address, conf["operator_delay"])
    api.oidc_key = oidc.load_key(state_dir)
    api.azure_webhook_conf = os.path.join(state_dir, "azure-webhook.json")
    with store.cond:
        for ns in ("default", "kube-system"):   # every cluster has these
            if store.get(NAMESPACES, None, ns) is None:
                api.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": ns}})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(conf["cert"], conf["key"])
    context.load_verify_locations(conf["client_ca"])
    context.verify_mode = ssl.CERT_OPTIONAL   # client certificates are one way to log in
    Operator(store, conf["operator_delay"], api.azure_workload_identity).start()
    JobController(store, Kubelet(state_dir, conf, api)).start()
    server = TLSServer(("127.0.0.1", conf["port"]), context, api, auth,
                       os.path.join(state_dir, "access.log"))
    server.log(f"- listening on https://{address}")
    server.serve_forever()


# --------------------------------------------------------------------------
# init: users, RBAC, kubeconfigs
# --------------------------------------------------------------------------

NAMESPACE = "mendix"
# The restricted user has exactly the seed's role (see the product page's jump pod);
# the "scale" user may also stop and start apps, the "nobody" user may do nothing.
RESTRICTED_RULES = [
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    {"apiGroups": [MENDIX_GROUP], "resources": ["mendixapps", "storageinstances"],
     "verbs": ["get"]},
]
SCALE_RULES = RESTRICTED_RULES + [
    {"apiGroups": [MENDIX_GROUP], "resources": ["mendixapps"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
]


def default_auth(tls_dir):
    def token():
        return secrets.token_hex(24)
    users = [
        {"name": "mxpc-admin", "groups": ["system:masters"], "token": token(),
         "cert": os.path.join(tls_dir, "k8s-admin.crt"),
         "key": os.path.join(tls_dir, "k8s-admin.key")},
        {"name": "mendix-backup-restore", "groups": [], "token": token(),
         "cert": os.path.join(tls_dir, "k8s-restricted.crt"),
         "key": os.path.join(tls_dir, "k8s-restricted.key")},
        {"name": "mendix-backup-restore-scale", "groups": [], "token": token()},
        {"name": "nobody", "groups": [], "token": token()},
    ]
    rules = [{"subjects": ["group:system:masters"], "namespaces": ["*"], "apiGroups": ["*"],
              "resources": ["*"], "verbs": ["*"]}]
    rules += [dict(r, subjects=["user:mendix-backup-restore"], namespaces=[NAMESPACE])
              for r in RESTRICTED_RULES]
    rules += [dict(r, subjects=["user:mendix-backup-restore-scale"], namespaces=[NAMESPACE])
              for r in SCALE_RULES]
    return {"users": users, "rules": rules}


# The jump pod's service account (the product page's mendix-backup-restore) and the
# audience EKS projects its IRSA token for; the kubelet's default lifetime is a day.
IRSA_SERVICE_ACCOUNT = "mendix-backup-restore"
IRSA_AUDIENCE = "sts.amazonaws.com"
IRSA_TOKEN_LIFETIME = 86400
# Azure Workload Identity's webhook projects a token with this audience (an hour).
AZURE_AUDIENCE = "api://AzureADTokenExchange"


def token(state_dir, namespace, name, audience, lifetime):
    with open(os.path.join(state_dir, "server.json")) as f:
        port = json.load(f)["port"]
    print(oidc.service_account_token(oidc.load_key(state_dir), f"https://127.0.0.1:{port}",
                                     namespace, name, audience, lifetime))


def b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def kubeconfig(server, ca, entries, current):
    """Kubeconfig YAML in the block style kubectl and kind write. entries: (context, user)."""
    lines = ["apiVersion: v1", "kind: Config", "clusters:", "- cluster:",
             f"    certificate-authority-data: {b64file(ca)}", f"    server: {server}",
             "  name: mxpc-stack", "contexts:"]
    for context, user in entries:
        lines += ["- context:", "    cluster: mxpc-stack", f"    namespace: {NAMESPACE}",
                  f"    user: {user['name']}{'-cert' if context.endswith('-cert') else ''}",
                  f"  name: {context}"]
    lines += [f"current-context: {current}", "preferences: {}", "users:"]
    for context, user in entries:
        if context.endswith("-cert"):
            lines += [f"- name: {user['name']}-cert", "  user:",
                      f"    client-certificate-data: {b64file(user['cert'])}",
                      f"    client-key-data: {b64file(user['key'])}"]
        else:
            lines += [f"- name: {user['name']}", "  user:", f"    token: {user['token']}"]
    return "\n".join(lines) + "\n"


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def init(state_dir, port, tls_dir, operator_delay):
    os.makedirs(state_dir, exist_ok=True)
    server = f"https://127.0.0.1:{port}"
    ca = os.path.join(tls_dir, "k8s-ca.crt")
    conf = {"port": port, "cert": os.path.join(tls_dir, "k8s-server.crt"),
            "key": os.path.join(tls_dir, "k8s-server.key"), "client_ca": ca,
            "operator_delay": operator_delay}
    write_private(os.path.join(state_dir, "server.json"), json.dumps(conf, indent=1))
    auth = default_auth(tls_dir)
    write_private(os.path.join(state_dir, "auth.json"), json.dumps(auth, indent=1))
    admin, restricted, scale, nobody = auth["users"]
    all_contexts = [("mxpc-admin", admin), ("mxpc-admin-cert", admin),
                    ("mendix-backup-restore", restricted),
                    ("mendix-backup-restore-cert", restricted),
                    ("mendix-backup-restore-scale", scale), ("nobody", nobody)]
    files = {
        "kubeconfig": (all_contexts, "mxpc-admin"),
        "kubeconfig-admin-cert": ([("mxpc-admin-cert", admin)], "mxpc-admin-cert"),
        "kubeconfig-restricted": ([("mendix-backup-restore", restricted)],
                                  "mendix-backup-restore"),
        "kubeconfig-scale": ([("mendix-backup-restore-scale", scale)],
                             "mendix-backup-restore-scale"),
        "kubeconfig-nobody": ([("nobody", nobody)], "nobody"),
    }
    for name, (entries, current) in files.items():
        write_private(os.path.join(state_dir, name), kubeconfig(server, ca, entries, current))
    # What a pod's service account mount looks like, for in-cluster configuration.
    sa = os.path.join(state_dir, "serviceaccount")
    os.makedirs(sa, exist_ok=True)
    write_private(os.path.join(sa, "token"), restricted["token"])
    write_private(os.path.join(sa, "namespace"), NAMESPACE)
    with open(ca) as src:
        write_private(os.path.join(sa, "ca.crt"), src.read())

    # The OIDC issuer's key, and the jump pod's projected token for IRSA.
    key = oidc.make_key(state_dir)
    irsa = os.path.join(state_dir, "irsa")
    os.makedirs(irsa, exist_ok=True)
    write_private(os.path.join(irsa, "token"), oidc.service_account_token(
        key, server, NAMESPACE, IRSA_SERVICE_ACCOUNT, IRSA_AUDIENCE, IRSA_TOKEN_LIFETIME))
    azure = os.path.join(state_dir, "azure")
    os.makedirs(azure, exist_ok=True)
    write_private(os.path.join(azure, "token"), oidc.service_account_token(
        key, server, NAMESPACE, IRSA_SERVICE_ACCOUNT, AZURE_AUDIENCE, IRSA_TOKEN_LIFETIME))

    env = {
        "MXPC_OIDC_ISSUER": server,
        "MXPC_IRSA_TOKEN_FILE": os.path.join(irsa, "token"),
        "MXPC_AZURE_FEDERATED_TOKEN_FILE": os.path.join(azure, "token"),
        "MXPC_K8S_URL": server, "MXPC_K8S_CA": ca, "MXPC_K8S_NAMESPACE": NAMESPACE,
        "MXPC_KUBECONFIG": os.path.join(state_dir, "kubeconfig"),
        "MXPC_KUBECONFIG_ADMIN_CERT": os.path.join(state_dir, "kubeconfig-admin-cert"),
        "MXPC_KUBECONFIG_RESTRICTED": os.path.join(state_dir, "kubeconfig-restricted"),
        "MXPC_KUBECONFIG_SCALE": os.path.join(state_dir, "kubeconfig-scale"),
        "MXPC_KUBECONFIG_NOBODY": os.path.join(state_dir, "kubeconfig-nobody"),
        "MXPC_K8S_ADMIN_TOKEN": admin["token"],
        "MXPC_K8S_ADMIN_CERT": admin["cert"], "MXPC_K8S_ADMIN_KEY": admin["key"],
        "MXPC_K8S_RESTRICTED_TOKEN": restricted["token"],
        "MXPC_K8S_RESTRICTED_CERT": restricted["cert"],
        "MXPC_K8S_RESTRICTED_KEY": restricted["key"],
        "MXPC_K8S_SCALE_TOKEN": scale["token"],
        "MXPC_K8S_NOBODY_TOKEN": nobody["token"],
        "MXPC_K8S_SA_DIR": sa,
        "MXPC_K8S_AUTH_FILE": os.path.join(state_dir, "auth.json"),
        "MXPC_K8S_STATE_FILE": os.path.join(state_dir, "state.json"),
        "MXPC_K8S_FAULT_FILE": os.path.join(state_dir, "fault.json"),
    }
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="write auth.json, kubeconfigs; print env lines")
    p_init.add_argument("dir")
    p_init.add_argument("--port", type=int, required=True)
    p_init.add_argument("--tls-dir", required=True)
    p_init.add_argument("--operator-delay", type=float, default=1.0,
                        help="seconds before pods follow a replicas change (default 1)")
    p_serve = sub.add_parser("serve", help="run the API server")
    p_serve.add_argument("dir")
    p_token = sub.add_parser("token", help="print a service account token (RS256 JWT)")
    p_token.add_argument("dir")
    p_token.add_argument("--sa", default=IRSA_SERVICE_ACCOUNT, help="service account name")
    p_token.add_argument("--namespace", default=NAMESPACE)
    p_token.add_argument("--aud", default=IRSA_AUDIENCE, help="audience")
    p_token.add_argument("--lifetime", type=float, default=IRSA_TOKEN_LIFETIME,
                         help="seconds until it expires (negative: already expired)")
    args = parser.parse_args()
    if args.command == "token":
        token(os.path.abspath(args.dir), args.namespace, args.sa, args.aud, args.lifetime)
    elif args.command == "init":
        init(os.path.abspath(args.dir), args.port, os.path.abspath(args.tls_dir),
             args.operator_delay)
    else:
        serve(os.path.abspath(args.dir))


if __name__ == "__main__":
    main()
