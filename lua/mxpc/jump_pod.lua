-- The jump pod: a pod in the environment's namespace to run the tool in, with
-- a service account whose Role allows exactly what the chosen operations
-- need, and the PostgreSQL client tools (the official postgres image) of the database
-- server's major version. `jump-pod` prints the manifests, creates them
-- (--apply) or deletes them (--delete). See docs/jump-pod.md.
local errors = require "mxpc.error"
local log = require "mxpc.log"
local manifest = require "mxpc.k8s_manifest"
local runtime = require "mxpc.runtime"

local M = {}

local MENDIX = "privatecloud.mendix.com"
-- The official image: maintained, multi-arch, Debian based (glibc), with
-- pg_dump, pg_restore and psql of its major version in PATH. Fully qualified:
-- CRI-O refuses short names it cannot resolve without asking.
M.IMAGE_REPOSITORY = "docker.io/library/postgres"
M.UID = 1001 -- non-root; the image needs no user of its own for the client tools (HOME is /tmp)

-- The Role's rules for the operations: a backup reads the MendixApp, its
-- StorageInstances and their Secrets; a restore also lists the app's pods (to
-- refuse a running app); --stop-app also patches the MendixApp's replicas.
-- names = {apps = {...}, storage_instances = {...}, secrets = {...}} (see
-- role_names) limits each rule to those objects (resourceNames); a list
-- missing there leaves its rule to every object of the kind in the namespace.
-- Listing pods is not limited: Kubernetes checks resourceNames only for
-- requests that name one object (get, patch), never for list or watch.
-- With ops.environment (or ops.environments, a list), the rules a secret store
-- needs, for those names only; names.stores (when the cluster could be asked:
-- the environments that have a SecretProviderClass) narrows them to those,
-- and an empty list means none.
function M.rules(ops, names)
  names = names or {}
  local app = names.apps
  local rules = {
    { apiGroups = { "" }, resources = { "secrets" }, verbs = { "get" }, resourceNames = names.secrets },
    { apiGroups = { MENDIX }, resources = { "mendixapps" }, verbs = { "get" }, resourceNames = app },
    { apiGroups = { MENDIX }, resources = { "storageinstances" }, verbs = { "get" },
      resourceNames = names.storage_instances },
  }
  if ops.restore or ops.stop_app then
    rules[#rules + 1] = { apiGroups = { "" }, resources = { "pods" }, verbs = { "list" } }
  end
  if ops.stop_app then
    rules[#rules + 1] = { apiGroups = { MENDIX }, resources = { "mendixapps" }, verbs = { "patch" },
      resourceNames = app }
  end
  local store_names = ops.environments or (ops.environment and { ops.environment })
  if names.stores then store_names = #names.stores > 0 and names.stores or nil end
  if store_names then
    -- credentials in a secret store: the environment's SecretProviderClass, and
    -- the environment's own identity (its ServiceAccount's annotations and a
    -- short-lived token of it), for those names only
    local names = store_names
    rules[#rules + 1] = { apiGroups = { "secrets-store.csi.x-k8s.io" }, resources = { "secretproviderclasses" },
      resourceNames = names, verbs = { "get" } }
    rules[#rules + 1] = { apiGroups = { "" }, resources = { "serviceaccounts" }, resourceNames = names,
      verbs = { "get" } }
    rules[#rules + 1] = { apiGroups = { "" }, resources = { "serviceaccounts/token" }, resourceNames = names,
      verbs = { "create" } }
  end
  return rules
end

