-- What help() in the REPL says: every module and global with one line, the
-- functions of each module and the methods of each kind of handle with their
-- signatures. The one place these docs are kept; tests/lua/test_repl.lua
-- checks them against the modules' actual fields, both ways, so a function
-- added or removed without its line here fails the tests.
--
-- A function is { "signature", "what it does and returns" }; its name is the
-- signature's first word. Names starting with "_" are internal and left out.
local docs = {}

-- Modules, by their name at the prompt (the REPL loads `module`).
docs.modules = {
  { name = "archive", module = "mxpc.archive", summary = "streaming tar.gz: writer and reader, entries as streams",
    functions = {
      { "writer(path | sink [, {force=, level=, threads=, mtime=, name=}])",
        "an archive writer (archive.writer): to a temporary file renamed on commit, or to sink(chunk)" },
      { "reader(path | source [, {name=}])", "an archive reader (archive.reader), gzip or plain tar" },
      { "quote(name)", "an entry name made printable, for messages" },
      { "name_problem(name)", "why an entry name would be refused (absolute, .., ...), or nil" },
    } },
  { name = "backup_archive", module = "mxpc.backup_archive",
    summary = "the Mendix Cloud backup format: metadata, layout, dump header, validation",
    functions = {
      { "is_uuid(s)", "whether s is a FileDocument UUID" },
      { "file_path(uuid)", "the entry name of a file: tree/xx/yy/<uuid>" },
      { "uuid_from_path(path)", "uuid, \"nested\" | \"flat\"; or nil, why" },
      { "classify(name, type)", "{kind=, key=, uuid=, form=} of an entry, or nil, why" },
      { "build_metadata(meta)", "the .metadata JSON text, every value a string" },
      { "parse_metadata(text)", "the .metadata as a table, warnings; or nil, why" },
      { "parse_dump_header(bytes)", "the header of a pg_dump -Fc file: version, sizes, server, ...; or nil, why" },
      { "compatibility(summary)", "{mendix_cloud=, verdict=, reasons=}: would Mendix Cloud restore it" },
      { "detect(path)", "\"archive\" or \"dump\", or nil, err" },
      { "validate(path [, {check_dump=}])", "the summary of an archive or dump (as inspect), or nil, err" },
      { "writer(path [, opts])", "a backup writer keeping the layout: metadata, dump, then files" },
      { "report(summary)", "the summary as lines for a person" },
      { "command(name, opts, file)", "runs inspect or verify on file; returns the exit code" },
    } },
  { name = "errors", module = "mxpc.error", summary = "error objects {code, message, hint}",
    functions = {
      { "new{code=, message=, hint=}", "an error object" },
      { "raise(code, message [, hint])", "raises a new error object" },
      { "is(v, code)", "whether v is an error object (with this code)" },
      { "normalize(e)", "any error value as an error object" },
    } },
  { name = "fs", module = "mxpc.fs", summary = "files: atomic writers, stat, directories",
    functions = {
      { "atomic_writer(path [, {force=, mode=}])", "a writer (fs.atomic_writer): temporary file, renamed on commit" },
      { "stat(path [, {follow=}])", "{type=, size=, mode=, mtime=}, or nil, err" },
      { "read(path)", "the whole file as a string, or nil, err" },
      { "mkdirs(path)", "creates path and its parents; true or nil, err" },
      { "mkdtemp(prefix)", "a new directory <prefix>XXXXXX, mode 0700" },
      { "remove(path)", "removes a file or an empty directory" },
      { "dir(path)", "sorted names in a directory" },
    } },
  { name = "k8s", module = "mxpc.k8s", summary = "the Kubernetes API: kubeconfig, in-cluster, Secrets",
    functions = {
      { "connect{kubeconfig=, context=, namespace=}", "a client (k8s.client), or nil, err" },
      { "secret_data(secret)", "a Secret's data decoded, the credentials registered for redaction" },
      { "resource(name)", "the API resource of a name (\"pods\", \"mendixapps\", ...)" },
      { "path(resource, namespace [, name])", "the API path of a resource" },
    } },
  { name = "log", module = "mxpc.log", summary = "logging on stderr, redaction, escaping",
    functions = {
      { "error(msg [, fields])", "logs at level error" },
      { "warn(msg [, fields])", "logs at level warn" },
      { "info(msg [, fields])", "logs at level info" },
      { "debug(msg [, fields])", "logs at level debug" },
      { "trace(msg [, fields])", "logs at level trace" },
      { "set_level(level)", "\"error\", \"warn\", \"info\", \"debug\" or \"trace\"" },
      { "level()", "the current level" },
      { "enabled(level)", "whether a message at level is written" },
      { "set_format(format)", "\"text\" or \"json\"" },
      { "format()", "the current format" },
      { "secret(value)", "registers value: it is never printed again" },
      { "redact(text)", "text with secrets and credential-shaped parts masked" },
      { "escape(text)", "text safe for a terminal: controls and invalid bytes escaped" },
    } },
  { name = "pg", module = "mxpc.pg", summary = "PostgreSQL on libpq",
    functions = {
      { "connect{host=, port=, dbname=, user=, password=, sslmode=, sslrootcert=}",
        "a connection (pg.connection), or nil, err" },
      { "quote_ident(name)", "name as a quoted SQL identifier" },
    } },
  { name = "process", module = "mxpc.process", summary = "child processes without a shell",
    functions = {
      { "spawn(argv [, {env=, stdin=, stdout=, stderr_max=}])", "a process (process), or nil, err" },
    } },
  { name = "runtime", module = "mxpc.runtime", summary = "the program: version, scripts, signals, clocks",
    functions = {
      { "embedded([path])", "the embedded Lua files, or the source of one" },
      { "scripts_dir()", "the --scripts directory, or nil" },
      { "data_dir()", "the installed data directory, or nil" },
      { "check_interrupt()", "raises `interrupted` if a signal came" },
      { "clear_interrupt()", "forgets a handled signal" },
      { "interrupted()", "\"SIGINT\", \"SIGTERM\" or false" },
      { "defer_interrupts(on)", "defers signals (past a point of no return); returns the previous setting" },
      { "sleep(seconds)", "waits, interruptible" },
      { "monotonic()", "seconds on a clock that never goes back" },
      { "libraries()", "versions of the libraries in use" },
      { "system_ca_file()", "the system's CA bundle, or nil" },
    } },
  { name = "s3", module = "mxpc.s3", summary = "S3 client: SigV4, streaming, multipart, many requests at once",
    functions = {
      { "client{endpoint=, region=, access_key=, secret_key=, path_style=, ca_file=, ...}",
        "a client (s3.client), or nil, err" },
      { "credentials{access_key=, secret_key=, profile=}", "the AWS credentials the chain finds: {source=, role=, ...}, or nil, err" },
      { "sign{method=, path=, query=, headers=, region=, ...}", "a SigV4 signature: {authorization=, signature=, ...}" },
      { "rds_token{host=, port=, user=, region=}", "an RDS IAM authentication token" },
    } },
  { name = "wf", module = "mxpc.workflow", summary = "the steps of the backup and restore workflows",
    functions = {
      { "resolve{namespace=, environment=, kubeconfig=, context=}",
        "the environment's settings: {namespace, name, replicas, database, storage, client}, or nil, err" },
      { "running_pods(env)", "how many pods of the environment run" },
      { "app_control(env)", "the app, stopped and started again around a restore (to-be-closed)" },
      { "ensure_stopped(env, stop [, timeout])", "the app stopped (or an error if running without stop)" },
      { "use_iam(env)", "switches the database login to RDS IAM tokens" },
      { "connect_database(env)", "a pg connection to the environment's database, or nil, err" },
      { "list_files(conn)", "the FileDocuments with contents: {{uuid=, size=}, ...}" },
      { "database_facts(conn)", "{size=, model_version=}" },
      { "start_dump(env, path)", "pg_dump -Fc into path, running meanwhile: dump.finish()" },
      { "dump_database(env, path)", "pg_dump -Fc into path; its size" },
      { "restore_database(env, dump_path)", "empties schema public and restores, in one transaction" },
      { "object_key(env, uuid)", "the S3 key of a file" },
      { "connect_storage(env)", "an s3 client for the environment's files, checked with one request" },
      { "too_late(what)", "after a point of no return: warns about a signal and forgets it" },
      { "transfer_options(opts)", "{concurrency=, window=} from command options" },
      { "file_sizes(store, env, files, transfer)", "fills in the sizes the database lacks, from S3" },
      { "progress(what, total)", "a progress reporter" },
      { "check_output(path, force)", "refuses an existing output unless force" },
      { "workdir(near)", "a working directory near a path (or TMPDIR)" },
    } },
}

