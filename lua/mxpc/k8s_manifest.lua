-- Kubernetes manifests the tool writes (jump-pod, schedule): the hardened
-- security of their pods, the ServiceAccount + Role + RoleBinding that give a
-- pod exactly its operations' permissions, output as kubectl-appliable YAML
-- or JSON, and creating or deleting them (--apply, --delete).
local cjson = require "cjson"
local errors = require "mxpc.error"
local runtime = require "mxpc.runtime"

local M = {}

-- The architectures the package and the image are built for (tools/package --arch).
M.ARCHES = { amd64 = true, arm64 = true }

-- The architecture a pod is pinned to without --arch: this program's, so that
-- the package the user copies in (this one) fits the node; nil when it is
-- neither amd64 nor arm64.
function M.default_arch() return M.ARCHES[runtime.arch] and runtime.arch or nil end

-- The pod spec's nodeSelector for nodes of arch (the label every kubelet sets), or nil.
function M.node_selector(arch) return arch and { ["kubernetes.io/arch"] = arch } or nil end

-- The name of the package for arch (tools/package), which the pod's node can run.
function M.package_name(arch)
  return ("%s-%s-linux-%s"):format(runtime.program, runtime.version, arch or runtime.arch)
end

-- The pod's securityContext: not root (uid), the runtime's seccomp profile.
function M.pod_security(uid)
  return { runAsNonRoot = true, runAsUser = uid, runAsGroup = uid, fsGroup = uid,
    seccompProfile = { type = "RuntimeDefault" } }
end

-- A container's securityContext: no privilege escalation, a read-only root,
-- no capabilities.
function M.container_security()
  return { allowPrivilegeEscalation = false, readOnlyRootFilesystem = true, capabilities = { drop = { "ALL" } } }
end

-- Azure Workload Identity: the ServiceAccount's annotation naming the managed
-- identity, and the pod label that has the webhook inject AZURE_CLIENT_ID,
-- AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST.
M.AZURE_CLIENT_ID = "azure.workload.identity/client-id"
M.AZURE_USE = "azure.workload.identity/use"
-- AWS IRSA: the ServiceAccount's annotation naming the role its pods assume.
M.AWS_ROLE_ARN = "eks.amazonaws.com/role-arn"

-- A managed identity's client id as Azure writes it (a GUID).
function M.valid_client_id(id)
  return tostring(id):match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

-- The labels of a pod: `labels` and, with Workload Identity, azure.workload.identity/use.
function M.pod_labels(labels, workload_identity)
  if not workload_identity then return labels end
  local out = { [M.AZURE_USE] = "true" }
  for k, v in pairs(labels) do out[k] = v end
  return out
end

-- ServiceAccount, Role and RoleBinding named p.name in p.namespace, with
-- p.labels, p.rules, p.role_arn (AWS IRSA: annotates the ServiceAccount,
-- so that EKS gives its pods the role's web identity) and p.azure_client_id
-- (Azure Workload Identity: annotates it with the managed identity's client
-- id). With p.service_account, an existing ServiceAccount is used instead:
-- no ServiceAccount is made, and the RoleBinding binds the Role to that one.
function M.access(p)
  local function meta() return { name = p.name, namespace = p.namespace, labels = p.labels } end
  local objects = {}
  if not p.service_account then
    local account = meta()
    if p.role_arn or p.azure_client_id then
      account.annotations = { [M.AWS_ROLE_ARN] = p.role_arn, [M.AZURE_CLIENT_ID] = p.azure_client_id }
    end
    objects[1] = { apiVersion = "v1", kind = "ServiceAccount", metadata = account }
  end
  objects[#objects + 1] = { apiVersion = "rbac.authorization.k8s.io/v1", kind = "Role", metadata = meta(),
    rules = p.rules }
  objects[#objects + 1] = { apiVersion = "rbac.authorization.k8s.io/v1", kind = "RoleBinding", metadata = meta(),
    roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = p.name },
    subjects = { { kind = "ServiceAccount", name = p.service_account or p.name, namespace = p.namespace } } }
  return objects
end

-- --- output: kubectl-appliable YAML or JSON, keys in a stable order ------------

local FIRST = { apiVersion = 1, kind = 2, metadata = 3, name = 4, namespace = 5, labels = 6 }
local function keys_of(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local fa, fb = FIRST[a] or 100, FIRST[b] or 100
    if fa ~= fb then return fa < fb end
    return a < b
  end)
  return keys
end

local function is_array(t) return #t > 0 end -- an empty table is an empty map ({})

-- cjson writes "/" as "\/"; Kubernetes objects are full of slashes
local function encode(v)
  local s = cjson.encode(v)
  if type(v) == "string" and not v:find("\\", 1, true) then s = s:gsub("\\/", "/") end
  return s
end

