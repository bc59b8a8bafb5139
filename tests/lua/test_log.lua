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

t.test("JSON fields keep their kind: numbers, booleans and null bare, inf and nan as null", function()
  local dir = t.tmpdir()
  t.write(dir .. "/k.lua", [[
    local log = require "mxpc.log"
    log.info("kinds", { n = 42, f = 1.5, big = 2^70, inf = math.huge, nan = 0/0, yes = true, none = require("cjson").null,
      s = "42" })
  ]])
  local json = t.sh(t.program() .. " --log-format json run " .. dir .. "/k.lua 2>&1 >/dev/null")
  t.ok(json:find('"big":1.1805916207174e+21,', 1, true), json)
  t.ok(json:find('"f":1.5,"inf":null,"n":42,"nan":null,"none":null,"s":"42","yes":true}', 1, true), json)
  local text = t.sh(t.program() .. " run " .. dir .. "/k.lua 2>&1 >/dev/null")
  t.ok(text:find("n=42 nan=", 1, true) and text:find("none=null s=42 yes=true", 1, true), text)
end)

t.test("the status line is cut to the terminal's width (80 columns when that cannot be told), counting characters",
  function()
    local dir = t.tmpdir()
    t.write(dir .. "/w.lua", [[require("mxpc.log").status(("é"):rep(50) .. ("x"):rep(100))]])
    local out = t.sh(t.program() .. " run " .. dir .. "/w.lua 2>&1 >/dev/null")
    t.eq(out, "\r" .. ("é"):rep(50) .. ("x"):rep(29) .. "\27[K")
  end)

t.test("the status line: rewritten in place, erased by log lines and drawn again below them", function()
  local dir = t.tmpdir()
  t.write(dir .. "/st.lua", [[
    local log = require "mxpc.log"
    log.status("copying 10%")
    log.status("copying 20%\27[31m")
    log.info("a line")
    log.status(nil)
    log.info("after")
  ]])
  local out = t.sh(t.program() .. " run " .. dir .. "/st.lua 2>&1 >/dev/null")
  t.eq(out, "\rcopying 10%\27[K\rcopying 20%\\x1b[31m\27[K\r\27[Kinfo: a line\n\rcopying 20%\\x1b[31m\27[K" ..
    "\r\27[Kinfo: after\n")
end)

return t.run()
