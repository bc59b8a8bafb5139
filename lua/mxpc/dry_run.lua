-- --dry-run of backup and restore: every check the real run makes before it
-- changes anything, all of them even when one fails, and what the run would
-- do. Nothing is written: no file, no object, no row, no replica. Kubernetes
-- permissions are asked with SelfSubjectAccessReviews (as kubectl auth
-- can-i), the database and the storage answer read-only requests.
-- backup(opts) and restore(opts, summary) print the plan on stdout and return
-- the exit code: 0 when the real run would start, 1 with the reasons.
local errors = require "mxpc.error"
local fs = require "mxpc.fs"
local log = require "mxpc.log"
local pg_programs = require "mxpc.pg_programs"
local wf = require "mxpc.workflow"

local M = {}

-- What the real runs ask of the Kubernetes API: resolving the environment
-- reads its MendixApp, StorageInstances and Secrets; --stop-app patches the
-- MendixApp and lists its pods.
M.RESOLVE_VERBS = { { "get", "mendixapps" }, { "get", "storageinstances" }, { "get", "secrets" } }
-- ... or, when its credentials are in a secret store, the MendixApp and its
-- SecretProviderClass (the store itself was read while resolving).
M.STORE_VERBS = { { "get", "mendixapps" }, { "get", "secretproviderclasses" } }
M.STOP_VERBS = { { "patch", "mendixapps" }, { "list", "pods" } }

-- The plan: lines that say what would happen, and the reasons the run would
-- not start.
local Plan = {}
Plan.__index = Plan

local function new_plan(what) return setmetatable({ what = what, lines = {}, reasons = {} }, Plan) end