local function json(v, indent)
  if type(v) ~= "table" then return encode(v) end
  local pad, inner = ("  "):rep(indent), ("  "):rep(indent + 1)
  local parts = {}
  if is_array(v) then
    for _, x in ipairs(v) do parts[#parts + 1] = inner .. json(x, indent + 1) end
    return #parts == 0 and "[]" or ("[\n" .. table.concat(parts, ",\n") .. "\n" .. pad .. "]")
  end
  for _, k in ipairs(keys_of(v)) do parts[#parts + 1] = inner .. encode(k) .. ": " .. json(v[k], indent + 1) end
  return #parts == 0 and "{}" or ("{\n" .. table.concat(parts, ",\n") .. "\n" .. pad .. "}")
end

-- A YAML scalar: plain when YAML reads it back as the same string, else quoted.
local function scalar(v)
  if type(v) ~= "string" then return tostring(v) end
  if v:match("^[%w_/][%w_./:-]*$") and not v:match("^[%d.+-]+$") and not v:match("^[:-]")
      and not ({ ["true"] = 1, ["false"] = 1, yes = 1, no = 1, on = 1, off = 1, null = 1, y = 1, n = 1 })[v:lower()] then
    return v
  end
  return encode(v)
end

local function yaml(v, indent, out)
  local pad = ("  "):rep(indent)
  if is_array(v) then
    for _, x in ipairs(v) do
      if type(x) == "table" and not is_array(x) and next(x) then
        local sub = {}
        yaml(x, indent + 1, sub)
        sub[1] = pad .. "- " .. sub[1]:sub(#pad + 3)
        for _, line in ipairs(sub) do out[#out + 1] = line end
      else
        out[#out + 1] = pad .. "- " .. (type(x) == "table" and "{}" or scalar(x))
      end
    end
    return out
  end
  for _, k in ipairs(keys_of(v)) do
    local x = v[k]
    if type(x) == "table" and next(x) then
      out[#out + 1] = pad .. scalar(k) .. ":"
      yaml(x, is_array(x) and indent or indent + 1, out)
    else
      out[#out + 1] = pad .. scalar(k) .. ": " .. (type(x) == "table" and "{}" or scalar(x))
    end
  end
  return out
end

-- The manifests as text: YAML documents, or one JSON List.
function M.render(objects, format)
  if format == "json" then
    return json({ apiVersion = "v1", kind = "List", items = objects }, 0) .. "\n"
  end
  local docs = {}
  for _, o in ipairs(objects) do docs[#docs + 1] = table.concat(yaml(o, 0, {}), "\n") .. "\n" end
  return table.concat(docs, "---\n")
end

-- --- apply and delete ------------------------------------------------------------

M.RESOURCE = { ServiceAccount = "serviceaccounts", Role = "roles", RoleBinding = "rolebindings", Pod = "pods",
  CronJob = "cronjobs", Job = "jobs" }

-- "serviceaccount/NAME created" on stdout, as kubectl says it.
function M.say(kind, name, what)
  io.stdout:write(("%s/%s %s\n"):format(M.RESOURCE[kind]:gsub("s$", ""), name, what))
end

-- Creates an object, or brings an existing one up to date (a merge patch of
-- its labels, annotations and `fields`). Returns "created" or "configured",
-- or nil, err.
function M.create_or_update(client, o, fields)
  local resource, name = M.RESOURCE[o.kind], o.metadata.name
  local ok, err = client:create(resource, o)
  if ok then return "created" end
  if not errors.is(err, "exists") then return nil, err end
  local patch = { metadata = { labels = o.metadata.labels, annotations = o.metadata.annotations } }
  if o.kind == "ServiceAccount" then
    -- the identity it acts as is ours to say: one it no longer has goes
    -- (null in a merge patch), so that a switch from IRSA to Workload
    -- Identity, or to neither, leaves no stale role behind
    local annotations = {}
    for k, v in pairs(o.metadata.annotations or {}) do annotations[k] = v end
    for _, k in ipairs { M.AWS_ROLE_ARN, M.AZURE_CLIENT_ID } do
      if annotations[k] == nil then annotations[k] = require("cjson").null end
    end
    patch.metadata.annotations = annotations
  end
  for _, f in ipairs(fields) do patch[f] = o[f] end
  local pok, perr = client:patch(resource, name, patch, { namespace = o.metadata.namespace })
  if not pok then return nil, perr end
  return "configured"
end

-- Deletes the objects, last first; missing ones are fine.
function M.delete(client, objects)
  for i = #objects, 1, -1 do
    local o = objects[i]
    local ok, err = client:delete(M.RESOURCE[o.kind], o.metadata.name, { namespace = o.metadata.namespace })
    if ok then
      M.say(o.kind, o.metadata.name, "deleted")
    elseif errors.is(err, "not_found") then
      M.say(o.kind, o.metadata.name, "not found")
    else
      return nil, err
    end
  end
  return true
end

return M
