-- The options the commands share, with their checks: the global ones, how
-- to reach the cluster and the environment, an archive in S3 or Azure or in
-- Mendix Cloud, the transfer's concurrency and window, hooks, the --files-*
-- selection and the retention policy. Data for main.lua's command{} (see
-- cli_docs.lua for what an option may say).
local args = require "mxpc.args"
local fs = require "mxpc.fs"
local selection = require "mxpc.selection"

local M = {}

local global_options = {
  { short = "v", long = "verbose", count = true, help = "more output (-vv: trace)" },
  { short = "q", long = "quiet", count = true, help = "less output: no progress, warnings and errors only (-qq: errors only)" },
  { long = "log-format", value = "FORMAT", choices = { "text", "json" },
    help = "text (default) or json (JSON lines on stderr)",
    check = function(v) return v == "text" or v == "json", "expected text or json" end },
  { long = "debug", help = "show the Lua traceback of an error" },
  { long = "scripts", value = "DIR", help = "load Lua scripts from DIR first (see 'scripts export')" },
  { short = "h", long = "help", help = "show this help" },
  { short = "V", long = "version", help = "print the version and the library versions (as 'version')" },
}

-- How many S3 requests run at once, and how much memory objects in transit may take.
local function check_count(max)
  return function(v)
    local n = tonumber(v)
    if not n or math.type(n) ~= "integer" or n < 1 or n > max then return nil, ("a whole number 1..%d"):format(max) end
    return true
  end
end
local transfer_options = {
  { long = "concurrency", value = "N", check = check_count(256),
    help = "S3 requests in flight at once (default 16)" },
  { long = "window", value = "MIB", check = check_count(65536),
    help = "memory for files in transit, in MiB (default 32); larger files go through the working directory" },
}

local env_options = {
  { short = "n", long = "namespace", value = "NAMESPACE", required = true,
    help = "Kubernetes namespace of the environment", check = args.check_label },
  { short = "e", long = "environment", value = "ENVIRONMENT", required = true,
    help = "the environment's internal name (its MendixApp)", check = args.check_subdomain },
  { long = "kubeconfig", value = "FILE", help = "kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster)" },
  { long = "context", value = "NAME", help = "kubeconfig context to use (default: the current one)" },
  { long = "db-sslmode", value = "MODE", choices = { "disable", "allow", "prefer", "require", "verify-ca", "verify-full" },
    help = "stronger database TLS than the environment asks for " ..
    "(require, verify-ca, verify-full; never weaker; default: $PGSSLMODE)",
    check = function(v)
      return require("mxpc.environment").sslmode_name(v) ~= nil,
        "expected disable, allow, prefer, require, verify-ca or verify-full"
    end },
  { long = "db-iam", help = "log in to the database with RDS IAM tokens (AWS credentials) even if the Secret " ..
    "has a password" },
  { long = "identity", value = "WHO", choices = { "environment", "tool" },
    help = "who reads a secret store (SecretProviderClass): environment = the environment's ServiceAccount " ..
    "(a short-lived token; needs create on serviceaccounts/token), tool = the tool's own credentials " ..
    "(default: environment)",
    check = function(v) return v == "environment" or v == "tool", "expected environment or tool" end },
}

-- Where an archive is kept when -f is s3://BUCKET/KEY or azblob://ACCOUNT/CONTAINER/BLOB.
local archive_options = {
  { long = "archive-endpoint", value = "URL",
    help = "S3 endpoint of -f s3://... (default: AWS S3 of the region), or the blob endpoint of -f azblob://... " ..
      "(default: https://ACCOUNT.blob.core.windows.net)" },
  { long = "archive-region", value = "REGION", help = "its region (default: $AWS_REGION, us-east-1)" },
  { long = "archive-profile", value = "NAME",
    help = "profile of the AWS shared credentials file (default: $AWS_PROFILE, default)" },
}

