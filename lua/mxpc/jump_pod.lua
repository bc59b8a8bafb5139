-- The jump pod: a pod in the environment's namespace to run the tool in, with
-- a service account whose Role allows exactly what the chosen operations
-- need, and the PostgreSQL client tools (bitnami/postgresql) of the database
-- server's major version. `jump-pod` prints the manifests, creates them
-- (--apply) or deletes them (--delete). See docs/jump-pod.md.
local cjson = require "cjson"
local errors = require "mxpc.error"
local log = require "mxpc.log"
local runtime = require "mxpc.runtime"

local M = {}

local MENDIX = "privatecloud.mendix.com"
M.IMAGE_REPOSITORY = "docker.io/bitnami/postgresql"
M.UID = 1001 -- the bitnami images' user

-- The Role's rules for the operations: a backup reads the MendixApp, its
-- StorageInstances and their Secrets; a restore also lists the app's pods (to
-- refuse a running app); --stop-app also patches the MendixApp's replicas.
-- With ops.environment, the rules a secret store needs, for that name only.
function M.rules(ops)
  local rules = {
    { apiGroups = { "" }, resources = { "secrets" }, verbs = { "get" } },
    { apiGroups = { MENDIX }, resources = { "mendixapps", "storageinstances" }, verbs = { "get" } },
  }
  if ops.restore or ops.stop_app then
    rules[#rules + 1] = { apiGroups = { "" }, resources = { "pods" }, verbs = { "list" } }
  end
  if ops.stop_app then
    rules[#rules + 1] = { apiGroups = { MENDIX }, resources = { "mendixapps" }, verbs = { "patch" } }
  end
  if ops.environment then
    -- credentials in a secret store: the environment's SecretProviderClass, and
    -- the environment's own identity (its ServiceAccount's annotations and a
    -- short-lived token of it), for that one name only
    local names = { ops.environment }
    rules[#rules + 1] = { apiGroups = { "secrets-store.csi.x-k8s.io" }, resources = { "secretproviderclasses" },
      resourceNames = names, verbs = { "get" } }
    rules[#rules + 1] = { apiGroups = { "" }, resources = { "serviceaccounts" }, resourceNames = names,
      verbs = { "get" } }
    rules[#rules + 1] = { apiGroups = { "" }, resources = { "serviceaccounts/token" }, resourceNames = names,
      verbs = { "create" } }
  end
  return rules
end

-- "15" for server_version_num 150018; "9.6" for 90624.
function M.major_version(num)
  num = math.tointeger(tonumber(num))
  if not num or num < 90000 then return nil end
  if num >= 100000 then return tostring(num // 10000) end
  return ("%d.%d"):format(num // 10000, num // 100 % 100)
end

-- The default name: one jump pod per environment.
function M.default_name(environment)
  return (("mxpc-jump-%s"):format(environment):sub(1, 63):gsub("[-.]+$", ""))
end

-- An IAM role ARN as EKS accepts it in eks.amazonaws.com/role-arn:
-- arn:PARTITION:iam::ACCOUNT(12 digits):role/[PATH/]NAME.
function M.valid_role_arn(arn)
  local partition, account, name = tostring(arn):match("^arn:(aws[%w-]*):iam::(%d+):role/([%w+=,.@_/-]+)$")
  return partition ~= nil and #account == 12 and not name:find("//", 1, true) and name:sub(-1) ~= "/"
end

-- The four objects, in the order they are created: ServiceAccount, Role,
-- RoleBinding, Pod. p = {namespace, environment, name, image, rules, role_arn}.
-- role_arn (AWS IRSA) annotates the ServiceAccount, so that EKS gives the pod
-- the role's web identity when it is created.
function M.manifests(p)
  local labels = { ["app.kubernetes.io/name"] = "mxpc-data-migration", ["app.kubernetes.io/component"] = "jump-pod",
    ["mxpc-data-migration/environment"] = p.environment }
  local function meta() return { name = p.name, namespace = p.namespace, labels = labels } end
  local account = meta()
  if p.role_arn then account.annotations = { ["eks.amazonaws.com/role-arn"] = p.role_arn } end
  return {
    { apiVersion = "v1", kind = "ServiceAccount", metadata = account },
    { apiVersion = "rbac.authorization.k8s.io/v1", kind = "Role", metadata = meta(), rules = p.rules },
    { apiVersion = "rbac.authorization.k8s.io/v1", kind = "RoleBinding", metadata = meta(),
      roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = p.name },
      subjects = { { kind = "ServiceAccount", name = p.name, namespace = p.namespace } } },
    { apiVersion = "v1", kind = "Pod", metadata = meta(),
      spec = {
        serviceAccountName = p.name,
        automountServiceAccountToken = true,
        restartPolicy = "Never",
        terminationGracePeriodSeconds = 0,
        securityContext = { runAsNonRoot = true, runAsUser = M.UID, runAsGroup = M.UID, fsGroup = M.UID,
          seccompProfile = { type = "RuntimeDefault" } },
        containers = { {
          name = "pgtools",
          image = p.image,
          -- the image's entrypoint would start a server; this one waits for kubectl exec
          command = { "sleep", "infinity" },
          workingDir = "/tmp",
          env = { { name = "HOME", value = "/tmp" }, { name = "TMPDIR", value = "/tmp" } },
          securityContext = { allowPrivilegeEscalation = false, readOnlyRootFilesystem = true,
            capabilities = { drop = { "ALL" } } },
          volumeMounts = { { name = "tmp", mountPath = "/tmp" } },
        } },
        -- the only writable place: the tool, and restore's copy of a piped archive
        volumes = { { name = "tmp", emptyDir = {} } },
      } },
  }
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

-- --- the database server's version -------------------------------------------

-- Asks the environment's database server for its version (SHOW
-- server_version_num): the major version, or nil, err if the environment or
-- its server cannot be reached from here.
function M.server_major(opts)
  local wf = require "mxpc.workflow"
  local env, err = wf.resolve(opts)
  if not env then return nil, err end
  env.client:close()
  local db, derr = wf.connect_database(env, { connect_timeout = 5 })
  if not db then return nil, derr end
  local rows, qerr = db:query("SHOW server_version_num")
  db:close()
  if not rows then return nil, qerr end
  local major = M.major_version(rows[1].server_version_num)
  if not major then
    return nil, errors.new { code = "unsupported",
      message = ("the database server's version %s is too old"):format(rows[1].server_version_num) }
  end
  return major
end

-- The image's version: the server's when it answers, else --pg-version.
function M.pg_version(opts)
  local major, err = M.server_major(opts)
  if major then
    log.info("database server version", { major = major })
    if opts.pg_version and opts.pg_version ~= major then
      log.warn(("--pg-version %s ignored: the database server runs PostgreSQL %s, and pg_dump must be at least as new")
        :format(opts.pg_version, major))
    end
    return major
  end
  if opts.pg_version then
    log.info("the database server could not be asked for its version; using --pg-version",
      { pg_version = opts.pg_version, reason = err.message })
    return opts.pg_version
  end
  return nil, errors.new { code = err.code, message = "cannot learn the database server's version: " .. err.message,
    hint = "give it with --pg-version MAJOR (e.g. --pg-version 15), or run this where the database is reachable" }
end

-- --- apply and delete -----------------------------------------------------------

local RESOURCE = { ServiceAccount = "serviceaccounts", Role = "roles", RoleBinding = "rolebindings", Pod = "pods" }

local function created(kind, name, what)
  io.stdout:write(("%s/%s %s\n"):format(RESOURCE[kind]:gsub("s$", ""), name, what))
end

-- The AWS_ROLE_ARN that EKS put into a pod's first container (IRSA), or nil.
function M.pod_role_arn(pod)
  local c = pod.spec and pod.spec.containers and pod.spec.containers[1]
  for _, e in ipairs(c and c.env or {}) do
    if e.name == "AWS_ROLE_ARN" then return e.value end
  end
  return nil
end

-- Creates the objects; an existing ServiceAccount, Role or RoleBinding is
-- brought up to date, an existing Pod is kept if it runs the same image.
-- Then waits until the pod runs.
function M.apply(client, objects, timeout)
  local pod
  local role_arn = objects[1].metadata.annotations and objects[1].metadata.annotations["eks.amazonaws.com/role-arn"]
  for _, o in ipairs(objects) do
    local resource, name = RESOURCE[o.kind], o.metadata.name
    local ok, err = client:create(resource, o)
    if ok then
      created(o.kind, name, "created")
    elseif not errors.is(err, "exists") then
      return nil, err
    elseif o.kind == "Pod" then
      local have, gerr = client:get("pods", name, o.metadata.namespace)
      if not have then return nil, gerr end
      local image = have.spec and have.spec.containers and have.spec.containers[1].image
      if image ~= o.spec.containers[1].image or have.metadata.deletionTimestamp then
        return nil, errors.new { code = "exists",
          message = ("pod %s exists already with %s"):format(name, have.metadata.deletionTimestamp
            and "its deletion under way" or ("image " .. tostring(image))),
          hint = "delete it first (jump-pod --delete), or choose another --name" }
      end
      local role = role_arn and M.pod_role_arn(have)
      if role_arn and role ~= role_arn then
        return nil, errors.new { code = "exists",
          message = ("pod %s exists already without the role %s (%s)"):format(name, role_arn,
            role and ("it has " .. role) or "no AWS_ROLE_ARN in its environment"),
          hint = "EKS gives a pod its role when it is created: delete it (jump-pod --delete) and --apply again" }
      end
      created(o.kind, name, "unchanged")
    else
      local patch = { metadata = { labels = o.metadata.labels, annotations = o.metadata.annotations },
        rules = o.rules, subjects = o.subjects }
      local pok, perr = client:patch(resource, name, patch, { namespace = o.metadata.namespace })
      if not pok then return nil, perr end
      created(o.kind, name, "configured")
    end
    if o.kind == "Pod" then pod = o end
  end
  local deadline = runtime.monotonic() + (timeout or 300)
  log.info("waiting for the pod to run", { pod = pod.metadata.name })
  while true do
    local p, err = client:get("pods", pod.metadata.name, pod.metadata.namespace)
    if not p then return nil, err end
    local phase = p.status and p.status.phase
    if phase == "Running" then break end
    if phase == "Failed" or phase == "Succeeded" then
      return nil, errors.new { code = "pod", message = ("pod %s stopped (%s)"):format(pod.metadata.name, phase),
        hint = ("kubectl -n %s describe pod %s"):format(pod.metadata.namespace, pod.metadata.name) }
    end
    if runtime.monotonic() >= deadline then
      return nil, errors.new { code = "timeout", message = ("pod %s is not running after %d seconds (%s)"):format(
        pod.metadata.name, timeout or 300, phase or "no phase"),
        hint = ("kubectl -n %s describe pod %s shows why (an image that cannot be pulled, no node with room)"):format(
          pod.metadata.namespace, pod.metadata.name) }
    end
    runtime.sleep(1) -- a signal ends the wait
  end
  log.info("the pod runs", { pod = pod.metadata.name })
  return true
end

-- Deletes the objects (the pod first); missing ones are fine.
function M.delete(client, objects)
  for i = #objects, 1, -1 do
    local o = objects[i]
    local ok, err = client:delete(RESOURCE[o.kind], o.metadata.name, { namespace = o.metadata.namespace })
    if ok then
      created(o.kind, o.metadata.name, "deleted")
    elseif errors.is(err, "not_found") then
      created(o.kind, o.metadata.name, "not found")
    else
      return nil, err
    end
  end
  return true
end

-- The jump-pod command.
function M.command(opts)
  local name = opts.name or M.default_name(opts.environment)
  local ops = { restore = opts.restore, stop_app = opts.stop_app, environment = opts.environment }
  local image = opts.image
  if not image and not opts.delete then
    local version = assert(M.pg_version(opts))
    image = M.IMAGE_REPOSITORY .. ":" .. version
  end
  local objects = M.manifests { namespace = opts.namespace, environment = opts.environment, name = name,
    image = image or "", rules = M.rules(ops), role_arn = opts.role_arn }
  if not opts.apply and not opts.delete then
    io.stdout:write(M.render(objects, opts.output or "yaml"))
    return 0
  end
  local k8s = require "mxpc.k8s"
  local client <close> = assert(k8s.connect { kubeconfig = opts.kubeconfig, context = opts.context,
    namespace = opts.namespace })
  if opts.delete then
    assert(M.delete(client, objects))
    return 0
  end
  assert(M.apply(client, objects, tonumber(opts.timeout)))
  local pkg = "mxpc-data-migration-VERSION-linux-ARCH"
  io.stderr:write(([[
the jump pod %s runs in namespace %s. Next (see docs/jump-pod.md):
  kubectl -n %s exec -i %s -- tar -xzf - -C /tmp < %s.tar.gz
  kubectl -n %s exec %s -- /tmp/%s/mxpc-data-migration backup -n %s -e %s -f - > backup.tar.gz
and when done: mxpc-data-migration jump-pod -n %s -e %s --delete%s
]]):format(name, opts.namespace, opts.namespace, name, pkg, opts.namespace, name, pkg, opts.namespace,
    opts.environment, opts.namespace, opts.environment, opts.name and (" --name " .. name) or ""))
  return 0
end

return M
