-- The command line: parses argv, sets up logging and runs the command.
-- Called from C as require("mxpc.main").run(argv); returns the exit code.
-- Errors raised here or in a workflow reach C, which prints one line
-- ("error: ...") and exits 1; usage errors are printed here and exit 2.
local args = require "mxpc.args"
local errors = require "mxpc.error"
local fs = require "mxpc.fs"
local hooks = require "mxpc.hooks"
local log = require "mxpc.log"
local process = require "mxpc.process"
local runtime = require "mxpc.runtime"
local selection = require "mxpc.selection"
local scripts = require "mxpc.scripts"

local o = require "mxpc.cli_options"
local global_options = o.global_options
local transfer_options = o.transfer_options
local env_options = o.env_options
local archive_options = o.archive_options
local mendix_options = o.mendix_options
local check_mendix_options = o.check_mendix_options
local with_globals = o.with_globals
local hooks_option = o.hooks_option
local check_with = o.check_with
local selection_options = o.selection_options
local keep_options = o.keep_options

local PROGRAM = runtime.program

local main = {}

local tagline = "back up and restore Mendix for Private Cloud environments"
local description =
  "Backs up the data of a Mendix for Private Cloud environment (its PostgreSQL\n" ..
  "database and the files its System.FileDocument rows reference in S3 or MinIO)\n" ..
  "into a Mendix Cloud backup archive, and restores such an archive into an\n" ..
  "environment. Credentials are found through the Kubernetes API. The workflows\n" ..
  "are Lua scripts that can be exported, edited and run."

-- The variables the program reads; `withhold`: secrets no child process gets
-- (pg_dump, pg_restore, a kubeconfig's exec plugin: an AWS or Entra plugin may need
-- AWS_* or AZURE_CLIENT_*, none needs these).
local environment = {
  { "KUBECONFIG", "kubeconfig files to use, as kubectl does (default ~/.kube/config; in a pod, its service account)" },
  { "SSL_CERT_FILE", "CA bundle for S3/MinIO over https (default: the system's bundle)" },
  { "SSL_CERT_DIR", "directory of CA certificates for S3/MinIO over https" },
  { "PGSSLROOTCERT", "CA certificate for a database with strict TLS (verify-ca, verify-full)" },
  { "AWS_*", "AWS credentials for IRSA environments and s3:// archives, as the AWS CLI reads them (AWS_ACCESS_KEY_ID," ..
    " AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_REGION, ...)" },
  { "AZURE_STORAGE_KEY", "account key for azblob:// archives (else AZURE_STORAGE_SAS_TOKEN, else Workload Identity: " ..
    "AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST); never printed",
    withhold = { "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN" } },
  { "PGSSLMODE", "as --db-sslmode MODE: stronger database TLS than the environment asks for, never weaker" },
  { "MENDIX_USERNAME", "Mendix login name for mendix-cloud:// (Mendix's Deploy and Backups APIs)" },
  { "MENDIX_API_KEY", "its Mendix API key (Mendix Profile > API Keys); never printed", withhold = { "MENDIX_API_KEY" } },
  { "MXPC_SCRIPTS", "as --scripts DIR" },
  { "MXPC_DATADIR", "where the installed stock Lua files are (lua/, scripts/)" },
  { "TMPDIR", "working directory for -f -, s3:// and azblob://, and when the output's directory is not writable" },
  { "MXPC_PROGRESS_INTERVAL", "seconds between progress lines when stderr is not a terminal (default 5)" },
}

local exit_status = {
  { "0", "success" },
  { "1", "failure (the error line says what and where)" },
  { "2", "bad command line" },
  { "130, 143", "interrupted (SIGINT, SIGTERM); nothing half-written is left" },
}

