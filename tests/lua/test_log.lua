local t = require "t"
local log = require "mxpc.log"

t.test("levels and formats can be set and read", function()
  log.set_level("debug")
  t.eq(log.level(), "debug")
  t.ok(log.enabled("debug"))
  t.ok(not log.enabled("trace"))
  log.set_level("info")
  log.set_format("json")
  t.eq(log.format(), "json")
  log.set_format("text")
  t.raises(function() log.set_level("loud") end, "expected error, warn")
  t.raises(function() log.set_format("xml") end, "invalid option")
end)

t.test("registered secrets are redacted", function()
  log.secret("hunter2-secret")
  t.eq(log.redact("password is hunter2-secret!"), "password is ***!")
  log.secret(nil) -- absent optional secrets are fine
end)

t.test("a secret inside the mask is redacted and the line ends (a subprocess with a time limit)", function()
  local dir = t.tmpdir()
  t.write(dir .. "/s.lua", [[
    local log = require "mxpc.log"
    log.secret("*")
    log.secret("**")
    io.stderr:write(log.redact("password is * and **"), "\n")
    log.warn("the secret is *")
  ]])
  local out, code = t.sh("timeout -s KILL 20 " .. t.program() .. " run " .. dir .. "/s.lua 2>&1")
  t.eq(code, 0, "exit status (137: it never returned)")
  t.eq(out, "password is *** and ***\nwarn: the secret is ***\n")
end)

t.test("log lines go to stderr, redacted, with sorted fields", function()
  local prog = t.program()
  local dir = t.tmpdir()
  local f = assert(io.open(dir .. "/s.lua", "w"))
  f:write([[
    local log = require "mxpc.log"
    log.secret("topsecret")
    log.info("connecting", { user = "app", password = "topsecret", host = "db" })
    log.debug("not shown")
  ]])
  f:close()
  local out = t.sh("MXPC_SCRIPTS= " .. prog .. " run " .. dir .. "/s.lua 2>&1 >/dev/null")
  t.eq(out, "info: connecting host=db password=*** user=app\n")
  local json = t.sh(prog .. " --log-format json run " .. dir .. "/s.lua 2>&1 >/dev/null")
  local obj = require("cjson").decode(json)
  t.eq(obj.level, "info")
  t.eq(obj.msg, "connecting")
  t.eq(obj.password, "***")
  t.ok(obj.time:match("^%d%d%d%d%-%d%d%-%d%dT"), "ISO time")
end)

return t.run()
