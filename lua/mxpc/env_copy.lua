-- One environment copied into another (scripts/copy.lua): the two
-- environments found and proved not to be one, the source's files copied
-- into the target's storage, the source's database streamed into the
-- target's in one transaction that commits only when asked.
-- Reached through the wf.* facade (mxpc.workflow).
local errors = require "mxpc.error"

local M = {}

-- "NS/ENV" -> namespace, environment; or nil, why.
function M.parse_env_ref(value)
  local args = require "mxpc.args"
  local ns, name = tostring(value):match("^([^/]*)/([^/]*)$")
  if not ns then return nil, "expected NAMESPACE/ENVIRONMENT, e.g. mendix/my-app-prod" end
  local ok, why = args.check_label(ns)
  if not ok then return nil, ("namespace %q: %s"):format(ns, why) end
  ok, why = args.check_subdomain(name)
  if not ok then return nil, ("environment %q: %s"):format(name, why) end
  return ns, name
end

-- The options wf.resolve takes for one side ("from" or "to") of a copy.
function M.side_options(opts, side)
  local ns, name = M.parse_env_ref(opts[side])
  return { namespace = ns, environment = name, kubeconfig = opts[side .. "_kubeconfig"],
    context = opts[side .. "_context"], db_sslmode = opts.db_sslmode, identity = opts.identity, side = side }
end

local function same_text(a, b) return a ~= nil and b ~= nil and tostring(a):lower() == tostring(b):lower() end

local function refuse_same(what, hint)
  return nil, errors.new { code = "usage",
    message = ("--from and --to are the same environment: %s"):format(what),
    hint = hint or "copy into another environment; to go back to an earlier state, restore a backup" }
end

-- Refuses a copy of an environment onto itself: the same namespace and name
-- in the same cluster, or (reached two ways) the same database or the same
-- place in storage. Only what the copy writes counts: the database unless
-- files_only, the files unless database_only. true, or nil, err (a usage
-- error, exit 2).
function M.check_not_same(from, to, opts)
  opts = opts or {}
  local fi, ti = from.client and from.client:info() or {}, to.client and to.client:info() or {}
  if from.namespace == to.namespace and from.name == to.name and same_text(fi.server, ti.server) then
    return refuse_same(("%s/%s in the cluster at %s"):format(from.namespace, from.name, fi.server))
  end
  local a, b = from.database, to.database
  if not opts.files_only and same_text(a.host, b.host) and tostring(a.port) == tostring(b.port)
    and a.dbname == b.dbname then
    return refuse_same(("%s/%s and %s/%s use the same database %s:%s/%s"):format(from.namespace, from.name,
      to.namespace, to.name, a.host, a.port, a.dbname))
  end
  local s, t = from.storage, to.storage
  if not opts.database_only and same_text(s.endpoint:gsub("/+$", ""), t.endpoint:gsub("/+$", ""))
    and s.bucket == t.bucket and (s.prefix or "") == (t.prefix or "") then
    return refuse_same(("%s/%s and %s/%s keep their files in the same place (%s, bucket %s, prefix %q)"):format(
      from.namespace, from.name, to.namespace, to.name, s.endpoint, s.bucket, s.prefix or ""))
  end
  return true
end

-- Finds both environments (each in its own cluster: --from-kubeconfig,
-- --to-context, ...) and refuses a copy onto itself. Returns from, to (the
-- environments of wf.resolve) or nil, err.
function M.both_environments(opts)
  local wf = require "mxpc.workflow"
  local fo, to = M.side_options(opts, "from"), M.side_options(opts, "to")
  local from_env, err = wf.resolve(fo)
  if not from_env then return nil, errors.new { code = err.code, message = "the source: " .. err.message,
    hint = err.hint } end
  local to_env, terr = wf.resolve(to)
  if not to_env then return nil, errors.new { code = terr.code, message = "the target: " .. terr.message,
    hint = terr.hint } end
  local ok, serr = M.check_not_same(from_env, to_env, opts)
  if not ok then return nil, serr end
  -- (what a dry run says of each side's database, storage and app names it)
  from_env.role, to_env.role = "source", "target"
  return from_env, to_env
end

-- --- the files -----------------------------------------------------------------------------

-- Copies the files of `a.files` (a fileset) from the source's storage into
-- the target's (mxpc.file_copy): a = {from = {store =, env =}, to = {store =,
-- env =}, files =, mode = "auto"|"server"|"stream", transfer =, on_file =
-- fn(uuid, bytes)}. Returns {files =, bytes =, mode =, why =} or nil, err.
function M.copy_files(a) return require("mxpc.file_copy").copy(a) end

-- How the files would be copied: mode, why (for -v and --dry-run); `files`
-- lets it probe the first source object with the target's credentials.
function M.copy_mode(from, to, wanted, files)
  return require("mxpc.file_copy").decide { from = from, to = to, mode = wanted, files = files }
end

-- --- the database ----------------------------------------------------------------------------

-- Starts streaming the source's database (pg_dump of a.snapshot, no file)
-- into the target's, in one transaction that commits only at
-- h:commit(extra_sql): a = {from = env, to = env, snapshot =
-- (source_snapshot's)}. h:loaded() waits until the source is read (true or
-- nil, err); h:commit(sql) commits with the restore_sql hook's SQL inside
-- (true or nil, err); closing it without a commit leaves the target's
-- database as it was (database.start_restore).
function M.copy_database(a)
  return require("mxpc.database").start_restore(a.to, { from_env = a.from, snapshot = a.snapshot and a.snapshot.id })
end

return M