-- Two aligned columns of a { {name, text}, ... } table.
local function rows(t)
  local width = 0
  for _, r in ipairs(t) do width = math.max(width, #r[1]) end
  local out = {}
  for _, r in ipairs(t) do out[#out + 1] = ("  %-" .. width .. "s  %s"):format(r[1], r[2]) end
  return table.concat(out, "\n")
end


-- Runs workflow NAME with its hooks (docs/hooks.md): a bad hooks file fails
-- before any work; on_error hears of an error where it happened, before the
-- run unwinds.
local function workflow(name)
  return function(opts)
    local chunk = scripts.load(name)
    local run_hooks <close> = hooks.for_run(opts, name)
    local ok, result = xpcall(chunk, function(e)
      e = errors.traceback(e, 2)
      run_hooks:failed(e)
      return e
    end, opts)
    if not ok then error(result, 0) end
    return result
  end
end

local commands = {}
local order = {}
local function command(def)
  def.spec = with_globals(def.options or {})
  commands[def.name] = def
  order[#order + 1] = def.name
end

command {
  name = "backup",
  summary = "back up an environment's database and files into a backup archive",
  usage = "backup -n NAMESPACE -e ENVIRONMENT -f FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB [options]",
  description = "Writes a Mendix Cloud compatible archive (.tar.gz) with the environment's\n" ..
      "PostgreSQL database and the files its System.FileDocument rows reference.\n" ..
      "-f - writes the archive to standard output (never to a terminal; messages go\n" ..
      "to stderr); if the backup fails, the output ends without the archive's end, so\n" ..
      "whatever reads it sees a broken archive. -f s3://BUCKET/KEY uploads it as it\n" ..
      "is written (credentials: the AWS chain, AWS_* below, e.g. the jump pod's IAM\n" ..
      "role); a failed backup leaves no object and no unfinished upload.\n" ..
      "-f azblob://ACCOUNT/CONTAINER/BLOB does the same in Azure Blob Storage\n" ..
      "(credentials: AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN or Workload Identity;\n" ..
      "docs/azure.md). -f s3://BUCKET/PREFIX/ or azblob://ACCOUNT/CONTAINER/PREFIX/\n" ..
      "(ending in /) is a schedule's place (docs/schedule.md).\n" ..
      "To Mendix Cloud: its API takes no uploads, so the archive goes in by hand.\n" ..
      "Back up to a file (with pg_dump 12-15: Mendix Cloud restores dump archive\n" ..
      "versions up to 1.14; inspect FILE says whether it can), then in the Mendix\n" ..
      "Portal: Apps > the app > Backups > the environment > Upload Archive, choose\n" ..
      "the file; select the uploaded backup, Restore Backup, confirm\n" ..
      "(docs/mendix-cloud.md). The way in is one command: restore -f\n" ..
      "mendix-cloud://APP/ENVIRONMENT.",
  options = {
    env_options[1], env_options[2],
    { short = "f", long = "file", value = "FILE", required = true,
      help = "the archive to write (.tar.gz): a file, - (stdout), s3://BUCKET/KEY or azblob://ACCOUNT/CONTAINER/BLOB" },
    { long = "force", help = "replace FILE if it exists" },
    { long = "database-only", help = "write only the database, as a bare pg_dump -Fc file (.backup)" },
    { long = "compression-level", value = "N",
      help = "gzip level of the archive, 0 (none) to 9 (smallest; default 6); data that is already compressed is stored" },
    { long = "dry-run", help = "check that the cluster permissions, the database and the storage answer and say " ..
      "what would be written; write nothing (exit 1 with the reasons if the backup would not start)" },
    { long = "strict", help = "fail (exit 1, nothing written) when a file the database references is missing " ..
      "from storage, instead of skipping it" },
    selection_options[1], selection_options[2], selection_options[3], selection_options[4], hooks_option,
    transfer_options[1], transfer_options[2],
    env_options[3], env_options[4], env_options[5], env_options[7],
    archive_options[1], archive_options[2], archive_options[3],
    keep_options[1], keep_options[2], keep_options[3], keep_options[4], keep_options[5], keep_options[6],
    keep_options[7],
  },
  run = function(opts)
    local scheduled = require("mxpc.backup_store").is_schedule_place(opts.file)
    if not scheduled and require("mxpc.backup_store").policy_of(opts) then
      args.usage_error("--keep-* options prune a schedule's archives: they need -f s3://BUCKET/PREFIX/ or " ..
        "azblob://ACCOUNT/CONTAINER/PREFIX/ (ending in /)")
    end
    if scheduled and (opts.database_only or opts.dry_run or opts.force) then
      args.usage_error("-f %s writes a new archive of the schedule; --database-only, --dry-run and " ..
        "--force do not apply", opts.file)
    end
    -- (a selection that contradicts itself is a usage error too)
    if selection.options(opts) and opts.database_only then
      args.usage_error("--files-* options select files; a database-only backup has none")
    end
    if opts.strict and opts.database_only then
      args.usage_error("--strict is about the files; a database-only backup has none")
    end
    if opts.compression_level then
      local n = tonumber(opts.compression_level)
      if math.type(n) ~= "integer" or n < 0 or n > 9 then
        args.usage_error("--compression-level must be a whole number from 0 to 9, got %q", opts.compression_level)
      end
      if opts.database_only then
        args.usage_error("--compression-level applies to the archive; a database-only backup is pg_dump's own file")
      end
      opts.compression_level = n
    end
    if scheduled then return require("mxpc.backup_store").scheduled_backup(opts, workflow("backup")) end
    return workflow("backup")(opts)
  end,
}

-- What a restore or a copy writes: the database, the files, or both.
local function check_parts(opts)
  if opts.database_only and opts.files_only then
    args.usage_error("--database-only and --files-only exclude each other")
  end
  if opts.delete_extra_files and opts.database_only then
    args.usage_error("--delete-extra-files and --database-only exclude each other: the files are left as they are")
  end
end

command {
  name = "restore",
  summary = "restore a backup archive into an environment",
  usage = "restore -n NAMESPACE -e ENVIRONMENT -f FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB|" ..
    "mendix-cloud://APP/ENV[/SNAPSHOT] [options]",
  description = "Restores a Mendix Cloud backup archive (or a database-only .backup file)\n" ..
      "into the environment's database and file storage. The whole archive is checked\n" ..
      "before anything is changed; that check keeps the dump (and the files, if few\n" ..
      "and small against it) in a private working directory, else the files are\n" ..
      "read in a second pass.\n" ..
      "-f - reads it from standard\n" ..
      "input: it is first copied into a private working directory in $TMPDIR (default\n" ..
      "/tmp), which needs room for the archive and its database dump (64 MiB are kept\n" ..
      "free, MXPC_MIN_FREE bytes if set); the copy is removed when the restore ends,\n" ..
      "also after a failure or Ctrl-C. -f s3://BUCKET/KEY reads the object (twice\n" ..
      "when it needs a second pass) pinned to the same version; so does\n" ..
      "-f azblob://ACCOUNT/CONTAINER/BLOB (pinned to its ETag).\n" ..
      "-f mendix-cloud://APP/ENVIRONMENT[/SNAPSHOT] restores a Mendix Cloud snapshot\n" ..
      "(the newest completed one, the one given, or with --new-snapshot a new one)\n" ..
      "through Mendix's Backups API: an archive of it is requested (database_only with\n" ..
      "--database-only), waited for (at most 2 hours) and read from its download URL\n" ..
      "twice like s3://, never stored (a database-only one is kept in $TMPDIR until\n" ..
      "the restore ends). Credentials: MENDIX_USERNAME and MENDIX_API_KEY, or\n" ..
      "--mendix-credentials FILE; they go to the Mendix API only (docs/mendix-cloud.md).",
  options = {
    env_options[1], env_options[2],
    { short = "f", long = "file", value = "FILE", required = true,
      help = "the archive to restore: a file, - (stdin), s3://BUCKET/KEY, azblob://ACCOUNT/CONTAINER/BLOB or " ..
        "mendix-cloud://APP/ENVIRONMENT[/SNAPSHOT]" },
    { long = "stop-app", help = "scale the app to 0 for the database phase of the restore and back afterwards " ..
      "(needs patch on mendixapps)" },
    { long = "database-only", help = "restore only the database, leave the files as they are (mendix-cloud://: " ..
      "a database_only archive)" },
    { long = "files-only", help = "restore only the files, leave the database as it is" },
    { long = "dry-run", help = "check the archive, the cluster permissions, the database and the storage and say " ..
      "what would change; change nothing (exit 1 with the reasons if the restore would not start)" },
    { long = "safety-backup", value = "FILE", help = "first back up the environment into FILE (kept); if that " ..
      "fails, nothing is restored" },
    { long = "delete-extra-files", help = "after the restore, delete the environment's files in storage that the " ..
      "archive does not hold (needs s3:ListBucket)" },
    { long = "at", value = "TIME", check = check_with(selection.parse_time),
      help = "with -f s3://BUCKET/PREFIX/NS/ENV/ (or azblob://ACCOUNT/CONTAINER/PREFIX/NS/ENV/): the newest " ..
        "archive at or before TIME (default: the newest)" },
    hooks_option,
    transfer_options[1], transfer_options[2],
    env_options[3], env_options[4], env_options[5], env_options[7],
    archive_options[1], archive_options[2], archive_options[3], mendix_options[1], mendix_options[2],
  },
  run = function(opts)
    check_mendix_options(opts, opts.file)
    local backup_store = require "mxpc.backup_store"
    if backup_store.is_schedule_place(opts.file) then -- a schedule's environment: which archive
      local store = assert(backup_store.store(opts, assert(backup_store.parse_location(opts.file))))
      local url, a = backup_store.pick(store, opts.file, opts.at and selection.parse_time(opts.at))
      if not url then error(a, 0) end
      log.info("restoring the scheduled archive", { event = "picked", archive = url,
        time = os.date("!%Y-%m-%dT%H:%M:%SZ", a.time), at = opts.at })
      io.stderr:write(("restoring %s (of %s)\n"):format(url, os.date("!%Y-%m-%dT%H:%M:%SZ", a.time)))
      opts.file = url
    elseif opts.at then
      args.usage_error("--at picks an archive of a schedule: it needs -f s3://BUCKET/PREFIX/NS/ENV/ or " ..
        "azblob://ACCOUNT/CONTAINER/PREFIX/NS/ENV/ (ending in /)")
    end
    check_parts(opts)
    if opts.safety_backup and opts.safety_backup == opts.file then
      args.usage_error("--safety-backup must not be the archive to restore (%s)", opts.file)
    end
    return workflow("restore")(opts)
  end,
}

-- copy --from NS/ENV --to NS/ENV: each side in its own cluster if need be.
local function check_env_ref(v)
  local ok, why = require("mxpc.env_copy").parse_env_ref(v)
  return ok ~= nil, why
end

command {
  name = "copy",
  summary = "copy one environment's database and files into another, with no archive in between",
  usage = "copy --from NAMESPACE/ENVIRONMENT --to NAMESPACE/ENVIRONMENT [options]",
  description = "Copies the source environment's PostgreSQL database and the files its\n" ..
      "System.FileDocument rows reference into the target environment: pg_dump of the\n" ..
      "source is restored into the target's database in one transaction, which\n" ..
      "commits only after every file is in place in the target's storage. Files are\n" ..
      "copied server-side where the target's credentials can read the source's\n" ..
      "objects on the same S3 endpoint, else streamed (GET -> PUT in memory); -v says\n" ..
      "which and why, --copy-mode forces one. No archive is written anywhere.\n" ..
      "The restore's options apply to the target; the backup hooks see the source,\n" ..
      "the restore hooks the target. A failure or Ctrl-C before the commit leaves\n" ..
      "the target's database as it was and starts its app again (docs/copy.md).",
  options = {
    { long = "from", value = "NS/ENV", required = true, check = check_env_ref,
      help = "the source environment: its namespace and internal name (MendixApp)" },
    { long = "to", value = "NS/ENV", required = true, check = check_env_ref,
      help = "the target environment, whose database and files are replaced" },
    { long = "copy-mode", value = "MODE", choices = { "auto", "server", "stream" },
      help = "how files are copied: auto (default), server (CopyObject on the same endpoint) or stream",
      check = function(v) return v == "auto" or v == "server" or v == "stream", "expected auto, server or stream" end },
    { long = "stop-app", help = "scale the target's app to 0 for the copy and back afterwards (needs patch on " ..
      "mendixapps)" },
    { long = "database-only", help = "copy only the database, leave the target's files as they are" },
    { long = "files-only", help = "copy only the files, leave the target's database as it is" },
    { long = "dry-run", help = "check both environments (cluster permissions, databases, storage) and say what " ..
      "would change; change nothing anywhere (exit 1 with the reasons if the copy would not start)" },
    { long = "safety-backup", value = "FILE", help = "first back up the target into FILE (kept); if that fails, " ..
      "nothing is copied" },
    { long = "delete-extra-files", help = "after the copy, delete the target's files in storage that the source " ..
      "did not copy (needs s3:ListBucket)" },
    { long = "strict", help = "fail (exit 1, the target's database unchanged) when a file the source's database " ..
      "references is missing from its storage, instead of skipping it" },
    selection_options[1], selection_options[2], selection_options[3], selection_options[4], hooks_option,
    transfer_options[1], transfer_options[2],
    { long = "from-kubeconfig", value = "FILE", help = "kubeconfig of the source's cluster (default: as --kubeconfig " ..
      "of backup)" },
    { long = "from-context", value = "NAME", help = "kubeconfig context of the source (default: the current one)" },
    { long = "to-kubeconfig", value = "FILE", help = "kubeconfig of the target's cluster (default: as --kubeconfig " ..
      "of restore)" },
    { long = "to-context", value = "NAME", help = "kubeconfig context of the target (default: the current one)" },
    env_options[5], env_options[7],
  },
  run = function(opts)
    check_parts(opts)
    if selection.options(opts) and opts.database_only then
      args.usage_error("--files-* options select files; --database-only copies none")
    end
    if opts.strict and opts.database_only then
      args.usage_error("--strict is about the files; --database-only copies none")
    end
    if opts.copy_mode and opts.database_only then
      args.usage_error("--copy-mode is about the files; --database-only copies none")
    end
    if opts.from == opts.to and opts.from_kubeconfig == opts.to_kubeconfig and opts.from_context == opts.to_context then
      args.usage_error("--from and --to are the same environment (%s): copy into another environment", opts.from)
    end
    return workflow("copy")(opts)
  end,
}

command {
  name = "jump-pod",
  summary = "print, create or delete a pod in the cluster to run this tool in",
  usage = "jump-pod -n NAMESPACE -e ENVIRONMENT [--restore] [--stop-app] [--apply | --delete] [options]",
  description = "Prints the manifests of a jump pod for the environment: a ServiceAccount, a\n" ..
      "Role with exactly the permissions of the chosen operations (backup; --restore;\n" ..
      "--stop-app), its RoleBinding, and a Pod with the PostgreSQL client tools\n" ..
      "(the official postgres image) of the database server's major version. The version is\n" ..
      "asked from the server (SHOW server_version_num) when it can be reached from\n" ..
      "here, else taken from --pg-version. The output can be piped into\n" ..
      "'kubectl apply -f -'; --apply creates the objects itself and waits until the\n" ..
      "pod runs; --delete removes them. See docs/jump-pod.md.",
  options = {
    env_options[1], env_options[2],
    { long = "restore", help = "also allow restoring into the environment" },
    { long = "stop-app", help = "also allow restore --stop-app (patch on mendixapps); implies --restore" },
    { long = "pg-version", value = "MAJOR", help = "PostgreSQL major version when the server cannot be asked",
      check = function(v) return v:match("^%d+$") ~= nil or v:match("^9%.%d$") ~= nil, "expected e.g. 15" end },
    { long = "image", value = "IMAGE", help = "the pod's image (default: docker.io/library/postgres:MAJOR)" },
    { long = "role-arn", value = "ARN",
      help = "AWS IRSA: the IAM role of the pod's ServiceAccount (annotation eks.amazonaws.com/role-arn)",
      check = function(v) return require("mxpc.jump_pod").valid_role_arn(v), "expected arn:aws:iam::ACCOUNT:role/NAME" end },
    { long = "azure-client-id", value = "ID",
      help = "Azure Workload Identity: the managed identity of the pod's ServiceAccount (annotation " ..
        "azure.workload.identity/client-id; implies --workload-identity)",
      check = function(v) return require("mxpc.k8s_manifest").valid_client_id(v), "expected a client id (a GUID)" end },
    { long = "service-account", value = "NAME", check = args.check_subdomain,
      help = "run the pod under this existing ServiceAccount (e.g. the environment's own, named after it) instead " ..
        "of its own; the Role is bound to it, and it is neither made nor deleted" },
    { long = "workload-identity", help = "label the pod azure.workload.identity/use: \"true\" (Azure Workload " ..
      "Identity: the webhook gives it its ServiceAccount's managed identity)" },
    { long = "arch", value = "ARCH", help = "pin the pod to amd64 or arm64 nodes (nodeSelector kubernetes.io/arch; " ..
      "default: this program's architecture, so that its package fits)",
      check = function(v) return require("mxpc.k8s_manifest").ARCHES[v] ~= nil, "expected amd64 or arm64" end },
    { long = "name", value = "NAME", help = "name of the objects (default: mxpc-jump-ENVIRONMENT)",
      check = args.check_subdomain },
    { short = "o", long = "output", value = "FORMAT", help = "yaml (default) or json (a v1 List)",
      check = function(v) return v == "yaml" or v == "json", "expected yaml or json" end },
    { long = "apply", help = "create the objects through the Kubernetes API and wait for the pod to run; a pod that cannot start is an error at once" },
    { long = "delete", help = "delete the objects" },
    { long = "timeout", value = "SECONDS", help = "how long --apply waits for the pod (default 300)",
      check = function(v) return v:match("^%d+$") ~= nil, "expected a number of seconds" end },
    env_options[3], env_options[4], env_options[5],
  },
  run = function(opts)
    if opts.apply and opts.delete then args.usage_error("--apply and --delete exclude each other") end
    if opts.output and (opts.apply or opts.delete) then
      args.usage_error("--output is for printing the manifests, not with --apply or --delete")
    end
    if opts.service_account and (opts.role_arn or opts.azure_client_id) then
      args.usage_error("--service-account runs the pod under an existing ServiceAccount: annotate that one instead " ..
        "of giving %s", opts.role_arn and "--role-arn" or "--azure-client-id")
    end
    if opts.azure_client_id then opts.workload_identity = true end
    return require("mxpc.jump_pod").command(opts)
  end,
}

local function archive_command(name, summary, description)
  command {
    name = name,
    summary = summary,
    usage = name .. " FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB|mendix-cloud://APP/ENV[/SNAPSHOT] [--json]",
    description = description .. "\n" ..
      "The archive is a file, - (standard input, copied into $TMPDIR first),\n" ..
      "s3://BUCKET/KEY, azblob://ACCOUNT/CONTAINER/BLOB or a Mendix Cloud snapshot,\n" ..
      "as for restore -f.",
    options = { { long = "json", help = "print the result as one JSON object on stdout" },
      archive_options[1], archive_options[2], archive_options[3], mendix_options[1] },
    positional = "FILE",
    complete = "files",
    run = function(opts, positional)
      if not positional[1] then args.usage_error("missing FILE") end
      if #positional > 1 then args.usage_error("unexpected argument %q", positional[2]) end
      check_mendix_options(opts, positional[1])
      -- the archive from where restore -f reads it (workflow.archive_input)
      local wf = require "mxpc.workflow"
      opts.file = positional[1]
      local loc = wf.location(opts.file)
      local work <close> = loc.kind ~= "file" and assert(wf.workdir(opts.file)) or nil
      local input, err = wf.archive_input(opts, work)
      return require("mxpc.backup_archive").command(name, opts, input, err)
    end,
  }
end

archive_command("inspect", "show what a backup archive holds (no cluster needed)",
  "Reads a backup archive (.tar.gz) or a database-only .backup file and shows its\n" ..
  "metadata, entry counts, sizes, the dump's archive version and the pg_dump that\n" ..
  "made it, and whether Mendix Cloud can restore it. Exits 1 if it is malformed.")

archive_command("verify", "check that a backup archive would restore (no cluster needed)",
  "Reads every byte of a backup archive or database-only .backup file, checks its\n" ..
  "structure and layout, and runs 'pg_restore -l' on the dump. Exits 0 only when\n" ..
  "the archive would restore; writes nothing anywhere.")

-- list LOCATION: dispatches on the location's scheme (only mendix-cloud:// so far).
local LIST_SCHEMES = { ["mendix-cloud"] = function(opts, location)
  if opts.max_age then args.usage_error("--max-age applies to s3:// and azblob:// locations") end
  return require("mxpc.mendix_cloud").list_command(opts, location)
end, s3 = function(opts, location)
  return require("mxpc.backup_store").list_command(opts, location)
end }
LIST_SCHEMES.azblob = LIST_SCHEMES.s3

command {
  name = "list",
  summary = "list the snapshots of a Mendix Cloud environment, or a schedule's archives in S3 or Azure",
  usage = "list mendix-cloud://APP/ENVIRONMENT | s3://BUCKET/PREFIX[/NS/ENV] | " ..
    "azblob://ACCOUNT/CONTAINER/PREFIX[/NS/ENV] [--json] [--max-age DURATION] [options]",
  description = "Lists the backup snapshots of a Mendix Cloud environment, newest first: id,\n" ..
      "creation time, model version, state, expiry and comment, through Mendix's\n" ..
      "Backups API (docs/mendix-cloud.md). APP is the app's project id (or its Deploy\n" ..
      "API AppId), ENVIRONMENT the environment's id or its name (Production,\n" ..
      "Acceptance, ...). The credentials come from MENDIX_USERNAME and MENDIX_API_KEY\n" ..
      "(or --mendix-credentials FILE); the user needs the environment's permissions\n" ..
      "'API Rights' and 'Access to Backups'.\n" ..
      "s3://BUCKET/PREFIX[/NS/ENV] (or azblob://ACCOUNT/CONTAINER/PREFIX[/NS/ENV])\n" ..
      "lists the archives scheduled backups wrote there\n" ..
      "(docs/schedule.md), newest first, from the small index object beside each\n" ..
      "archive: time, environment, size, files, database size, model version and\n" ..
      "whether Mendix Cloud restores it. --max-age exits 1 naming every environment\n" ..
      "whose newest archive is older.",
  options = {
    { long = "json", help = "print the result as one JSON object on stdout" },
    { long = "max-age", value = "DURATION",
      check = function(v) return require("mxpc.retention").parse_duration(v) ~= nil, "a duration such as 26h, 2d" end,
      help = "s3://, azblob://: exit 1 naming each environment whose newest archive is older than DURATION (e.g. 26h)" },
    archive_options[1], archive_options[2], archive_options[3], mendix_options[1],
  },
  positional = "LOCATION",
  run = function(opts, positional)
    local location = positional[1]
    if not location then
      args.usage_error("missing LOCATION (mendix-cloud://APP/ENVIRONMENT, s3://BUCKET/PREFIX or " ..
        "azblob://ACCOUNT/CONTAINER/PREFIX)")
    end
    if #positional > 1 then args.usage_error("unexpected argument %q", positional[2]) end
    local scheme = location:match("^([%a][%w+.-]*)://")
    local list = LIST_SCHEMES[scheme or ""]
    if not list then
      args.usage_error("list supports mendix-cloud://APP/ENVIRONMENT, s3://BUCKET/PREFIX and " ..
        "azblob://ACCOUNT/CONTAINER/PREFIX locations; %s is not one",
        scheme and (scheme .. "://") or ("%q"):format(location))
    end
    return list(opts, location)
  end,
}

command {
  name = "schedule",
  summary = "print, create or delete CronJobs that back up environments into S3 or Azure every night",
  usage = "schedule -n NAMESPACE (-e ENVIRONMENT | --all) --to s3://BUCKET/PREFIX|azblob://ACCOUNT/CONTAINER/PREFIX " ..
    "--cron SCHEDULE [--keep-...] " ..
    "[--apply | --delete] [options]",
  description = "Prints the manifests of scheduled backups: a ServiceAccount, a Role with exactly\n" ..
      "a backup's permissions (limited to the environments' objects by name), its\n" ..
      "RoleBinding, and one CronJob per environment (--all: every MendixApp of the\n" ..
      "namespace, their start times 5 minutes apart). Each run writes\n" ..
      "s3://BUCKET/PREFIX/NS/ENV/<UTC time>.tar.gz (or azblob://ACCOUNT/CONTAINER/...)\n" ..
      "with its index, then prunes that\n" ..
      "environment's archives by the --keep-* policy, logging JSON lines. The pods\n" ..
      "run the tool's image (tools/image) as uid 1001 with a read-only root.\n" ..
      "--apply creates the objects, --delete removes them. See docs/schedule.md.",
  options = {
    env_options[1],
    { short = "e", long = "environment", value = "ENVIRONMENT", check = args.check_subdomain,
      help = "the environment to back up (its MendixApp)" },
    { long = "all", help = "every MendixApp of the namespace" },
    { long = "to", value = "s3://BUCKET/PREFIX|azblob://ACCOUNT/CONTAINER/PREFIX", required = true,
      help = "where the archives go",
      check = function(v)
        return require("mxpc.backup_store").parse_location(v) ~= nil,
          "expected s3://BUCKET/PREFIX or azblob://ACCOUNT/CONTAINER/PREFIX"
      end },
    { long = "cron", value = "SCHEDULE", required = true,
      help = "when, as a CronJob's schedule (minute hour day month weekday), e.g. \"0 2 * * *\"" },
    { long = "timezone", value = "TZ", help = "the schedule's time zone (e.g. Europe/Amsterdam; default: the " ..
      "cluster's, usually UTC)",
      check = function(v)
        local ok = v:match("^[%a_]") ~= nil
        for part in (v .. "/"):gmatch("([^/]*)/") do ok = ok and part:match("^[%w_+-]+$") ~= nil end
        return ok, "expected a time zone name, e.g. Europe/Amsterdam or Etc/UTC"
      end },
    keep_options[1], keep_options[2], keep_options[3], keep_options[4], keep_options[5], keep_options[6],
    keep_options[7],
    { long = "image", value = "IMAGE", help = "the jobs' image (default: mxpc-data-migration:VERSION-pg15, tools/image)" },
    { long = "arch", value = "ARCH", help = "pin the jobs' pods to amd64 or arm64 nodes (nodeSelector kubernetes.io/arch; " ..
      "default: this program's architecture, the image holds both)",
      check = function(v) return require("mxpc.k8s_manifest").ARCHES[v] ~= nil, "expected amd64 or arm64" end },
    { long = "role-arn", value = "ARN", help = "AWS IAM role for the ServiceAccount (IRSA): the jobs' S3 access",
      check = function(v) return require("mxpc.jump_pod").valid_role_arn(v), "expected arn:aws:iam::ACCOUNT:role/NAME" end },
    { long = "azure-client-id", value = "ID", help = "Azure Workload Identity: the managed identity of the " ..
      "ServiceAccount (annotation azure.workload.identity/client-id; the pods are labelled for it): the jobs' " ..
      "azblob:// access",
      check = function(v) return require("mxpc.k8s_manifest").valid_client_id(v), "expected a client id (a GUID)" end },
    archive_options[1], archive_options[2],
    { short = "o", long = "output", value = "FORMAT", help = "yaml (default) or json (a v1 List)",
      check = function(v) return v == "yaml" or v == "json", "expected yaml or json" end },
    { long = "apply", help = "create the objects through the Kubernetes API (or bring them up to date)" },
    { long = "delete", help = "delete the CronJobs (with --all also the ServiceAccount, Role and RoleBinding)" },
    env_options[3], env_options[4],
  },
  run = function(opts)
    if (opts.environment ~= nil) == (opts.all ~= nil) then args.usage_error("give either -e ENVIRONMENT or --all") end
    if opts.apply and opts.delete then args.usage_error("--apply and --delete exclude each other") end
    return require("mxpc.schedule").command(opts)
  end,
}

command {
  name = "prune",
  summary = "delete a schedule's archives that the --keep-* policy does not keep",
  usage = "prune s3://BUCKET/PREFIX[/NS/ENV]|azblob://ACCOUNT/CONTAINER/PREFIX[/NS/ENV] --keep-... [--dry-run] [options]",
  description = "Applies restic's 'forget' policy to the archives scheduled backups wrote\n" ..
      "under the location, each environment on its own (docs/schedule.md#prune), and\n" ..
      "deletes the others with their index objects (S3: 1,000 keys a request; Azure:\n" ..
      "one Delete Blob each, many at once). It never\n" ..
      "deletes an environment's newest archive, and never touches an object whose\n" ..
      "index does not say that a scheduled backup wrote it. --dry-run says what it\n" ..
      "would delete and changes nothing.",
  options = {
    keep_options[1], keep_options[2], keep_options[3], keep_options[4], keep_options[5], keep_options[6],
    keep_options[7],
    { long = "dry-run", help = "say what would be kept and deleted; delete nothing" },
    archive_options[1], archive_options[2], archive_options[3],
  },
  positional = "LOCATION",
  run = function(opts, positional)
    local location = positional[1]
    if not location then args.usage_error("missing LOCATION (s3://BUCKET/PREFIX or azblob://ACCOUNT/CONTAINER/PREFIX)") end
    if #positional > 1 then args.usage_error("unexpected argument %q", positional[2]) end
    local store_mod = require "mxpc.backup_store"
    local loc, err = store_mod.parse_location(location)
    if not loc then args.usage_error("%s", err.message) end
    local policy = store_mod.policy_of(opts)
    if not policy then
      args.usage_error("give the policy: --keep-last, --keep-daily, ..., --keep-within (prune without one would keep " ..
        "everything)")
    end
    local store = assert(store_mod.store(opts, loc))
    store_mod.prune(store, loc, policy, opts.dry_run)
    return 0
  end,
}

command {
  name = "run",
  summary = "run a Lua script with every module available",
  usage = "run SCRIPT [ARGS...]",
  description = "Runs SCRIPT like the 'lua' interpreter would, with the global 'arg'\n" ..
      "holding ARGS, and every mxpc.* module and cjson available to require.",
  stop_at_positional = true,
  positional = "SCRIPT [ARGS...]",
  complete = "files",
  run = function(opts, positional, argv, command_index)
    local script = positional[1]
    if not script then args.usage_error("missing SCRIPT") end
    local chunk, err = loadfile(script)
    if not chunk then errors.raise("script", err) end
    -- as lua does: arg[0] is the script, arguments after it are 1..n and
    -- everything before it (the program, options, "run") is negative
    local k = command_index + 1
    while argv[k] ~= script do k = k + 1 end
    local a = {}
    for j = 0, #argv do a[j - k] = argv[j] end
    _G.arg = a
    local result = chunk(table.unpack(a, 1, #positional - 1))
    if math.type(result) == "integer" then return result end
    return 0
  end,
}

command {
  name = "repl",
  summary = "explore an environment interactively (Lua with every module loaded)",
  usage = "repl [options]",
  description = "An interactive Lua prompt with every module loaded under its short name\n" ..
      "(k8s, pg, s3, archive, ...). A line is an expression or a statement; an\n" ..
      "unfinished one continues on the next line. Ctrl-C stops the running code,\n" ..
      "Ctrl-D leaves. Without a terminal it reads the lines from stdin.\n" ..
      "help() lists the modules and globals; Tab completes names, fields and\n" ..
      "methods; env \"NAME\" resolves an environment of NAMESPACE (default: the\n" ..
      "kubeconfig context's) with :db(), :store() and :app().",
  options = {
    { short = "n", long = "namespace", value = "NAMESPACE", check = args.check_label,
      help = "namespace of env \"NAME\" (default: the kubeconfig context's)" },
    env_options[3], env_options[4],
  },
  run = function(opts)
    return require("mxpc.repl").run { debug = opts.debug, namespace = opts.namespace, kubeconfig = opts.kubeconfig,
      context = opts.context }
  end,
}

command {
  name = "scripts",
  summary = "export the stock Lua scripts for editing, or list where they load from",
  usage = "scripts export DIR [--force] | scripts list",
  description = "'scripts export DIR' writes the stock workflows and modules to DIR; edit\n" ..
      "them and run with --scripts DIR (or MXPC_SCRIPTS=DIR) to use your copies.\n" ..
      "'scripts list' shows where each stock file is loaded from.",
  options = { { long = "force", help = "replace existing files when exporting" } },
  positional = "ACTION [DIR]",
  complete = { "export", "list" },
  run = function(opts, positional)
    local action = positional[1]
    if action == "export" then
      local dir = positional[2]
      if not dir then args.usage_error("missing DIR for 'scripts export'") end
      if #positional > 2 then args.usage_error("unexpected argument %q", positional[3]) end
      local written = scripts.export(dir, opts.force)
      log.info("exported stock scripts", { dir = dir, files = #written })
      io.stdout:write(("exported %d files to %s\n"):format(#written, dir))
      return 0
    elseif action == "list" then
      if #positional > 1 then args.usage_error("unexpected argument %q", positional[2]) end
      for _, f in ipairs(scripts.list()) do
        io.stdout:write(("%-32s %s\n"):format(f.file, f.from))
      end
      return 0
    elseif action == nil then
      args.usage_error("missing ACTION (export or list)")
    else
      args.usage_error("unknown action %q%s", action, args.did_you_mean(action, { "export", "list" }, "", "export or list"))
    end
  end,
}

local function print_version()
  io.stdout:write(PROGRAM, " ", runtime.version, "\n")
  local libs = runtime.libraries()
  for _, k in ipairs { "lua", "libpq", "libcurl", "libarchive", "openssl", "zlib" } do
    io.stdout:write(("  %-10s %s\n"):format(k, libs[k]))
  end
  -- the CA certificates https to S3 trusts unless told otherwise
  local function nonempty(name) local v = os.getenv(name); return v ~= "" and v or nil end
  local ca = nonempty("SSL_CERT_FILE") and ("SSL_CERT_FILE=" .. nonempty("SSL_CERT_FILE"))
    or nonempty("SSL_CERT_DIR") and ("SSL_CERT_DIR=" .. nonempty("SSL_CERT_DIR"))
    or runtime.system_ca_file() or "none found (set SSL_CERT_FILE)"
  io.stdout:write(("  %-10s %s\n"):format("CA bundle", ca))
  return 0
end

command {
  name = "version",
  summary = "print the version and the library versions",
  usage = "version",
  run = print_version,
}

-- Where the docs/*.md that messages and help name are.
local DOCS = "The docs/*.md that messages and help name: share/doc/" .. PROGRAM .. "/docs/ in the\n" ..
  "package (beside the program) and under the install prefix, docs/ in the source."

local function unknown_command(name)
  return ("unknown command %q%s"):format(name, args.did_you_mean(name, order))
end

-- The command table, for the manual page, the completion scripts and the
-- fuzz target of the option parsing (tests/fuzz/lua/args.lua).
local function cli()
  return {
    program = PROGRAM, version = runtime.version, tagline = tagline, description = description,
    commands = commands, order = order, global_options = global_options,
    environment = environment, exit_status = exit_status, docs = DOCS,
  }
end
main.cli = cli

command {
  name = "help",
  summary = "show help for a command, or the manual page",
  usage = "help [COMMAND] [--man]",
  options = { { long = "man", help = "print the manual page (roff, for man -l -)" } },
  positional = "[COMMAND]",
  complete = "commands",
  run = function(opts, positional)
    local name = positional[1]
    if #positional > 1 then args.usage_error("unexpected argument %q", positional[2]) end
    if opts.man then
      if name then args.usage_error("--man takes no COMMAND: the manual page covers them all") end
      io.stdout:write(require("mxpc.cli_docs").man(cli()))
      return 0
    end
    if not name then
      io.stdout:write(main.help())
      return 0
    end
    local def = commands[name]
    if not def then args.usage_error("%s", unknown_command(name)) end
    io.stdout:write(main.command_help(def))
    return 0
  end,
}

command {
  name = "completion",
  summary = "print the shell completion script for bash or zsh",
  usage = "completion bash|zsh",
  description = "Prints a completion script. To load it into the running shell:\n" ..
      "  source <(" .. PROGRAM .. " completion bash)\n" ..
      "`cmake --install` and the package install both scripts under share/.",
  positional = "SHELL",
  complete = { "bash", "zsh" },
  run = function(_, positional)
    local shell = positional[1]
    if not shell then args.usage_error("missing SHELL (bash or zsh)") end
    if #positional > 1 then args.usage_error("unexpected argument %q", positional[2]) end
    if shell ~= "bash" and shell ~= "zsh" then
      args.usage_error("unknown shell %q%s", shell, args.did_you_mean(shell, { "bash", "zsh" }, "", "bash or zsh"))
    end
    io.stdout:write(require("mxpc.cli_docs")[shell](cli()))
    return 0
  end,
}

function main.help()
  local out = {
    PROGRAM .. " " .. runtime.version .. " - " .. tagline,
    "",
    "usage: " .. PROGRAM .. " COMMAND [options]",
    "",
    "commands:",
  }
  for _, name in ipairs(order) do
    out[#out + 1] = ("  %-9s %s"):format(name, commands[name].summary)
  end
  out[#out + 1] = ""
  out[#out + 1] = "global options:"
  out[#out + 1] = args.help(global_options)
  out[#out + 1] = ""
  out[#out + 1] = "environment:"
  out[#out + 1] = rows(environment)
  out[#out + 1] = ""
  out[#out + 1] = "exit status:"
  out[#out + 1] = rows(exit_status)
  out[#out + 1] = ""
  out[#out + 1] = "Run '" .. PROGRAM .. " COMMAND --help' for a command's options,"
  out[#out + 1] = "'" .. PROGRAM .. " help --man' for the manual page."
  out[#out + 1] = DOCS
  return table.concat(out, "\n") .. "\n"
end

function main.command_help(def)
  local out = { "usage: " .. PROGRAM .. " " .. def.usage, "" }
  if def.description then
    out[#out + 1] = def.description
    out[#out + 1] = ""
  end
  if def.options and #def.options > 0 then
    out[#out + 1] = "options:"
    out[#out + 1] = args.help(def.options)
    out[#out + 1] = ""
  end
  out[#out + 1] = "global options:"
  out[#out + 1] = args.help(global_options)
  return table.concat(out, "\n") .. "\n"
end

-- The C modules report what happened by code; what to do on the command
-- line is said here, where the command's options are known: an output that
-- exists can be replaced where the command has --force.
local function word_hint(err, def)
  if errors.is(err, "exists") and not err.hint then
    local force = false
    for _, o in ipairs(def.spec) do force = force or o.long == "force" end
    err.hint = force and "choose another file name, or use --force to replace it" or "choose another file name"
  end
  return err
end

local function print_usage_error(err, def)
  if log.format() == "json" then
    local usage = PROGRAM .. " " .. (def and def.usage or "COMMAND [options]")
    log.error(err.message, { event = "error", code = "usage", exit = 2, usage = usage,
      hint = ("try '%s%s --help'"):format(PROGRAM, def and (" " .. def.name) or "") })
    return 2
  end
  io.stderr:write("error: ", log.escape(log.redact(err.message)), "\n")
  if def then
    io.stderr:write("usage: ", PROGRAM, " ", def.usage, "\n")
    io.stderr:write("Try '", PROGRAM, " ", def.name, " --help' for more information.\n")
  else
    io.stderr:write("usage: ", PROGRAM, " COMMAND [options]\n")
    io.stderr:write("Try '", PROGRAM, " --help' for more information.\n")
  end
  return 2
end

-- errors.traceback keeps the traceback of where an error was raised, since
-- it is re-raised after the usage check below.
local keep_traceback = errors.traceback

local function apply_logging(opts)
  local level = 2 + (opts.verbose or 0) - (opts.quiet or 0) -- 2 = info
  local names = { [0] = "error", "warn", "info", "debug", "trace" }
  log.set_level(names[math.max(0, math.min(4, level))])
  if opts.log_format then log.set_format(opts.log_format) end
end

-- The scripts directory (--scripts DIR or MXPC_SCRIPTS, taken by C before any
-- Lua runs) must be a directory: a typo would otherwise run the stock scripts.
local function scripts_dir_problem(argv)
  local dir = runtime.scripts_dir()
  if not dir or dir == "" then return nil end
  local st, err = fs.stat(dir .. "/.") -- follows a link to a directory
  if st then return nil end
  local given = "MXPC_SCRIPTS=" .. dir
  for _, a in ipairs(argv) do
    if a == "--" then break end
    if a == "--scripts" or a:sub(1, 10) == "--scripts=" then
      given = "--scripts " .. dir
      break
    end
  end
  local why = errors.is(err, "permission") and tostring(err)
      or fs.stat(dir) and "not a directory"
      or "no such directory"
  return { message = ("%s: %s"):format(given, why) }
end

-- --log-format json anywhere on the command line (before "--"): even an
-- error in the options before it is then a JSON line.
local function wants_json(argv)
  for k, a in ipairs(argv) do
    if a == "--" then return false end
    if a == "--log-format=json" or (a == "--log-format" and argv[k + 1] == "json") then return true end
  end
  return false
end

function main.run(argv)
  for _, v in ipairs(environment) do
    for _, name in ipairs(v.withhold or {}) do assert(process.withhold(name)) end
  end
  if wants_json(argv) then log.set_format("json") end
  local bad_scripts = scripts_dir_problem(argv)
  if bad_scripts then return print_usage_error(bad_scripts) end
  -- global options may come before the command
  local i = 1
  local pre = {}
  while argv[i] and argv[i]:sub(1, 1) == "-" do
    pre[#pre + 1] = argv[i]
    if argv[i] == "--log-format" or argv[i] == "--scripts" then
      i = i + 1
      pre[#pre + 1] = argv[i]
    end
    i = i + 1
  end
  local ok, popts = pcall(args.parse, global_options, pre, 1)
  if not ok then
    if errors.is(popts, "usage") then return print_usage_error(popts) end
    error(popts, 0)
  end
  apply_logging(popts)

  local name = argv[i]
  if name == nil then
    if popts.version then return print_version() end
    if popts.help then
      io.stdout:write(main.help())
      return 0
    end
    return print_usage_error({ message = "missing COMMAND" })
  end
  local def = commands[name]
  if not def then return print_usage_error({ message = unknown_command(name) }) end

  local parsed, positional
  ok, parsed, positional = pcall(function()
    local o, p = args.parse(def.spec, argv, i + 1, def.stop_at_positional)
    for k, v in pairs(popts) do
      if o[k] == nil then o[k] = v end
    end
    if o.help then return o, p end
    if not def.positional and #p > 0 then args.usage_error("unexpected argument %q", p[1]) end
    return o, p
  end)
  if not ok then
    if errors.is(parsed, "usage") then return print_usage_error(parsed, def) end
    error(parsed, 0)
  end
  if parsed.help then
    io.stdout:write(main.command_help(def))
    return 0
  end
  if parsed.version then return print_version() end
  apply_logging(parsed)

  local result
  ok, result = xpcall(def.run, keep_traceback, parsed, positional, argv, i)
  if not ok then
    if errors.is(result, "usage") then return print_usage_error(result, def) end
    error(word_hint(result, def), 0)
  end
  return result or 0
end

return main
