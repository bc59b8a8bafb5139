-- Scheduled archives in a bucket or an Azure container (docs/schedule.md):
-- where a scheduled backup writes (PREFIX/NS/ENV/<UTC time>.tar.gz), the
-- index object written beside each archive once it is complete
-- (PREFIX/NS/ENV/<UTC time>.json: what `list` shows, and the marker that the
-- archive is ours), `list s3://...` (or azblob://...), `prune`, and the
-- archive `restore -f s3://.../NS/ENV/ --at TIME` picks. The store is an S3
-- or an Azure client: both have the same methods.
local cjson = require "cjson"
local errors = require "mxpc.error"
local log = require "mxpc.log"
local retention = require "mxpc.retention"
local runtime = require "mxpc.runtime"

local M = {}

M.WRITER = "mxpc-data-migration" -- the index's marker: written_by
M.FORMAT = 1
local STAMP = "%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ"

-- s3://BUCKET[/PREFIX] -> {bucket, prefix ("" or without slashes at its ends)};
-- azblob://ACCOUNT/CONTAINER[/PREFIX] -> the same with service = "azure" and
-- account (the container is the bucket).
function M.parse_location(spec)
  spec = tostring(spec)
  if spec:sub(1, 9) == "azblob://" then
    local account, container, rest = spec:match("^azblob://([^/]+)/([^/]+)/?(.*)$")
    if not account or rest:find("//", 1, true) then
      return nil, errors.new { code = "usage", message = ("%s is not an Azure Blob location"):format(spec),
        hint = "write azblob://ACCOUNT/CONTAINER/PREFIX, e.g. azblob://mystorage/backups/mxpc" }
    end
    return { service = "azure", account = account, bucket = container, prefix = (rest:gsub("/+$", "")), spec = spec }
  end
  local bucket, rest = spec:match("^s3://([^/]+)/?(.*)$")
  if not bucket or rest:find("//", 1, true) then
    return nil, errors.new { code = "usage", message = ("%s is not an S3 location"):format(spec),
      hint = "write s3://BUCKET/PREFIX, e.g. s3://backups/mxpc, or azblob://ACCOUNT/CONTAINER/PREFIX" }
  end
  return { bucket = bucket, prefix = (rest:gsub("/+$", "")), spec = spec }
end

-- Whether `spec` names a schedule's place (an s3:// or azblob:// location
-- ending in "/"), as backup -f and restore -f take it.
function M.is_schedule_place(spec)
  spec = tostring(spec)
  return spec:match("^s3://[^/]+/.*/$") ~= nil or spec:match("^s3://[^/]+/$") ~= nil
    or spec:match("^azblob://[^/]+/[^/]+/.*/$") ~= nil or spec:match("^azblob://[^/]+/[^/]+/$") ~= nil
end

-- The URL of an object of the location: s3://BUCKET/KEY or azblob://ACCOUNT/CONTAINER/KEY.
function M.url(loc, key)
  if loc.service == "azure" then return ("azblob://%s/%s/%s"):format(loc.account, loc.bucket, key) end
  return ("s3://%s/%s"):format(loc.bucket, key)
end