function Plan:say(fmt, ...) self.lines[#self.lines + 1] = fmt:format(...) end

-- Records a failure (an error object or a message); returns nil.
function Plan:refuse(err, hint)
  err = type(err) == "table" and err or { message = tostring(err), hint = hint }
  self.reasons[#self.reasons + 1] = err
  return nil
end

-- ok, err of a step: ok, or nil with err recorded.
function Plan:check(ok, err)
  if not ok then return self:refuse(err) end
  return ok
end

function Plan:finish()
  local out = { ("dry run: %s"):format(self.what) }
  for _, l in ipairs(self.lines) do out[#out + 1] = "  " .. l end
  if #self.reasons == 0 then
    out[#out + 1] = "the real run would start: nothing was changed"
  else
    out[#out + 1] = ("the real run would not start (%d reason%s):"):format(#self.reasons, #self.reasons > 1 and "s" or "")
    for _, r in ipairs(self.reasons) do
      out[#out + 1] = "  - " .. r.message
      if r.hint then out[#out + 1] = "    hint: " .. r.hint end
    end
  end
  for _, l in ipairs(out) do io.stdout:write(log.escape(log.redact(l)), "\n") end
  if log.format() == "json" then -- the plan as an event too, for whoever reads the JSON lines
    local why = {}
    for _, r in ipairs(self.reasons) do why[#why + 1] = r.message .. (r.hint and (" (hint: " .. r.hint .. ")") or "") end
    log.info("dry run", { event = "dry_run", run = self.what, would_start = #self.reasons == 0,
      plan = table.concat(self.lines, "\n"), reasons = #self.reasons, why = #why > 0 and table.concat(why, "\n") or nil })
  end
  return #self.reasons == 0 and 0 or 1
end

-- Asks the server whether the cluster's user may do each of `verbs`.
local function check_access(plan, client, namespace, verbs, why)
  local info = client:info()
  local who = info.in_cluster and "the pod's service account" or ('the user of context "%s"'):format(info.context or "?")
  local k8s_api = require "mxpc.k8s_api"
  local answers = {}
  for i, v in ipairs(verbs) do
    local allowed, err = client:can_i(v[1], v[2], { namespace = namespace })
    if allowed == nil then return plan:refuse(err) end
    answers[i] = allowed
    if allowed then k8s_api.saw_namespace(client, namespace) end -- (a namespace that does not exist allows nothing)
  end
  local refused, doubt, missing = {}, nil, nil
  for i, v in ipairs(verbs) do
    local verb, resource = v[1], v[2]
    local allowed = answers[i]
    local r = require("mxpc.k8s").resource(resource)
    if not allowed then
      refused[#refused + 1] = verb .. " " .. r.display
      if #refused == 1 then doubt, missing = k8s_api.namespace_doubt(client, namespace) end
      local hint = k8s_api.rule_hint(who, namespace, r, verb)
      plan:refuse(('%s may not %s %s in namespace "%s" (%s)'):format(who, verb, r.display, namespace, why),
        missing and doubt or doubt and (doubt .. "; if it is right, " .. hint) or hint)
    end
  end
  if #refused == 0 then
    local names = {}
    for _, v in ipairs(verbs) do names[#names + 1] = v[1] .. " " .. v[2] end
    plan:say("Kubernetes: %s may %s", who, table.concat(names, ", "))
  end
end

-- The cluster, the permissions and the environment; env or nil.
local function resolve(plan, opts)
  local client, err = wf.connect_cluster(opts)
  if not client then return plan:refuse(err) end
  local env, rerr = wf.resolve(opts, client)
  check_access(plan, client, opts.namespace, env and env.store and M.STORE_VERBS or M.RESOLVE_VERBS,
    "to read the environment's settings")
  if not env then return plan:refuse(rerr) end
  plan:say("environment %s/%s: database %s:%s/%s, files %s/%s/%s", env.namespace, env.name, env.database.host,
    env.database.port, env.database.dbname, env.storage.endpoint, env.storage.bucket, env.storage.prefix)
  return env
end

-- The database: connected, and its size; the connection or nil.
local function database(plan, env, label)
  local db, err = wf.connect_database(env)
  if not db then return plan:refuse(err) end
  local facts = wf.database_facts(db)
  plan:say("%s: answers, %d bytes, model version %s", label or "database", facts.size, facts.model_version)
  return db, facts
end

function M.backup(opts)
  local plan = new_plan(("backup of %s/%s into %s"):format(opts.namespace, opts.environment, opts.file))
  plan:check(pg_programs.find("pg_dump"))
  if wf.location(opts.file).kind == "stdio" then
    plan:say("archive: would go to standard output")
  else -- a file, or an S3 key (its bucket answers, the key is free or --force)
    local target, terr = wf.check_target(opts)
    if plan:check(target, terr) then
      plan:say("archive: %s can be written%s", opts.file,
        target.kind == "file" and fs.stat(opts.file) and " (it exists: --force replaces it)" or "")
    end
  end
  local env = resolve(plan, opts)
  if not env then return plan:finish() end
  local db <close> = database(plan, env)
  if db then assert(wf.check_files_of(db, opts.files_of)) end -- a usage error, as in the real run
  if opts.database_only then
    if db then plan:say("would write the database only, as a pg_dump -Fc file") end
    return plan:finish()
  end
  local store <close>, serr = wf.connect_storage(env)
  if not plan:check(store, serr) then return plan:finish() end
  plan:say("storage: answers")
  if not db then return plan:finish() end
  -- --files-* and a select_file hook choose as in the real run (no other hook is called)
  local hooks = wf.hooks(opts, "backup"):set { env = env, db = db, storage = store }
  local chosen, ferr = wf.files_to_copy(db, store, env, hooks, opts, wf.transfer_options(opts))
  if not plan:check(chosen, ferr) then return plan:finish() end
  local missing, selected = chosen.missing, chosen.selected
  local bytes = chosen.files:bytes()
  plan:say("would write the database and %d files (%d bytes)%s%s", #chosen.files, bytes,
    #missing > 0 and (", skipping %d files missing from storage"):format(#missing) or "",
    selected and (" (%s)"):format(selected) or "")
  return plan:finish()
end

-- The app of the environment written to: a real run refuses a running one
-- without --stop-app, and stops it with it (a stopped app is left alone: no
-- patch, no pod list).
local function app_stopped(plan, env, stop, what)
  local pods = wf.running_pods(env)
  local running = (env.replicas or 0) > 0 or (pods or 0) > 0
  if running and not stop then
    plan:check(wf.app_control(env):ensure_stopped(false))
  elseif running then
    check_access(plan, env.client, env.namespace, M.STOP_VERBS, "--stop-app")
    plan:say("would stop %s (%d replicas%s) and start it again afterwards", what, env.replicas or 0,
      pods and (", %d pods"):format(pods) or "")
  else
    plan:say("%s is stopped", what)
  end
end

-- Whether the restore can replace the contents of schema public: CREATE on
-- it, and every relation there owned by a role of the user.
local function database_writable(plan, db)
  local rows, err = db:query([[
select has_schema_privilege('public', 'CREATE') as can_create,
       (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
           and not pg_has_role(c.relowner, 'USAGE')) as not_owned]])
  if not rows then return plan:refuse(err) end
  local r = rows[1]
  if not r.can_create then
    plan:refuse("the database user may not create tables in schema public", "GRANT CREATE ON SCHEMA public TO the user")
  end
  if r.not_owned > 0 then
    plan:refuse(("%d tables, views or sequences in schema public belong to another role: the restore could not drop "
      .. "them"):format(r.not_owned), "restore as the role that owns them (the environment's database user)")
  end
end

function M.restore(opts, summary)
  local plan = new_plan(("restore of %s into %s/%s"):format(opts.file, opts.namespace, opts.environment))
  local with_db, with_files = not opts.files_only, not opts.database_only and summary.kind ~= "dump"
  plan:say("archive: checked, %s%d files (%d bytes)", summary.dump and ("database dump of %d bytes, "):format(
    summary.dump.size) or "", summary.files or 0, summary.files_bytes or 0)
  if opts.safety_backup then
    local ok, err = wf.check_safety_backup(opts)
    if plan:check(ok, err) then plan:say("would first write a safety backup to %s", opts.safety_backup) end
  end
  if opts.delete_extra_files and not with_files then
    plan:refuse("--delete-extra-files: the restore leaves the files as they are (a database-only backup, or "
      .. "--database-only)")
  end
  local env = resolve(plan, opts)
  if not env then return plan:finish() end

  app_stopped(plan, env, opts.stop_app, "the app")

  if with_db then
    local db <close> = database(plan, env)
    if db then
      database_writable(plan, db)
      plan:say("would replace the database's contents with the archive's dump, in one transaction")
    end
  end
  if with_files then
    local store <close>, serr = wf.connect_storage(env)
    if plan:check(store, serr) then
      plan:say("storage: answers")
      local cmp, cerr = wf.compare_storage(store, env, summary)
      if cmp then
        plan:say("would upload %d files (%d bytes): %d overwrite objects there, %d are new", summary.files or 0,
          summary.files_bytes or 0, cmp.present, (summary.files or 0) - cmp.present)
        plan:say("%d files in storage are not in the archive: %s", #cmp.extra,
          opts.delete_extra_files and "--delete-extra-files would delete them after the restore"
          or "they would stay (--delete-extra-files deletes them)")
      elseif opts.delete_extra_files or not errors.is(cerr, "forbidden") then
        plan:refuse(cerr)
      else
        plan:say("would upload %d files (%d bytes); how many overwrite objects is unknown: %s", summary.files or 0,
          summary.files_bytes or 0, cerr.message)
      end
    end
  end
  return plan:finish()
end

-- The copy's dry run: both environments resolved and checked as the real run
-- would use them (the source as a backup reads it, the target as a restore
-- writes it), and what would be copied and how.
function M.copy(opts)
  local plan = new_plan(("copy of %s into %s"):format(opts.from, opts.to))
  local with_db, with_files = not opts.files_only, not opts.database_only
  local fo, to = wf.side_options(opts, "from"), wf.side_options(opts, "to")
  if opts.safety_backup then
    local ok, err = wf.check_safety_backup { safety_backup = opts.safety_backup }
    if plan:check(ok, err) then plan:say("would first write a safety backup of the target to %s", opts.safety_backup) end
  end
  plan:say("source:")
  local from = resolve(plan, fo)
  plan:say("target:")
  local target = resolve(plan, to)
  if not from or not target then return plan:finish() end
  local same_ok, same_err = wf.check_not_same(from, target, opts)
  if not same_ok then error(same_err, 0) end -- a usage error, as in the real run
  local src_db <close>, facts = database(plan, from, "source database")
  if src_db then assert(wf.check_files_of(src_db, opts.files_of)) end
  local src_store, serr
  if with_files then
    src_store, serr = wf.connect_storage(from)
    if plan:check(src_store, serr) then plan:say("source storage: answers") end
  end
  local _ <close> = src_store
  -- the target's app, as restore's dry run sees it
  app_stopped(plan, target, opts.stop_app, "the target's app")
  if with_db then
    local dst_db <close> = database(plan, target, "target database")
    if dst_db then
      database_writable(plan, dst_db)
      if facts then
        plan:say("would replace the target's database with the source's (%d bytes), in one transaction", facts.size)
      end
    end
  end
  if with_files then
    local dst_store <close>, derr = wf.connect_storage(target)
    if plan:check(dst_store, derr) then plan:say("target storage: answers") end
    if src_db and src_store and dst_store then
      local hooks = wf.hooks(opts, "copy"):set { env = from, db = src_db, storage = src_store }
      local chosen, cerr = wf.files_to_copy(src_db, src_store, from, hooks, opts, wf.transfer_options(opts))
      if plan:check(chosen, cerr) then
        local mode, why = wf.copy_mode({ env = from, store = src_store }, { env = target, store = dst_store },
          opts.copy_mode, chosen.files)
        plan:say("would copy %d files (%d bytes)%s, %s (%s)", #chosen.files, chosen.files:bytes(),
          chosen.selected and (" (%s)"):format(chosen.selected) or "", mode, why)
        if opts.delete_extra_files then
          local cmp, xerr = wf.compare_storage(dst_store, target, { uuids = chosen.files })
          if plan:check(cmp, xerr) then
            plan:say("--delete-extra-files would delete %d files the source lacks", #cmp.extra)
          end
        end
      end
    end
  end
  return plan:finish()
end

return M
