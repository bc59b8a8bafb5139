-- mxpc.http against a local server (tests/e2e/webhook_server.py).
local t = require "t"
local http = require "mxpc.http"
local cjson = require "cjson"

local dir = t.tmpdir()
local src = assert(os.getenv("MXPC_SOURCE_DIR"), "MXPC_SOURCE_DIR is not set")
local p = io.popen(("python3 %s/tests/e2e/webhook_server.py %s >/dev/null 2>&1 & echo $!"):format(src, dir))
local pid = p:read("l")
p:close()
local port
for _ = 1, 100 do
  local f = io.open(dir .. "/port")
  if f then port = f:read("l"); f:close(); break end
  os.execute("sleep 0.1")
end
assert(port, "the test server did not start")
local base = "http://127.0.0.1:" .. port

t.test("GET: status and body", function()
  local res = assert(http.request { url = base .. "/hello" })
  t.eq(res.status, 200)
  local echo = cjson.decode(res.body)
  t.eq(echo.method, "GET")
  t.eq(echo.path, "/hello")
  t.eq(echo.headers["User-Agent"], "mxpc-data-migration/" .. require("mxpc.runtime").version)
end)

t.test("POST with headers and a body (binary-safe); POST is the default with a body", function()
  local body = cjson.encode { files = 3, note = "a\0b" }
  local res = assert(http.request { url = base .. "/hook", body = body,
    headers = { ["Content-Type"] = "application/json", ["X-Token"] = 42 } })
  t.eq(res.status, 200)
  local echo = cjson.decode(res.body)
  t.eq(echo.method, "POST")
  t.eq(echo.body, body)
  t.eq(echo.headers["Content-Type"], "application/json")
  t.eq(echo.headers["X-Token"], "42")
  local put = assert(http.request { method = "PUT", url = base .. "/x", body = "" })
  t.eq(cjson.decode(put.body).method, "PUT")
end)

t.test("an error status is an answer, not a failure", function()
  local res = assert(http.request { url = base .. "/missing" })
  t.eq(res.status, 404)
  t.eq(res.body, "no such hook")
  local fail = assert(http.request { url = base .. "/fail", attempts = 2 })
  t.eq(fail.status, 503)
end)

t.test("failures: refused connection, an answer too large", function()
  local res, err = http.request { url = "http://127.0.0.1:1/", connect_timeout = 2 }
  t.eq(res, nil)
  t.eq(err.code, "http")
  t.contains(err.message, "http://127.0.0.1:1/")
  local _, big = http.request { url = base .. "/big" }
  t.contains(big.message, "the answer is larger than 1048576 bytes")
  local ok = assert(http.request { url = base .. "/big", max_response = 4 * 1024 * 1024 })
  t.eq(#ok.body, 2 * 1024 * 1024)
end)

local function requests_to(path)
  local n = 0
  for line in io.lines(dir .. "/requests.jsonl") do
    local r = cjson.decode(line)
    if r.path == path then n = n + 1 end
  end
  return n
end

t.test("the one retry policy: a Kubernetes read is retried, a write never", function()
  local k8s = require "mxpc.k8s"
  local kubeconfig = dir .. "/kubeconfig"
  local f = assert(io.open(kubeconfig, "w"))
  f:write(([[
apiVersion: v1
kind: Config
current-context: local
clusters:
- name: local
  cluster:
    server: %s
contexts:
- name: local
  context:
    cluster: local
    user: me
    namespace: default
users:
- name: me
  user:
    token: not-a-real-token
]]):format(base))
  f:close()
  local c = assert(k8s.connect { kubeconfig = kubeconfig })
  local before = requests_to("/fail")
  local res, err = c:request("GET", "/fail")
  t.eq(res, nil)
  t.eq(err.status, 503)
  t.eq(requests_to("/fail") - before, 3, "GET /fail: the first attempt and two retries")
  local wres, werr = c:request("PATCH", "/fail?write", { spec = {} })
  t.eq(wres, nil)
  t.eq(werr.status, 503)
  t.eq(requests_to("/fail?write"), 1, "PATCH: sent once")
  c:close()
end)

t.test("misuse raises", function()
  t.raises(function() http.request { url = "ftp://x/" } end, "http:// or https://")
  t.raises(function() http.request {} end, "http:// or https://")
  t.raises(function() http.request { url = base, method = "get" } end, "HTTP method")
  t.raises(function() http.request { url = base, headers = { ["X-A"] = "1\r\nX-B: 2" } } end, "line breaks")
  t.raises(function() http.request { url = base, timeout = 0 } end, "'timeout' must be a whole number")
end)

local code = t.run()
os.execute("kill " .. pid)
return code
