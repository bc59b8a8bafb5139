-- copy's two environments, without servers: --from/--to values, and a copy
-- onto itself refused however it is reached (mxpc.env_copy).
local t = require "t"
local env_copy = require "mxpc.env_copy"
local errors = require "mxpc.error"

t.test("parse_env_ref: NAMESPACE/ENVIRONMENT, and why a value is not", function()
  t.same({ env_copy.parse_env_ref("mendix/demo-app") }, { "mendix", "demo-app" })
  t.same({ env_copy.parse_env_ref("a/b.c-1") }, { "a", "b.c-1" })
  for bad, why in pairs {
    ["demo-app"] = "expected NAMESPACE/ENVIRONMENT", ["/demo-app"] = 'namespace ""', ["mendix/"] = 'environment ""',
    ["a/b/c"] = "expected NAMESPACE/ENVIRONMENT", ["Mendix/app"] = 'namespace "Mendix"',
    ["mendix/App"] = 'environment "App"', ["mendix/my_app"] = 'environment "my_app"',
    [("x"):rep(64) .. "/app"] = "at most 63 characters",
  } do
    local ns, err = env_copy.parse_env_ref(bad)
    t.eq(ns, nil, bad)
    t.contains(err, why, bad)
  end
end)

t.test("side_options: each side's cluster, the rest shared", function()
  local o = env_copy.side_options({ from = "prod/app", to = "acc/app", from_kubeconfig = "/k/prod",
    to_context = "acc", db_sslmode = "require", identity = "tool" }, "from")
  t.same(o, { namespace = "prod", environment = "app", kubeconfig = "/k/prod", db_sslmode = "require",
    identity = "tool", side = "from" })
  o = env_copy.side_options({ from = "prod/app", to = "acc/app", to_context = "acc" }, "to")
  t.eq(o.namespace, "acc")
  t.eq(o.context, "acc")
  t.eq(o.kubeconfig, nil)
end)

-- an environment as wf.resolve makes it, in the cluster at `server`
local function env(server, ns, name, db, st)
  return { namespace = ns, name = name, client = { info = function() return { server = server } end },
    database = { host = db[1], port = db[2], dbname = db[3] },
    storage = { endpoint = st[1], bucket = st[2], prefix = st[3] } }
end
local A = env("https://k8s-a:6443", "mendix", "app", { "db.a", 5432, "app" }, { "http://s3:9000", "files", "app/" })

local function refused(what, ok, err)
  t.eq(ok, nil, what)
  t.ok(errors.is(err, "usage"), what .. ": a usage error (exit 2)")
  t.contains(err.message, "--from and --to are the same environment", what)
  return err.message
end

t.test("check_not_same: the same environment in the same cluster", function()
  local same = env("https://K8S-A:6443", "mendix", "app", { "db.b", 5432, "x" }, { "http://s3:9000", "other", "" })
  t.contains(refused("same name", env_copy.check_not_same(A, same)), "mendix/app in the cluster at https://k8s-a:6443")
  -- the same name in another cluster is another environment
  local other = env("https://k8s-b:6443", "mendix", "app", { "db.b", 5432, "x" }, { "http://s3:9000", "other", "" })
  t.eq(env_copy.check_not_same(A, other), true)
end)

t.test("check_not_same: the same database or the same place in storage, reached two ways", function()
  local db = env("https://k8s-b:6443", "acc", "app", { "DB.A", "5432", "app" }, { "http://s3:9000", "acc", "" })
  t.contains(refused("database", env_copy.check_not_same(A, db)), "use the same database db.a:5432/app")
  -- --files-only leaves the database alone
  t.eq(env_copy.check_not_same(A, db, { files_only = true }), true)
  local files = env("https://k8s-b:6443", "acc", "app", { "db.b", 5432, "app" }, { "HTTP://s3:9000/", "files", "app/" })
  t.contains(refused("storage", env_copy.check_not_same(A, files)), "keep their files in the same place")
  t.eq(env_copy.check_not_same(A, files, { database_only = true }), true)
  -- another port, database, bucket or prefix is another place
  for _, e in ipairs {
    env("https://k8s-b:6443", "acc", "app", { "db.a", 5433, "app" }, { "http://s3:9000", "files", "acc/" }),
    env("https://k8s-b:6443", "acc", "app", { "db.a", 5432, "acc" }, { "http://s3:9000", "acc", "app/" }),
    env("https://k8s-b:6443", "acc", "app", { "db.b", 5432, "app" }, { "http://s3:9001", "files", "app/" }),
  } do
    t.eq(env_copy.check_not_same(A, e), true)
  end
end)

return t.run()
