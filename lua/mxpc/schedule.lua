-- Backups on a schedule, run by Kubernetes (docs/schedule.md): a ServiceAccount,
-- a Role with exactly a backup's permissions, its RoleBinding and one CronJob
-- per environment whose Job runs `backup -f s3://BUCKET/PREFIX/ --keep-...`
-- in the tool's image. `schedule` prints them, creates them (--apply) or
-- deletes them (--delete).
local errors = require "mxpc.error"
local log = require "mxpc.log"
local manifest = require "mxpc.k8s_manifest"
local runtime = require "mxpc.runtime"

local M = {}

M.UID = 1001
M.NAME = "mxpc-backup" -- the ServiceAccount, Role and RoleBinding of a namespace's schedules
M.STAGGER_MINUTES = 5 -- --all: one environment after the other
M.PG_MAJOR = "15"
-- the image tools/image builds: the tool's version and the PostgreSQL major
function M.default_image() return ("mxpc-data-migration:%s-pg%s"):format(runtime.version, M.PG_MAJOR) end

-- The Job's limits: one run at a time, started within an hour of its time,
-- retried twice, stopped after 6 hours, its Job kept a day.
M.LIMITS = { starting_deadline = 3600, backoff = 2, active_deadline = 6 * 3600, ttl = 86400, history = 3 }

