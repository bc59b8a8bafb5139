-- The REPL's help docs against the modules' actual fields, completion, and
-- how values print.
local t = require "t"
local docs = require "mxpc.repl_docs"
local help = require "mxpc.repl_help"
local complete = require "mxpc.repl_complete"
local repl = require "mxpc.repl"
local log = require "mxpc.log"

-- Names of the functions in a table, without the internal ones ("_x").
local function function_names(tbl)
  local names = {}
  for k, v in pairs(tbl) do
    if type(k) == "string" and type(v) == "function" and k:sub(1, 1) ~= "_" then names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

local function documented(fns)
  local names = {}
  for _, f in ipairs(fns) do names[#names + 1] = docs.name(f) end
  table.sort(names)
  return names
end

-- The documented names are exactly the actual ones; a failure names the
-- differences.
local function same_names(docs_names, actual, what)
  local set, missing, extra = {}, {}, {}
  for _, n in ipairs(docs_names) do set[n] = true end
  for _, n in ipairs(actual) do
    if set[n] then set[n] = nil else missing[#missing + 1] = n end
  end
  for n in pairs(set) do extra[#extra + 1] = n end
  table.sort(extra)
  t.ok(#missing == 0 and #extra == 0, ("%s: not in lua/mxpc/repl_docs.lua: {%s}; documented but absent: {%s}"):format(
    what, table.concat(missing, ", "), table.concat(extra, ", ")))
end

t.test("every module's functions are documented, and only those", function()
  local scope = repl.scope {}
  for _, m in ipairs(docs.modules) do
    local mod = require(m.module)
    t.eq(scope[m.name], mod, "the prompt has " .. m.name)
    same_names(documented(m.functions), function_names(mod), m.name)
  end
end)

t.test("every kind of handle's methods are documented, and only those", function()
  local registry = debug.getregistry()
  for _, class in ipairs(docs.classes) do
    require(class.module)
    local mt = registry[class.meta]
    t.ok(type(mt) == "table", class.meta .. " is a registered metatable")
    t.ok(help.methods(class), class.name .. " has a methods table")
    same_names(documented(class.methods), function_names(help.methods(class)), class.name)
  end
end)

t.test("the globals help() lists are those of the prompt, modules aside", function()
  local scope = repl.scope {}
  local modules = {}
  for _, m in ipairs(docs.modules) do modules[m.name] = true end
  local globals = {}
  for k in pairs(scope) do
    if not modules[k] then globals[#globals + 1] = k end
  end
  table.sort(globals)
  same_names(documented(docs.globals), globals, "globals")
end)

t.test("help explains a module, a function, a handle, a name", function()
  local scope = repl.scope {}
  local lines = assert(help.text(scope, scope.pg))
  t.eq(lines[1], 'pg: PostgreSQL on libpq (require "mxpc.pg")')
  t.ok(table.concat(lines, "\n"):find("pg.quote_ident(name)  name as a quoted SQL identifier", 1, true))
  t.same(help.text(scope, scope.wf.list_files),
    { "wf.list_files(conn [, each])",
      "  the FileDocuments with contents: {{uuid=, size=, name=, changed=, entity=}, ...}; or each(file) for each, and their number" })
  local conn = setmetatable({}, debug.getregistry()["mxpc.pg.connection"])
  lines = assert(help.text(scope, conn))
  t.eq(lines[1], "pg.connection: a PostgreSQL connection")
  t.ok(lines[2]:find("^  db:query%(sql, %.%.%.%)"))
  t.same(help.text(scope, conn.query)[1], "db:query(sql, ...)")
  t.same(help.text(scope, "s3.client"), help.text(scope, setmetatable({}, debug.getregistry()["mxpc.s3.client"])))
  t.eq(help.text(scope, "k8s.connect")[1], "k8s.connect{kubeconfig=, context=, namespace=}")
  local none, why = help.text(scope, "nothing")
  t.eq(none, nil)
  t.eq(why, 'no help on "nothing"; help() lists what there is')
  local overview = table.concat(help.text(scope), "\n")
  for _, m in ipairs(docs.modules) do t.ok(overview:find("\n  " .. m.name .. " ", 1, true), m.name) end
end)

t.test("completion: globals, fields, methods, strings", function()
  local scope = repl.scope {}
  scope.c = setmetatable({}, debug.getregistry()["mxpc.k8s.client"])
  scope.s = "text"
  scope.nested = { inner = { value = 1, fn = function() end } }
  local function c(word) return complete.candidates(scope, word) end
  t.same(c("c:g"), { "c:get" })
  t.same(c("c:"), { "c:can_i", "c:close", "c:create", "c:create_token", "c:delete", "c:get", "c:info", "c:list",
    "c:namespace", "c:patch", "c:request" })
  t.same(c("string.fo"), { "string.format" })
  t.same(c("pri"), { "print" })
  t.same(c("wf.reso"), { "wf.resolve" })
  t.same(c("k8s.res"), { "k8s.resource", "k8s.resources" })
  t.same(c("k8s:res"), { "k8s:resource" })
  t.same(c("k8s._b"), { "k8s._base64_decode" })
  t.same(c("s:upp"), { "s:upper" })
  t.same(c("nested.inner."), { "nested.inner.fn", "nested.inner.value" })
  t.same(c("nested.inner:"), { "nested.inner:fn" })
  t.same(c("missing.x"), {})
  t.same(c("nested..x"), {})
  t.same(c("he"), { "help" })
end)

t.test("completion never runs code: an __index function is not called", function()
  local called = false
  local scope = { p = setmetatable({}, { __index = function() called = true end }) }
  t.same(complete.candidates(scope, "p.x"), {})
  t.same(complete.candidates(scope, "p.a.b"), {})
  t.ok(not called)
end)

t.test("a table prints on one line when it fits, else over several, indented", function()
  t.eq(repl.show({ "x", a = 1, b = { 2, 3 } }), '{"x", a = 1, b = {2, 3}}')
  local long = ("y"):rep(70)
  t.eq(repl.show({ name = "demo", settings = { host = "db.example", path = long }, list = { 1, 2 } }), table.concat({
    "{",
    "  list = {1, 2},",
    '  name = "demo",',
    "  settings = {",
    '    host = "db.example",',
    '    path = "' .. long .. '"',
    "  }",
    "}",
  }, "\n"))
  t.eq(repl.show({ a = { b = { c = { d = 1 } } } }), "{a = {b = {c = {...}}}}")
end)

t.test("secrets stay hidden in a table over several lines; a Secret shows its keys only", function()
  log.secret("s3cr3t-value-for-the-repl")
  local text = repl.show({ database = { host = "db", password = "s3cr3t-value-for-the-repl", note = ("n"):rep(80) },
    secret = { kind = "Secret", metadata = { name = "x" }, data = { pw = "czNjcjN0" } } })
  t.ok(text:find("\n", 1, true), "several lines")
  t.ok(not text:find("s3cr3t", 1, true), "the secret is redacted")
  t.ok(text:find('password = "***"', 1, true))
  t.ok(not text:find("czNjcjN0", 1, true), "the Secret's base64 value is hidden")
  t.ok(text:find('data = {pw = "***"}', 1, true))
end)

t.test("a line break in a value does not break the layout", function()
  t.eq(repl.show({ "a\nb" }), '{"a\\nb"}')
end)

return t.run()
