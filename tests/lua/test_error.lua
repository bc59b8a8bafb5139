local t = require "t"
local errors = require "mxpc.error"

t.test("new makes an error object that prints its message", function()
  local e = errors.new { code = "conn", message = "cannot connect", hint = "check the host" }
  t.ok(errors.is(e))
  t.ok(errors.is(e, "conn"))
  t.eq(errors.is(e, "other"), false)
  t.eq(tostring(e), "cannot connect")
  t.eq(e.hint, "check the host")
end)

t.test("new defaults the code and rejects a missing message", function()
  t.eq(errors.new { message = "x" }.code, "error")
  t.raises(function() errors.new { code = "x" } end, "message")
end)

t.test("raise throws an error object", function()
  local ok, e = pcall(errors.raise, "usage", "bad flag", "see --help")
  t.eq(ok, false)
  t.ok(errors.is(e, "usage"))
  t.eq(e.message, "bad flag")
  t.eq(e.hint, "see --help")
end)

t.test("normalize turns strings and plain tables into error objects", function()
  local e = errors.normalize("plain")
  t.ok(errors.is(e, "error"))
  t.eq(e.message, "plain")
  local e2 = errors.normalize({ message = "m", code = "c" })
  t.ok(errors.is(e2, "c"))
  t.eq(errors.is("string"), false)
end)

return t.run()
