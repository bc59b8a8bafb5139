local t = require "t"
local args = require "mxpc.args"

local spec = {
  { short = "n", long = "namespace", value = "NS", required = true, check = args.check_label },
  { short = "f", long = "file", value = "FILE" },
  { short = "v", long = "verbose", count = true },
  { long = "force" },
  { short = "h", long = "help" },
}

local function parse(...) return args.parse(spec, { ... }, 1) end

t.test("short, long, inline and bundled forms", function()
  t.same(parse("-n", "a"), { namespace = "a" })
  t.same(parse("-na"), { namespace = "a" })
  t.same(parse("--namespace", "a"), { namespace = "a" })
  t.same(parse("--namespace=a", "-vv", "--force"), { namespace = "a", verbose = 2, force = true })
  local o, p = parse("-n", "a", "pos", "--", "-f")
  t.same(o, { namespace = "a" })
  t.same(p, { "pos", "-f" })
end)

t.test("usage errors name the option", function()
  t.raises(function() parse() end, "missing required option -n/--namespace")
  t.raises(function() parse("-n") end, "needs a value")
  t.raises(function() parse("-n", "") end, "non-empty")
  t.raises(function() parse("-n", "a", "-n", "b") end, "more than once")
  t.raises(function() parse("-x") end, "unknown option -x")
  t.raises(function() parse("--bogus") end, "unknown option --bogus")
  t.raises(function() parse("-n", "a", "--force=yes") end, "takes no value")
  t.raises(function() parse("-n", "Bad_Name") end, "invalid -n/--namespace")
  local e = t.raises(function() parse() end)
  t.eq(e.code, "usage")
end)

t.test("help skips the required check", function()
  t.same(parse("--help"), { help = true })
end)

t.test("kubernetes name checks", function()
  t.ok(args.check_label("mendix"))
  t.ok(args.check_label("a"))
  t.ok(not args.check_label("-a"))
  t.ok(not args.check_label(("a"):rep(64)))
  t.ok(args.check_subdomain("my-app.v2"))
  t.ok(not args.check_subdomain("My-App"))
  t.ok(not args.check_subdomain("a..b"))
end)

return t.run()