-- Globals of the prompt besides the modules.
docs.globals = {
  { "help([x])", "this help; help(pg): a module, help(pg.connect): a function, help(h): a handle" },
  { "env(name) | env(namespace, name)", "an environment from the cluster: e:db(), e:store(), e:app()" },
  { "show(v)", "prints v as results print: tables over several lines, secrets hidden" },
  { "print(...)", "prints, redacted and escaped" },
}

-- Kinds of handles: `module` makes them, `meta` is their metatable's name in
-- the registry (where the C modules and the REPL's Lua classes keep it);
-- `var` names one in the signatures.
docs.classes = {
  { name = "env", module = "mxpc.repl_env", meta = "mxpc.repl.env", var = "e", summary = "an environment (env \"name\")",
    methods = {
      { "db()", "a pg connection to its database (the same one each call)" },
      { "store()", "its file storage (repl.store): the S3 client with its bucket and prefix" },
      { "app()", "its MendixApp object, as the cluster has it now" },
    } },
  { name = "repl.store", module = "mxpc.repl_env", meta = "mxpc.repl.store", var = "st", summary = "an environment's file storage",
    methods = {
      { "list([prefix])", "the environment's files (keys under its prefix, then prefix): {{key=, size=, ...}, ...}" },
      { "head(uuid | key)", "{size=, etag=} of a file" },
      { "get_string(uuid | key)", "a file's contents (small files)" },
      { "key(uuid)", "the S3 key of a file" },
    } },
  { name = "archive.writer", module = "mxpc.archive", meta = "mxpc.archive.writer", var = "w", summary = "a tar.gz being written",
    methods = {
      { "add_string(name, s)", "an entry from a string" },
      { "add_file(name, path)", "an entry from a file, streamed" },
      { "add_stream(name, size, source)", "an entry of size bytes from source()" },
      { "begin(name, size)", "an entry written with :write() and ended with :finish()" },
      { "commit()", "ends the archive; true or nil, err" },
      { "abort()", "removes the temporary file unless committed" },
      { "close()", "as abort" },
      { "stats()", "{entries=, bytes_in=, bytes_out=, ...}" },
    } },
  { name = "archive.reader", module = "mxpc.archive", meta = "mxpc.archive.reader", var = "r", summary = "a tar(.gz) being read",
    methods = {
      { "next()", "the next entry (name, size, type, mtime; :read(), :chunks()), nil at the end, or nil, err" },
      { "entries()", "iterator over the entries" },
      { "info()", "{name=, compression=, entries=, bytes_in=, bytes_out=}" },
      { "close()", "closes the reader" },
    } },
  { name = "fs.atomic_writer", module = "mxpc.fs", meta = "mxpc.fs.atomic_writer", var = "f", summary = "a file being written",
    methods = {
      { "write(s, ...)", "appends" },
      { "commit()", "fsync and rename onto the target" },
      { "abort()", "removes the temporary file" },
      { "close()", "as abort, unless committed" },
      { "path()", "the target path" },
    } },
  { name = "k8s.client", module = "mxpc.k8s", meta = "mxpc.k8s.client", var = "c", summary = "a Kubernetes API client",
    methods = {
      { "get(resource, name [, namespace])", "an object, or nil, err" },
      { "list(resource [, {namespace=, labelSelector=, fieldSelector=, limit=}])", "a list (all pages)" },
      { "patch(resource, name, patch [, {type=, namespace=}])", "the patched object (merge or JSON patch)" },
      { "request(method, path [, body [, {content_type=}]])", "decoded JSON (or text), status" },
      { "info()", "{server=, context=, cluster=, user=, namespace=, auth=}: never a credential" },
      { "namespace()", "the default namespace" },
      { "close()", "closes the client" },
    } },
  { name = "pg.connection", module = "mxpc.pg", meta = "mxpc.pg.connection", var = "db", summary = "a PostgreSQL connection",
    methods = {
      { "query(sql, ...)", "rows as tables, typed ($1, $2, ... parameters), or nil, err" },
      { "exec(sql)", "runs statements; true or nil, err" },
      { "info()", "{server_version=, ssl=, ...}" },
      { "close()", "closes the connection" },
    } },
  { name = "process", module = "mxpc.process", meta = "mxpc.process", var = "p", summary = "a child process",
    methods = {
      { "write(s, ...)", "to its stdin" },
      { "close_stdin()", "ends its stdin" },
      { "read([n])", "up to n bytes of its stdout, nil at the end" },
      { "wait()", "{status=, signal=, stderr=, reason=}" },
      { "poll()", "whether it has ended" },
      { "pid()", "its process id" },
      { "kill()", "stops it" },
      { "close()", "stops it if it runs" },
    } },
  { name = "s3.client", module = "mxpc.s3", meta = "mxpc.s3.client", var = "s", summary = "an S3 client",
    methods = {
      { "head(bucket, key)", "{size=, etag=}, or nil, err" },
      { "get(bucket, key, sink [, {expected_size=, force=}])", "bytes received; sink: function or file path" },
      { "get_string(bucket, key)", "the object as a string" },
      { "put(bucket, key, source [, size])", "{size=, etag=}" },
      { "delete(bucket, key)", "true" },
      { "list(bucket, prefix [, {max_keys=, on_item=}])", "the objects under prefix: {{key=, size=, etag=, last_modified=}, ...}" },
      { "create_bucket(bucket)", "true" },
      { "delete_bucket(bucket)", "true" },
      { "list_multipart_uploads(bucket)", "unfinished uploads {{key=, upload_id=}, ...}" },
      { "abort_multipart(bucket, key, upload_id)", "true" },
      { "presign(method, bucket, key [, expires])", "a presigned URL" },
      { "head_many(bucket, items [, opts])", "HEADs of many objects at once" },
      { "get_many(bucket, items, writer [, opts])", "GETs of many objects into an archive" },
      { "uploader([opts])", "PUTs of many objects at once (s3.uploader)" },
      { "close()", "closes the client" },
    } },
  { name = "s3.uploader", module = "mxpc.s3", meta = "mxpc.s3.uploader", var = "u", summary = "PUTs of many objects at once",
    methods = {
      { "put(bucket, key, source [, size])", "starts an upload; true or nil, err" },
      { "finish()", "waits for every upload; true or nil, err" },
      { "stats()", "counts and bytes so far" },
      { "close()", "stops what still runs" },
    } },
}

-- The name of a documented function: the signature's first word.
function docs.name(fn) return fn[1]:match("^[%a_][%w_]*") end

return docs
