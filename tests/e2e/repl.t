# The REPL on the local stack (run by tests/e2e/repl.sh, which exports the
# stack's settings and the credentials that must never show).

# help() lists the modules and globals, help(x) the functions with signatures
% printf 'help()\nhelp(pg)\nhelp(wf.resolve)\nhelp("env")\nhelp("repl.store")\n' > {tmp}/help.txt
$ repl
< help.txt
>~ ^modules \(help\(name\) lists the functions\):$
>~ ^  pg +PostgreSQL on libpq$
>~ ^  wf +the steps of the backup, restore and copy workflows$
>~ ^  env\(name\) \| env\(namespace, name\)  an environment from the cluster: e:db\(\), e:store\(\), e:app\(\)$
>~ ^  pg\.quote_ident\(name\) +name as a quoted SQL identifier$
>~ ^wf\.resolve\{namespace=, environment=, kubeconfig=, context=\}$
>~ ^  e:store\(\) +its file storage
>~ ^  st:list\(\[prefix\]\) +the environment's files

# env "demo-app" (namespace: the kubeconfig context's), its database, its
# files in S3: every file the database names is listed under the prefix
% printf '%s\n' 'e = env "demo-app"' 'e.namespace, e.name, e.storage.bucket, e.storage.prefix' 'e:db():query("select current_database() as db")[1].db' 'e:db() == e:db()' 'files = wf.list_files(e:db())' 'l = e:store():list()' 'keys = {} for _, o in ipairs(l) do keys[o.key] = o.size end' 'missing = 0 for _, f in ipairs(files) do if not keys[e:store():key(f.uuid)] then missing = missing + 1 end end' '#files, missing, #l >= #files' 'l[1].key:find("^demo%-app/") ~= nil, math.type(l[1].size)' 'e:store():list("no-such-prefix")' 'e:app().kind, e:app().spec.replicas' > {tmp}/env.txt
$ repl
< env.txt
> "mendix"	"demo-app"	"mendix-shared"	"demo-app/"
> "demo_app"
> true
> 20	0	true
> true	"integer"
> {}
> "MendixApp"	1

# an environment in another namespace by name; a missing one says so, with the hint
% printf '%s\n' 'env("mendix", "demo-copy").name' 'env("mendix", "nope")' > {tmp}/ns.txt
$ repl
< ns.txt
> "demo-copy"
> nil
> error: environment (MendixApp) "nope" not found in namespace "mendix"
> hint: check the environment's internal name and namespace: kubectl -n mendix get mendixapps

# -n sets the namespace of env "name"
% printf '%s\n' 'env("demo-copy").namespace' > {tmp}/opt.txt
$ repl -n mendix
< opt.txt
> "mendix"

# a resolved environment prints over several lines, indented, the
# credentials as ***; a Secret shows its keys, not its values
% printf '%s\n' 'e = env "demo-app"' 'e' 'e.client:get("secrets", "demo-app-database-credentials")' > {tmp}/print.txt
$ repl
< print.txt
>~ ^\{$
>~ ^  database = \{$
>~ ^    dbname = "demo_app",$
>~ ^    password = "\*\*\*",$
>~ ^    secret_key = "\*\*\*",$
>~ ^  \},$
>~ ^  name = "demo-app",$
>~ ^  data = \{$
>~ ^    \["database-password"\] = "\*\*\*",$
>! {env:DEMO_APP_DB_PASSWORD}
>! {env:MXPC_S3_SECRET_KEY}
!! {env:DEMO_APP_DB_PASSWORD}
