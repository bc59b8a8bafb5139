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

t.test("error.traceback: the one message handler, from the function that raised", function()
  local errors = require "mxpc.error"
  local function raiser() errors.raise("io", "disk gone") end
  local ok, e = xpcall(raiser, errors.traceback)
  t.eq(ok, false)
  t.ok(errors.is(e, "io"), "an error object")
  t.contains(e.traceback, "disk gone\nstack traceback:\n\t[C]: in function 'mxpc.error.raise'\n")
  local first = e.traceback
  local _, again = xpcall(function() error(e) end, errors.traceback)
  t.eq(again.traceback, first, "kept from where it was first raised")
  local _, plain = xpcall(function() error("text", 0) end, function(x) return errors.traceback(x, 2) end)
  t.eq(plain.message, "text")
  t.ok(not plain.traceback:find("in function <%[C%]>", 1), "no frame of the Lua handler's call")
end)

return t.run()