-- A cron schedule of five fields (minute hour day month weekday), as the
-- CronJob controller reads it; nil, why otherwise.
function M.check_cron(cron)
  local fields = {}
  for f in tostring(cron):gmatch("%S+") do fields[#fields + 1] = f end
  if #fields == 1 and fields[1]:match("^@%a+$") then return true end
  if #fields ~= 5 then
    return nil, ("%q has %d fields; a schedule has five: minute hour day-of-month month day-of-week, " ..
      "e.g. \"0 2 * * *\""):format(cron, #fields)
  end
  for _, f in ipairs(fields) do
    if not f:match("^[%w*/,?-]+$") then return nil, ("%q: field %q is not a cron field"):format(cron, f) end
  end
  return true
end

-- The schedule of the i-th environment (0-based): a plain minute and hour
-- move on by i * STAGGER_MINUTES (past midnight they wrap); a plain minute
-- under any hour moves within the hour; anything else stays as it is.
function M.stagger(cron, i)
  if i == 0 then return cron end
  local m, h, rest = cron:match("^(%d+)%s+(%S+)%s+(.*)$")
  if not m then return cron end
  local shift = i * M.STAGGER_MINUTES
  if h:match("^%d+$") then
    local t = (tonumber(h) * 60 + tonumber(m) + shift) % 1440
    return ("%d %d %s"):format(t % 60, t // 60, rest)
  end
  return ("%d %s %s"):format((tonumber(m) + shift) % 60, h, rest)
end

-- A CronJob's name (at most 52 characters, the controller's limit).
function M.cronjob_name(environment)
  return (("mxpc-backup-%s"):format(environment):sub(1, 52):gsub("[-.]+$", ""))
end

-- The Role's rules: those of a backup (jump_pod.rules), each limited to the
-- objects the environments' backups read where their names are known
-- (names as jump_pod.resource_names gives them).
function M.rules(names)
  local function sorted(list)
    if not list or #list == 0 then return nil end
    list = { table.unpack(list) }
    table.sort(list)
    return list
  end
  return require("mxpc.jump_pod").rules({ environments = sorted(names.apps) }, { apps = sorted(names.apps),
    storage_instances = sorted(names.storage_instances), secrets = sorted(names.secrets) })
end

-- The container's arguments: a backup to the schedule's location, then the prune.
function M.job_args(p, env)
  local a = { "backup", "-n", p.namespace, "-e", env, "-f", p.to, "--log-format", "json" }
  for _, k in ipairs { "last", "hourly", "daily", "weekly", "monthly", "yearly", "within" } do
    local v = p.keep and p.keep["keep_" .. k]
    if v then a[#a + 1] = "--keep-" .. k; a[#a + 1] = tostring(v) end
  end
  if p.archive_endpoint then a[#a + 1] = "--archive-endpoint"; a[#a + 1] = p.archive_endpoint end
  if p.archive_region then a[#a + 1] = "--archive-region"; a[#a + 1] = p.archive_region end
  return a
end

-- Every object, in creation order. p = {namespace, envs, to, cron, image,
-- timezone, role_arn, azure_client_id, keep, archive_endpoint, archive_region, names, arch}.
-- azure_client_id (Azure Workload Identity, for azblob:// places) annotates
-- the ServiceAccount and labels the jobs' pods azure.workload.identity/use.
-- arch (amd64, arm64) pins the jobs' pods to nodes of that architecture
-- (nodeSelector kubernetes.io/arch); the CronJob's annotation
-- mxpc-data-migration/package names the package of the image that runs there.
function M.manifests(p)
  local labels = { ["app.kubernetes.io/name"] = "mxpc-data-migration", ["app.kubernetes.io/component"] = "schedule" }
  local objects = manifest.access { name = M.NAME, namespace = p.namespace, labels = labels,
    rules = M.rules(p.names or {}), role_arn = p.role_arn, azure_client_id = p.azure_client_id }
  local L = M.LIMITS
  for i, env in ipairs(p.envs) do
    local env_labels = { ["app.kubernetes.io/name"] = "mxpc-data-migration",
      ["app.kubernetes.io/component"] = "schedule", ["mxpc-data-migration/environment"] = env }
    objects[#objects + 1] = {
      apiVersion = "batch/v1", kind = "CronJob",
      metadata = { name = M.cronjob_name(env), namespace = p.namespace, labels = env_labels,
        annotations = p.arch and { ["mxpc-data-migration/package"] = manifest.package_name(p.arch) } or nil },
      spec = {
        schedule = M.stagger(p.cron, i - 1), timeZone = p.timezone,
        concurrencyPolicy = "Forbid", startingDeadlineSeconds = L.starting_deadline,
        successfulJobsHistoryLimit = L.history, failedJobsHistoryLimit = L.history,
        jobTemplate = {
          metadata = { labels = env_labels },
          spec = {
            backoffLimit = L.backoff, activeDeadlineSeconds = L.active_deadline, ttlSecondsAfterFinished = L.ttl,
            template = {
              metadata = { labels = manifest.pod_labels(env_labels, p.azure_client_id ~= nil) },
              spec = {
                nodeSelector = manifest.node_selector(p.arch),
                serviceAccountName = M.NAME, automountServiceAccountToken = true, restartPolicy = "Never",
                securityContext = manifest.pod_security(M.UID),
                containers = { {
                  name = "backup", image = p.image,
                  command = { "mxpc-data-migration" }, args = M.job_args(p, env),
                  workingDir = "/tmp",
                  env = { { name = "HOME", value = "/tmp" }, { name = "TMPDIR", value = "/tmp" } },
                  securityContext = manifest.container_security(),
                  volumeMounts = { { name = "tmp", mountPath = "/tmp" } },
                } },
                -- the only writable place: the dump and files in transit
                volumes = { { name = "tmp", emptyDir = {} } },
              },
            },
          },
        },
      },
    }
  end
  return objects
end

-- The environments of the namespace (--all): the names of its MendixApps.
local function all_environments(client, namespace)
  local list, err = client:list("mendixapps", { namespace = namespace })
  if not list then return nil, err end
  local envs = {}
  for _, app in ipairs(list.items or list) do envs[#envs + 1] = app.metadata.name end
  table.sort(envs)
  if #envs == 0 then
    return nil, errors.new { code = "not_found", message = ("namespace %s has no MendixApp"):format(namespace),
      hint = ("kubectl -n %s get mendixapps"):format(namespace) }
  end
  return envs
end

-- Creates the objects, or brings existing ones up to date.
local UPDATE = { ServiceAccount = {}, Role = { "rules" }, RoleBinding = { "subjects" }, CronJob = { "spec" } }
function M.apply(client, objects)
  for _, o in ipairs(objects) do
    local what, err = manifest.create_or_update(client, o, UPDATE[o.kind])
    if not what then return nil, err end
    manifest.say(o.kind, o.metadata.name, what)
  end
  return true
end

-- The schedule command.
function M.command(opts)
  local loc = assert(require("mxpc.backup_store").parse_location(opts.to))
  if loc.service == "azure" and not opts.azure_client_id and not opts.delete then
    error(errors.new { code = "usage", message = ("the jobs cannot reach %s: a job's pod has no Azure credentials of "
      .. "its own"):format(opts.to), hint = "give --azure-client-id ID: the managed identity (Azure Workload Identity) "
      .. "the jobs' ServiceAccount is annotated with; it needs Storage Blob Data Contributor on the container" }, 0)
  end
  local ok, why = M.check_cron(opts.cron)
  if not ok then error(errors.new { code = "usage", message = "--cron: " .. why }, 0) end
  local keep = {}
  for k, v in pairs(opts) do if k:match("^keep_") then keep[k] = v end end
  require("mxpc.backup_store").policy_of(opts) -- a policy that keeps nothing is refused here
  local client
  local function connect()
    if client == nil then
      local k8s = require "mxpc.k8s"
      local c, err = k8s.connect { kubeconfig = opts.kubeconfig, context = opts.context, namespace = opts.namespace }
      if not c and (opts.apply or opts.delete or opts.all) then error(err, 0) end
      if not c then log.info("the cluster cannot be reached; printing without it", { reason = err.message }) end
      client = c or false
    end
    return client or nil
  end
  local envs = opts.all and assert(all_environments(connect(), opts.namespace)) or { opts.environment }
  local function role_names()
    local c = connect()
    return require("mxpc.jump_pod").resource_names(c, opts.namespace, envs, not c and "the cluster cannot be reached"
      or nil)
  end
  local objects = M.manifests { namespace = opts.namespace, envs = envs, cron = opts.cron, image = opts.image
    or M.default_image(), timezone = opts.timezone, role_arn = opts.role_arn, azure_client_id = opts.azure_client_id,
    keep = keep,
    to = require("mxpc.backup_store").place(loc),
    archive_endpoint = opts.archive_endpoint, archive_region = opts.archive_region,
    arch = opts.arch or manifest.default_arch(),
    names = not opts.delete and role_names() or nil }
  if opts.delete then
    -- the namespace's ServiceAccount, Role and RoleBinding serve every schedule: removed with --all only
    if not opts.all then
      local only = {}
      for _, o in ipairs(objects) do if o.kind == "CronJob" then only[#only + 1] = o end end
      objects = only
    end
    assert(manifest.delete(connect(), objects))
    return 0
  end
  if not opts.apply then
    io.stdout:write(manifest.render(objects, opts.output or "yaml"))
    return 0
  end
  assert(M.apply(connect(), objects))
  local arch = opts.arch or manifest.default_arch()
  io.stderr:write(("%d CronJob%s in namespace %s back up to %s%s. To run one now:\n" ..
    "  kubectl -n %s create job --from=cronjob/%s %s-now\n"):format(#envs, #envs == 1 and "" or "s",
    opts.namespace, opts.to, arch and (" on %s nodes (the image's %s)"):format(arch, manifest.package_name(arch)) or "", opts.namespace, M.cronjob_name(envs[1]), M.cronjob_name(envs[1]):sub(1, 48)))
  return 0
end

return M