-- The location itself as a URL ending in "/" (a schedule's place).
function M.place(loc)
  return M.url(loc, loc.prefix ~= "" and (loc.prefix .. "/") or "")
end

-- The client of the location's bucket or container (archive_io.archive_store).
function M.store(opts, loc)
  return require("mxpc.archive_io").archive_store(opts, loc.service == "azure" and loc or nil)
end

function M.stamp(t) return os.date("!%Y%m%dT%H%M%SZ", t) end

-- "20261206T020003Z" -> epoch seconds, or nil.
function M.parse_stamp(s)
  local y, mo, d, h, mi, sec = tostring(s):match("^(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z$")
  if not y then return nil end
  return require("mxpc.selection").parse_time(("%s-%s-%sT%s:%s:%sZ"):format(y, mo, d, h, mi, sec))
end

local function join(...)
  local parts = {}
  for _, p in ipairs { ... } do if p ~= "" then parts[#parts + 1] = p end end
  return table.concat(parts, "/")
end

-- The key of a new scheduled archive and of its index.
function M.archive_key(prefix, namespace, environment, t)
  return join(prefix, namespace, environment, M.stamp(t) .. ".tar.gz")
end
function M.index_key(archive_key) return (archive_key:gsub("%.tar%.gz$", ".json")) end

-- The scheduled archives under a location, by environment: a list of
-- { namespace, environment, archives = { {key, time, size, etag, index}, ... } newest first },
-- sorted by namespace/environment. Only keys of the form
-- PREFIX/NS/ENV/<time>.tar.gz count; `index` is the index object's key when there is one.
function M.scan(store, loc)
  local base = loc.prefix ~= "" and (loc.prefix .. "/") or ""
  local groups, by_name, indexes = {}, {}, {}
  local objects, err = store:list(loc.bucket, base)
  if not objects then return nil, err end
  for _, o in ipairs(objects) do
    -- ...REST/NS/ENV/<time>.ext, where the location is REST, REST/NS or REST/NS/ENV
    local rest, ns, env, stamp, ext = ("/" .. o.key):match("^/?(.-)/([^/]+)/([^/]+)/(" .. STAMP .. ")%.(.+)$")
    if ns and loc.prefix ~= rest and loc.prefix ~= join(rest, ns) and loc.prefix ~= join(rest, ns, env) then
      ns = nil
    end
    if ns and ext == "json" then
      indexes[o.key] = true
    elseif ns and ext == "tar.gz" and M.parse_stamp(stamp) then
      local name = ns .. "/" .. env
      local g = by_name[name]
      if not g then
        g = { namespace = ns, environment = env, name = name, archives = {} }
        by_name[name] = g
        groups[#groups + 1] = g
      end
      g.archives[#g.archives + 1] = { key = o.key, time = M.parse_stamp(stamp), stamp = stamp, size = o.size,
        etag = o.etag }
    end
  end
  for _, g in ipairs(groups) do
    for _, a in ipairs(g.archives) do
      local ik = M.index_key(a.key)
      if indexes[ik] then a.index = ik end
    end
    table.sort(g.archives, function(a, b) return a.time > b.time end)
  end
  table.sort(groups, function(a, b) return a.name < b.name end)
  return groups
end

local function strip_quotes(etag) return (tostring(etag or ""):gsub('"', "")) end

-- Reads an archive's index: the table, or nil, why. It must carry the
-- marker and describe this very object (its key, size and ETag): anything
-- else was not written by a scheduled backup and is left alone.
function M.read_index(store, bucket, a)
  if not a.index then return nil, "no index object beside it" end
  local text, err = store:get_string(bucket, a.index)
  if not text then return nil, err end
  local ok, idx = runtime.pcall(cjson.decode, text)
  if not ok or type(idx) ~= "table" or idx.written_by ~= M.WRITER then return nil, "its index is not ours" end
  if idx.key ~= a.key or idx.size ~= a.size or strip_quotes(idx.etag) ~= strip_quotes(a.etag) then
    return nil, "its index describes another object (replaced since it was written?)"
  end
  return idx
end

-- Writes the index of a finished archive. info: {namespace, environment,
-- time, files, files_size, database_size, dump_size, model_version,
-- mendix_cloud}; head: {size, etag} of the archive.
function M.write_index(store, bucket, key, head, info)
  local idx = { written_by = M.WRITER, format = M.FORMAT, tool_version = runtime.version, key = key,
    size = head.size, etag = strip_quotes(head.etag), time = os.date("!%Y-%m-%dT%H:%M:%SZ", info.time),
    namespace = info.namespace, environment = info.environment, files = info.files, files_size = info.files_size,
    database_size = info.database_size, dump_size = info.dump_size, model_version = info.model_version,
    mendix_cloud = info.mendix_cloud }
  return store:put(bucket, M.index_key(key), cjson.encode(idx))
end

-- --- list ---------------------------------------------------------------------------------

-- Environments whose newest archive is older than max_age (a
-- retention.parse_duration result) at `now`: { {name, newest = time or nil}, ... }.
function M.stale(groups, max_age, now)
  local limit = retention.before(now, max_age)
  local out = {}
  for _, g in ipairs(groups) do
    local newest = g.archives[1]
    if not newest or newest.time < limit then out[#out + 1] = { name = g.name, newest = newest and newest.time } end
  end
  return out
end

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

local function age_text(seconds)
  if seconds >= 2 * 86400 then return ("%dd%dh"):format(seconds // 86400, seconds % 86400 // 3600) end
  return ("%dh%02dm"):format(seconds // 3600, seconds % 3600 // 60)
end

local COLUMNS = { "TIME", "ENVIRONMENT", "SIZE", "FILES", "DATABASE", "MODEL", "MENDIX CLOUD" }

-- list s3://BUCKET/PREFIX[/NS/ENV]: the archives newest first, from their
-- index objects (no archive is read). opts: json, max_age; now: the clock.
function M.list_command(opts, location, now)
  now = now or os.time()
  local loc = assert(M.parse_location(location))
  local max_age
  if opts.max_age then
    local why
    max_age, why = retention.parse_duration(opts.max_age)
    if not max_age then error(errors.new { code = "usage", message = "--max-age: " .. why }, 0) end
  end
  local store = assert(M.store(opts, loc))
  local groups = assert(M.scan(store, loc))
  local rows = {}
  for _, g in ipairs(groups) do
    for _, a in ipairs(g.archives) do
      local idx = M.read_index(store, loc.bucket, a) or {}
      for _, k in ipairs { "files", "database_size" } do idx[k] = math.tointeger(idx[k]) or idx[k] end
      rows[#rows + 1] = { time = a.time, key = a.key, namespace = g.namespace, environment = g.environment,
        size = a.size, files = idx.files, database_size = idx.database_size, model_version = idx.model_version,
        mendix_cloud = idx.mendix_cloud, indexed = idx.written_by ~= nil }
    end
  end
  table.sort(rows, function(a, b)
    if a.time ~= b.time then return a.time > b.time end
    return a.key < b.key
  end)
  if opts.json then
    local out = {}
    for i, r in ipairs(rows) do
      out[i] = cjson.encode { time = iso(r.time), namespace = r.namespace, environment = r.environment,
        url = M.url(loc, r.key), size = r.size, files = r.files, database_size = r.database_size,
        model_version = r.model_version, mendix_cloud = r.mendix_cloud, indexed = r.indexed }
    end
    -- (cjson writes "/" as "\/", valid JSON but unreadable in URLs)
    local text = '{"location":' .. cjson.encode(location) .. ',"archives":[' .. table.concat(out, ",") .. "]}"
    io.stdout:write((text:gsub("\\/", "/")), "\n")
  else
    local size_text = require("mxpc.progress").size_text
    local function v(x, f) return x == nil and "-" or (f and f(x) or tostring(x)) end
    local lines = { COLUMNS }
    for _, r in ipairs(rows) do
      lines[#lines + 1] = { iso(r.time), r.namespace .. "/" .. r.environment, size_text(r.size), v(r.files),
        v(r.database_size, size_text), log.escape(v(r.model_version)),
        r.mendix_cloud == nil and "-" or (r.mendix_cloud and "yes" or "no") }
    end
    local widths = {}
    for _, l in ipairs(lines) do
      for i, c in ipairs(l) do widths[i] = math.max(widths[i] or 0, #c) end
    end
    for _, l in ipairs(lines) do
      local cells = {}
      for i, c in ipairs(l) do cells[i] = i < #l and ("%-" .. widths[i] .. "s"):format(c) or c end
      io.stdout:write(table.concat(cells, "  "), "\n")
    end
  end
  if max_age then
    local stale = M.stale(groups, max_age, now)
    for _, s in ipairs(stale) do
      io.stderr:write(("stale: %s: the newest archive is from %s (%s ago), older than --max-age %s\n"):format(
        s.name, iso(s.newest), age_text(now - s.newest), opts.max_age))
      log.debug("stale environment", { event = "stale", environment = s.name, newest = iso(s.newest) })
    end
    if #stale > 0 then return 1 end
  end
  return 0
end

-- --- restore from a schedule -----------------------------------------------------------------

-- s3://BUCKET/PREFIX/NS/ENV/ (or azblob://ACCOUNT/CONTAINER/PREFIX/NS/ENV/) and
-- --at TIME -> the URL of the newest archive at or before TIME (without TIME:
-- the newest), or nil, err.
function M.pick(store, location, at)
  local loc = assert(M.parse_location(location))
  local groups, err = M.scan(store, loc)
  if not groups then return nil, err end
  local want = loc.prefix:match("([^/]+/[^/]+)$")
  for _, g in ipairs(groups) do
    if g.name == want then
      for _, a in ipairs(g.archives) do
        if a.index and (not at or a.time <= at) then return M.url(loc, a.key), a end
      end
      if not at then
        return nil, errors.new { code = "not_found", message = ("%s has no complete archive (none has its index)")
          :format(location), hint = "list them with: list " .. location }
      end
      return nil, errors.new { code = "not_found", message = ("%s has no archive at or before %s (the oldest is from %s)")
        :format(location, iso(at), iso(g.archives[#g.archives].time)), hint = "give a later --at" }
    end
  end
  return nil, errors.new { code = "not_found", message = ("%s holds no scheduled archive"):format(location),
    hint = "list the archives there with: list " .. M.place(loc):gsub("/$", "") }
end

-- --- prune ---------------------------------------------------------------------------------

-- The plan for each environment under the location: { {name, keep, remove, foreign}, ... }.
-- Archives without a valid index of ours are `foreign` and neither kept
-- by the policy nor deleted.
function M.plan(store, loc, policy)
  local groups, err = M.scan(store, loc)
  if not groups then return nil, err end
  local plans = {}
  for _, g in ipairs(groups) do
    local ours, foreign = {}, {}
    for _, a in ipairs(g.archives) do
      local idx, why = M.read_index(store, loc.bucket, a)
      if idx then
        ours[#ours + 1] = a
      elseif type(why) == "table" and not errors.is(why, "not_found") then
        return nil, why
      else
        a.why = tostring(why)
        foreign[#foreign + 1] = a
      end
    end
    local keep, remove = retention.apply(ours, policy)
    plans[#plans + 1] = { name = g.name, keep = keep, remove = remove, foreign = foreign }
  end
  return plans
end

-- Deletes what the plans remove (archive and index, in batches of 1,000);
-- the number of archives deleted, or nil, err.
function M.execute(store, bucket, plans)
  local keys, n = {}, 0
  for _, p in ipairs(plans) do
    for _, a in ipairs(p.remove) do
      keys[#keys + 1] = a.key
      keys[#keys + 1] = a.index
      n = n + 1
    end
  end
  if #keys == 0 then return 0 end
  local ok, err = store:delete_many(bucket, keys)
  if not ok then return nil, err end
  return n
end

-- prune: the policy's plan, said (and done unless dry_run).
function M.prune(store, loc, policy, dry_run, out)
  out = out or io.stdout
  local plans = assert(M.plan(store, loc, policy))
  local kept, removed = 0, 0
  for _, p in ipairs(plans) do
    for _, a in ipairs(p.keep) do
      out:write(("keep    %s  %s  (%s)\n"):format(p.name, iso(a.time), table.concat(a.reasons, ", ")))
    end
    for _, a in ipairs(p.remove) do
      out:write(("%s  %s  %s\n"):format(dry_run and "would delete" or "delete ", p.name, iso(a.time)))
    end
    for _, a in ipairs(p.foreign) do
      out:write(("skip    %s  %s: %s\n"):format(p.name, M.url(loc, a.key), a.why))
    end
    kept, removed = kept + #p.keep, removed + #p.remove
    log.info("prune plan", { event = "prune_plan", environment = p.name, keep = #p.keep, delete = #p.remove,
      skipped = #p.foreign, dry_run = dry_run or nil })
  end
  if not dry_run then assert(M.execute(store, loc.bucket, plans)) end
  log.info(dry_run and "prune: nothing deleted (--dry-run)" or "pruned", { event = "summary",
    location = loc.spec, environments = #plans, kept = kept, deleted = not dry_run and removed or 0,
    would_delete = dry_run and removed or nil })
  return { environments = #plans, kept = kept, removed = removed }
end

-- --- a scheduled backup ----------------------------------------------------------------------

-- What `list` shows of a finished archive, from a ranged read of its head
-- (no more than the .metadata entry and the start of the dump, pinned to
-- the ETag): {model_version, database_size, files_size, dump_size, mendix_cloud}.
local HEAD_RANGE = 256 * 1024
function M.read_head(store, bucket, key, head, name)
  local backup_archive = require "mxpc.backup_archive"
  local pos = 0
  local source = function()
    if pos >= head.size then return nil end
    local n = math.min(HEAD_RANGE, head.size - pos)
    local parts = {}
    local ok, err = store:get(bucket, key, function(c) parts[#parts + 1] = c end,
      { offset = pos, length = n, if_match = head.etag })
    if not ok then return nil, err end
    pos = pos + n
    return table.concat(parts)
  end
  local r <close>, err = require("mxpc.archive").reader(source, { name = name or ("s3://" .. bucket .. "/" .. key) })
  if not r then return nil, err end
  local meta, dump
  while not (meta and dump) do
    local e, eerr = r:next()
    if not e then return nil, eerr or errors.new { code = "archive", message = "the archive ends before its dump" } end
    if e.name == backup_archive.METADATA then
      meta = assert(backup_archive.parse_metadata(e:read(64 * 1024) or "{}"))
    elseif e.name == backup_archive.DUMP then
      dump = assert(backup_archive.parse_dump_header(e:read(64 * 1024) or ""))
    end
  end
  local compat = backup_archive.compatibility { kind = "archive", compression = "gzip", metadata = meta, dump = dump }
  return { model_version = meta.modelVersion, database_size = math.tointeger(tonumber(meta.databaseSize)),
    files_size = math.tointeger(tonumber(meta.filesSize)), dump_size = math.tointeger(tonumber(meta.dumpSize)),
    mendix_cloud = compat.mendix_cloud }
end

-- backup -f s3://BUCKET/PREFIX/ (or azblob://ACCOUNT/CONTAINER/PREFIX/; ending in "/"): the archive goes
-- to PREFIX/NS/ENV/<UTC time>.tar.gz, its index beside it once it is
-- complete (without the index the archive is deleted again: a run either
-- leaves both or neither), then the --keep-* policy prunes that
-- environment. run(opts) runs the backup workflow.
function M.scheduled_backup(opts, run)
  local loc = assert(M.parse_location(opts.file))
  local policy = M.policy_of(opts)
  local t = os.time()
  local key = M.archive_key(loc.prefix, opts.namespace, opts.environment, t)
  opts.file = M.url(loc, key)
  log.info("scheduled backup", { event = "scheduled_backup", to = opts.file, namespace = opts.namespace,
    environment = opts.environment })
  -- what the backup reports at its end (after_backup), kept for the index
  local hooks = require("mxpc.hooks").for_run(opts, "backup")
  local summary
  local user_hook = hooks.fns.after_backup
  hooks.fns.after_backup = function(ctx, s)
    summary = s
    if user_hook then return user_hook(ctx, s) end
  end
  local result = run(opts)
  if result ~= 0 then return result end
  local store = assert(M.store(opts, loc))
  local head = assert(store:head(loc.bucket, key))
  local info, err = M.read_head(store, loc.bucket, key, head, opts.file)
  local ok
  if info then
    info.namespace, info.environment, info.time = opts.namespace, opts.environment, t
    info.files = summary and summary.files
    ok, err = M.write_index(store, loc.bucket, key, head, info)
  end
  if not ok then
    store:delete(loc.bucket, key)
    error(errors.new { code = err.code or "s3", message = ("the archive's index could not be written, so the archive "
      .. "%s was deleted again: %s"):format(opts.file, tostring(err)), hint = err.hint }, 0)
  end
  log.info("archive indexed", { event = "indexed", archive = opts.file, index = M.index_key(key),
    files = info.files, database_size = info.database_size, model_version = info.model_version,
    mendix_cloud = info.mendix_cloud })
  if policy then
    M.prune(store, { service = loc.service, account = loc.account, bucket = loc.bucket,
      prefix = M.archive_key(loc.prefix, opts.namespace, opts.environment, t):match("^(.*)/[^/]+$"), spec = loc.spec },
      policy, false,
      log.format() ~= "json" and io.stderr or { write = function() end }) -- (JSON logs: the events say it)
  end
  return 0
end

-- The --keep-* options as a policy (nil when none is given).
function M.policy_of(opts)
  local policy, any = {}, false
  for _, k in ipairs(retention.RULES) do
    local v = opts["keep_" .. k]
    if v ~= nil then
      any = true
      policy[k] = v == "unlimited" and -1 or math.tointeger(tonumber(v))
      if policy[k] == nil then
        error(errors.new { code = "usage", message = ("--keep-%s: expected a whole number or 'unlimited', got %q")
          :format(k, v) }, 0)
      end
    end
  end
  if opts.keep_within then policy.within, any = opts.keep_within, true end
  if not any then return nil end
  local ok, why = retention.check(policy)
  if not ok then error(errors.new { code = "usage", message = why }, 0) end
  return policy
end

return M