-- -f mendix-cloud://APP/ENVIRONMENT[/SNAPSHOT] (restore, inspect, verify; docs/mendix-cloud.md)
local mendix_options = {
  { long = "mendix-credentials", value = "FILE",
    help = "file with MENDIX_USERNAME=... and MENDIX_API_KEY=... lines (default: those environment variables)" },
  { long = "new-snapshot", help = "with -f mendix-cloud://APP/ENVIRONMENT: make a new snapshot first and read it" },
}
local function check_mendix_options(opts, file)
  local cloud = file and file:sub(1, 15) == "mendix-cloud://"
  if opts.new_snapshot and not cloud then
    args.usage_error("--new-snapshot makes a snapshot in Mendix Cloud: it needs -f mendix-cloud://APP/ENVIRONMENT")
  end
  if opts.mendix_credentials and not cloud then
    args.usage_error("--mendix-credentials is for mendix-cloud:// locations")
  end
  if opts.new_snapshot and file:match("^mendix%-cloud://[^/]+/[^/]+/[^/]+") then
    args.usage_error("--new-snapshot and a SNAPSHOT in %s exclude each other", file)
  end
end

local function with_globals(spec)
  local all = {}
  for _, o in ipairs(spec) do all[#all + 1] = o end
  for _, o in ipairs(global_options) do all[#all + 1] = o end
  return all
end

-- --hooks FILE: must be a file (a typo must not run without the hooks).
local hooks_option = { long = "hooks", value = "FILE",
  help = "Lua file of functions called at named points of the run (docs/hooks.md; default: DIR/hooks.lua of --scripts DIR)",
  check = function(v)
    local st = fs.stat(v)
    if not st then return false, "no such file" end
    return st.type == "file", "not a file"
  end }

-- Which files a backup takes (besides the select_file hook).
local function check_with(parse)
  return function(v)
    local ok, why = parse(v)
    return ok ~= nil, why
  end
end
local selection_options = {
  { long = "files-larger-than", value = "SIZE", check = check_with(selection.parse_size),
    help = "only files larger than SIZE (bytes, or 512k, 10MB, 10MiB)" },
  { long = "files-smaller-than", value = "SIZE", check = check_with(selection.parse_size),
    help = "only files smaller than SIZE" },
  { long = "files-changed-since", value = "DATE", check = check_with(selection.parse_time),
    help = "only files changed at or after DATE (YYYY-MM-DD or an ISO 8601 time; UTC unless it says)" },
  { long = "files-of", value = "ENTITY", list = true,
    check = function(v) return v:match("^[%a_][%w_]*%.[%a_][%w_]*$") ~= nil, "expected Module.Entity, e.g. System.Image" end,
    help = "only files of this FileDocument specialization (Module.Entity; repeatable)" },
}

-- The retention policy (docs/schedule.md#prune): restic's forget options.
local function check_keep(v)
  if v == "unlimited" then return true end
  local n = math.tointeger(tonumber(v))
  return n ~= nil and n >= 0 and v:match("^%d+$") ~= nil, "a whole number or 'unlimited'"
end
local keep_options = {}
for _, k in ipairs { "last", "hourly", "daily", "weekly", "monthly", "yearly" } do
  keep_options[#keep_options + 1] = { long = "keep-" .. k, value = "N", check = check_keep,
    help = k == "last" and "keep the newest N archives ('unlimited': all)"
      or ("keep the newest archive of each of the last N %s that have one"):format(
        ({ hourly = "hours", daily = "days", weekly = "ISO weeks", monthly = "months", yearly = "years" })[k]) }
end
keep_options[#keep_options + 1] = { long = "keep-within", value = "DURATION",
  check = function(v) return require("mxpc.retention").parse_duration(v) ~= nil, "a duration such as 7d, 2w, 1y6m" end,
  help = "keep every archive within DURATION (e.g. 1y2m3d4h) of the environment's newest archive" }

M.global_options = global_options
M.check_count = check_count
M.transfer_options = transfer_options
M.env_options = env_options
M.archive_options = archive_options
M.mendix_options = mendix_options
M.check_mendix_options = check_mendix_options
M.with_globals = with_globals
M.hooks_option = hooks_option
M.check_with = check_with
M.selection_options = selection_options
M.check_keep = check_keep
M.keep_options = keep_options

return M