-- The objects a Role names for environments `envs` of `namespace`: their
-- MendixApps, their StorageInstances <env>-database and <env>-file (known
-- from the names), and the credential Secrets those name, read with `client`
-- now. When these cannot be read (no client, no right to read them; `why`
-- says why there is no client), a warning says so and the secrets rule
-- names none: it then allows every Secret of the namespace. `stores`: the
-- environments with a SecretProviderClass (named after the MendixApp), nil
-- when that cannot be learned (the secret-store rules are then kept).
function M.resource_names(client, namespace, envs, why)
  local names = { apps = {}, storage_instances = {} }
  local secrets, err = {}, why
  local stores = client and {} or nil
  for _, env in ipairs(envs) do
    names.apps[#names.apps + 1] = env
    if stores then
      local spc, serr = client:get("secretproviderclasses", env, namespace)
      if spc then
        stores[#stores + 1] = env
      elseif not errors.is(serr, "not_found") then
        log.debug("whether the environment keeps its credentials in a secret store is not known; the Role keeps "
          .. "the secret-store rules", { environment = env, reason = errors.normalize(serr).message })
        stores = nil
      end
    end
    for _, part in ipairs { "database", "file" } do
      local si_name = env .. "-" .. part
      names.storage_instances[#names.storage_instances + 1] = si_name
      if not err then
        local si, gerr = client:get("storageinstances", si_name, namespace)
        if not si then
          err = gerr or errors.new { message = ("StorageInstance %s/%s could not be read"):format(namespace, si_name) }
        else
          local secret = require("mxpc.environment").secret_name(si)
          if secret ~= secrets[#secrets] then secrets[#secrets + 1] = secret end
        end
      end
    end
  end
  names.stores = stores
  if err then
    log.warn(("the Role may read every Secret in namespace %s: the credential Secrets of %s could not be learned "
      .. "from its StorageInstances (%s); name them in the secrets rule's resourceNames, or make the manifests "
      .. "where the cluster answers"):format(namespace, table.concat(envs, ", "), errors.normalize(err).message))
  else
    names.secrets = secrets
  end
  return names
end

-- The objects the Role of one environment's jump pod names (resource_names).
function M.role_names(opts)
  local ok, client = runtime.pcall(function()
    return assert(require("mxpc.k8s").connect { kubeconfig = opts.kubeconfig, context = opts.context,
      namespace = opts.namespace })
  end)
  local names = M.resource_names(ok and client or nil, opts.namespace, { opts.environment },
    not ok and client or nil)
  if ok then client:close() end
  return names
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

-- The objects, in the order they are created: ServiceAccount, Role,
-- RoleBinding, Pod. p = {namespace, environment, name, image, rules, role_arn,
-- azure_client_id, service_account, workload_identity, arch}.
-- role_arn (AWS IRSA) annotates the ServiceAccount, so that EKS gives the pod
-- the role's web identity when it is created; azure_client_id (Azure Workload
-- Identity) annotates it with the managed identity's client id
-- (azure.workload.identity/client-id). service_account: the pod runs under
-- that existing ServiceAccount (e.g. the environment's own, named after it),
-- which is neither made nor deleted; the Role is bound to it.
-- workload_identity (implied by azure_client_id) labels the pod
-- azure.workload.identity/use: "true", so that the webhook gives it the
-- ServiceAccount's managed identity. arch (amd64, arm64) pins the pod
-- to nodes of that architecture (nodeSelector kubernetes.io/arch), and its
-- annotation mxpc-data-migration/package names the package that runs there.
function M.manifests(p)
  local labels = { ["app.kubernetes.io/name"] = "mxpc-data-migration", ["app.kubernetes.io/component"] = "jump-pod",
    ["mxpc-data-migration/environment"] = p.environment }
  local objects = manifest.access { name = p.name, namespace = p.namespace, labels = labels, rules = p.rules,
    role_arn = p.role_arn, azure_client_id = p.azure_client_id, service_account = p.service_account }
  local pod_meta = { name = p.name, namespace = p.namespace,
    labels = manifest.pod_labels(labels, p.workload_identity or p.azure_client_id ~= nil) }
  if p.arch then pod_meta.annotations = { ["mxpc-data-migration/package"] = M.package_name(p.arch) } end
  objects[#objects + 1] =
    { apiVersion = "v1", kind = "Pod", metadata = pod_meta,
      spec = {
        nodeSelector = manifest.node_selector(p.arch),
        serviceAccountName = p.service_account or p.name,
        automountServiceAccountToken = true,
        restartPolicy = "Never",
        terminationGracePeriodSeconds = 0,
        securityContext = manifest.pod_security(M.UID),
        containers = { {
          name = "pgtools",
          image = p.image,
          -- the image's entrypoint would start a server; this one waits for kubectl exec
          command = { "sleep", "infinity" },
          workingDir = "/tmp",
          env = { { name = "HOME", value = "/tmp" }, { name = "TMPDIR", value = "/tmp" } },
          securityContext = manifest.container_security(),
          volumeMounts = { { name = "tmp", mountPath = "/tmp" } },
        } },
        -- the only writable place: the tool, and restore's copy of a piped archive
        volumes = { { name = "tmp", emptyDir = {} } },
      } }
  return objects
end

-- The manifests as text: YAML documents, or one JSON List.
M.render = manifest.render

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

local RESOURCE = manifest.RESOURCE
local created = manifest.say

-- A pod's environment variable (first container), or nil.
local function pod_env(pod, name)
  local c = pod.spec and pod.spec.containers and pod.spec.containers[1]
  for _, e in ipairs(c and c.env or {}) do
    if e.name == name then return e.value end
  end
  return nil
end

-- The AWS_ROLE_ARN that EKS put into a pod's first container (IRSA), or nil.
function M.pod_role_arn(pod) return pod_env(pod, "AWS_ROLE_ARN") end

-- Waiting reasons of a container that will not start by waiting longer.
local STUCK = {
  ErrImagePull = "image", ImagePullBackOff = "image", InvalidImageName = "image", ErrImageNeverPull = "image",
  CreateContainerConfigError = "config", CreateContainerError = "config", CrashLoopBackOff = "crash",
}

-- Why a Pending pod will not run, from its status: nil, or an error that says
-- what the cluster reported (an unschedulable pod's PodScheduled condition, a
-- container's waiting reason) and what to do.
function M.pod_problem(pod)
  local name, ns = pod.metadata.name, pod.metadata.namespace
  local describe = ("kubectl -n %s describe pod %s"):format(ns, name)
  local status = pod.status or {}
  for _, c in ipairs(status.conditions or {}) do
    if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable" then
      return errors.new { code = "pod",
        message = ("pod %s cannot be scheduled: %s"):format(name, c.message or c.reason),
        hint = ("no node can take it (room, node selectors, taints); %s shows more, and --delete removes it"):format(describe) }
    end
  end
  for _, cs in ipairs(status.containerStatuses or {}) do
    local w = cs.state and cs.state.waiting
    local kind = w and STUCK[w.reason]
    if kind then
      local hint
      if kind == "image" then
        hint = ("the cluster cannot pull %s: run jump-pod --delete, then --apply again with --image naming an image"
          .. " it can pull (a mirror in your registry; see docs/jump-pod.md, \"The image\")"):format(cs.image or "the image")
      elseif kind == "config" then
        hint = ("the pod's configuration is refused on the node; %s shows more, and --delete removes it"):format(describe)
      else
        hint = ("its container keeps stopping; kubectl -n %s logs %s shows why, and --delete removes it"):format(ns, name)
      end
      return errors.new { code = "pod",
        message = ("pod %s will not start: %s%s"):format(name, w.reason, w.message and (": " .. w.message) or ""),
        hint = hint }
    end
  end
  return nil
end

-- Checks that an existing ServiceAccount the pod is to run under is there
-- and, for Workload Identity, names a managed identity: its client id, or nil, err.
function M.check_service_account(client, namespace, name, workload_identity)
  local sa, err = client:get("serviceaccounts", name, namespace)
  if not sa then
    if errors.is(err, "not_found") then
      err.message = ("ServiceAccount %s/%s does not exist"):format(namespace, name)
      err.hint = ("name an existing one with --service-account (kubectl -n %s get serviceaccounts), or leave it out "
        .. "to have the jump pod's own made"):format(namespace)
    end
    return nil, err
  end
  local id = ((sa.metadata or {}).annotations or {})[manifest.AZURE_CLIENT_ID]
  if workload_identity and not id then
    return nil, errors.new { code = "environment",
      message = ("ServiceAccount %s/%s has no annotation %s: Azure Workload Identity's webhook would give the pod "
        .. "no managed identity"):format(namespace, name, manifest.AZURE_CLIENT_ID),
      hint = ("annotate it (kubectl -n %s annotate serviceaccount %s %s=<client id>), or give the jump pod its own "
        .. "with --azure-client-id"):format(namespace, name, manifest.AZURE_CLIENT_ID) }
  end
  return id or true
end

-- Creates the objects; an existing ServiceAccount, Role or RoleBinding is
-- brought up to date, an existing Pod is kept if it runs the same image.
-- Then waits until the pod runs.
function M.apply(client, objects, timeout)
  local pod
  local annotations = objects[1].kind == "ServiceAccount" and objects[1].metadata.annotations or {}
  local role_arn = annotations["eks.amazonaws.com/role-arn"]
  local client_id = annotations[manifest.AZURE_CLIENT_ID]
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
      local id = client_id and pod_env(have, "AZURE_CLIENT_ID")
      if client_id and id ~= client_id then
        return nil, errors.new { code = "exists",
          message = ("pod %s exists already without the managed identity %s (%s)"):format(name, client_id,
            id and ("it has " .. id) or "no AZURE_CLIENT_ID in its environment"),
          hint = "Azure Workload Identity's webhook sets up a pod when it is created: delete it (jump-pod --delete) "
            .. "and --apply again" }
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
    local problem = M.pod_problem(p)
    if problem then return nil, problem end
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
M.delete = manifest.delete

-- --- the package, for the next steps ------------------------------------------

-- The package's name for this program, or for arch (tools/package).
M.package_name = manifest.package_name

-- The directory of the package this program runs from, or nil: a directory
-- named as the package, holding the program and share/doc/.../REQUIRES
-- (written by tools/package only).
function M.package_dir()
  local exe = runtime.executable()
  local dir = exe and exe:match("^(.*)/[^/]+$")
  if not dir or dir:match("[^/]+$") ~= M.package_name() then return nil end
  local fs = require "mxpc.fs"
  if not fs.stat(dir .. "/share/doc/" .. runtime.program .. "/REQUIRES") then return nil end
  return dir
end

-- A word for the shell, quoted only when it needs it.
local function sh(word)
  if word:match("^[%w_./:=@%%+-]+$") then return word end
  return "'" .. word:gsub("'", "'\\''") .. "'"
end

-- What to do once the pod runs: copy this very package in (from its own
-- directory, or the .tar.gz tools/package makes), run, delete. p.arch: the
-- nodes' architecture (another one than this program's: the package of that one).
function M.next_steps(p)
  local pkg, ns, pod = M.package_name(p.arch), sh(p.namespace), sh(p.name)
  local dir = p.package_dir
  if p.arch and p.arch ~= runtime.arch then dir = nil end -- this very package does not fit the node
  local copy
  if dir then
    local parent = dir:match("^(.*)/[^/]+$")
    copy = ("tar -C %s -czf - %s | kubectl -n %s exec -i %s -- tar -xzf - -C /tmp"):format(sh(parent ~= "" and parent or "/"),
      pkg, ns, pod)
  else
    copy = ("kubectl -n %s exec -i %s -- tar -xzf - -C /tmp < %s.tar.gz    # made by tools/package"):format(ns, pod, pkg)
  end
  local on = p.arch and (" on an %s node (the package for it: %s.tar.gz)"):format(p.arch, pkg) or ""
  return ([[
the jump pod %s runs in namespace %s%s. Next (see docs/jump-pod.md):
  %s
  kubectl -n %s exec %s -- /tmp/%s/%s backup -n %s -e %s -f - > backup.tar.gz
and when done: %s jump-pod -n %s -e %s --delete%s
]]):format(p.name, p.namespace, on, copy, ns, pod, pkg, runtime.program, ns, sh(p.environment), runtime.program, ns,
    sh(p.environment), p.custom_name and (" --name " .. pod) or "")
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
  local arch = opts.arch or manifest.default_arch()
  local objects = M.manifests { namespace = opts.namespace, environment = opts.environment, name = name,
    image = image or "", rules = M.rules(ops, not opts.delete and M.role_names(opts) or nil), role_arn = opts.role_arn,
    azure_client_id = opts.azure_client_id, service_account = opts.service_account,
    workload_identity = opts.workload_identity, arch = arch }
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
  if opts.service_account then
    assert(M.check_service_account(client, opts.namespace, opts.service_account, opts.workload_identity))
  end
  assert(M.apply(client, objects, tonumber(opts.timeout)))
  io.stderr:write(M.next_steps { namespace = opts.namespace, environment = opts.environment, name = name,
    custom_name = opts.name ~= nil, package_dir = M.package_dir(), arch = arch })
  return 0
end

return M
