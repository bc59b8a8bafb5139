-- A run's plan: the checks a workflow makes before it changes anything and,
-- in a dry run (--dry-run), what it would do. A workflow script makes one
-- (wf.plan) and passes its checks through it, so a dry run is the script
-- itself, run up to the point where it would change something:
--   local plan <close> = wf.plan(opts, "backup of ns/env into file")
--   local env = plan:check(wf.resolve(opts))
--   if not env then return plan:finish() end   -- (only a dry run gets here)
--   ...
--   if plan.dry then plan:say("would write ..."); return plan:finish() end
-- In a real run plan:check raises the first failure (as assert does) and
-- plan:say is silent. In a dry run plan:check records the failure and
-- returns nil, so that every check is made even when one fails, the steps
-- that read say what they found (M.dry() is the dry run's plan, for them),
-- and plan:finish() prints the plan on stdout and returns the exit code: 0
-- when the real run would start, 1 with the reasons.
local log = require "mxpc.log"

local M = {}

-- What the real runs ask of the Kubernetes API: resolving the environment
-- reads its MendixApp, StorageInstances and Secrets; --stop-app patches the
-- MendixApp and lists its pods.
M.RESOLVE_VERBS = { { "get", "mendixapps" }, { "get", "storageinstances" }, { "get", "secrets" } }
-- ... or, when its credentials are in a secret store, the MendixApp and its
-- SecretProviderClass (the store itself was read while resolving).
M.STORE_VERBS = { { "get", "mendixapps" }, { "get", "secretproviderclasses" } }
M.STOP_VERBS = { { "patch", "mendixapps" }, { "list", "pods" } }

local Plan = {}
Plan.__index = Plan

local current -- the dry run in progress, if any

-- A new plan for `what` ("backup of ns/env into file"); a dry run when
-- opts.dry_run. Close it when the run ends (`local plan <close> = ...`).
function M.new(opts, what)
  local self = setmetatable({ what = what, dry = opts.dry_run and true or false, lines = {}, reasons = {} }, Plan)
  if self.dry then self.outer, current = current, self end
  return self
end

-- The plan of the dry run in progress, or nil in a real run.
function M.dry() return current end

function Plan:__close()
  if current == self then current = self.outer end
end

-- Adds a line to what the dry run says it would do (nothing in a real run).
function Plan:say(fmt, ...)
  if self.dry then self.lines[#self.lines + 1] = fmt:format(...) end
end

-- A reason the run cannot start (an error object, or a message and a hint):
-- raised in a real run, recorded in a dry run. A usage error (code "usage":
-- the command line itself is wrong) is raised in a dry run too, so that it
-- exits 2 as the real run would. Returns nil.
function Plan:refuse(err, hint)
  if not self.dry or (type(err) == "table" and err.code == "usage") then
    error(err ~= nil and err or "a check of the run failed", 0)
  end
  err = type(err) == "table" and err or { message = tostring(err), hint = hint }
  self.reasons[#self.reasons + 1] = err
  return nil
end

-- The result of a check (ok, err, ...): ok, ... when it passed; else the
-- failure is refused (see refuse).
function Plan:check(ok, err, ...)
  if not ok then return self:refuse(err) end
  return ok, err, ...
end

-- Asks the server whether the cluster's user may do each of `verbs` ({verb,
-- resource} pairs) in `namespace`, `why` being the run's reason; each refusal
-- is a reason, with the RBAC rule that would allow it. Only in a dry run (a
-- real run finds out by asking).
function Plan:may(client, namespace, verbs, why)
  if not self.dry then return end
  local k8s, k8s_api = require "mxpc.k8s", require "mxpc.k8s_api"
  local info = client:info()
  local who = info.in_cluster and "the pod's service account" or ('the user of context "%s"'):format(info.context or "?")
  local answers = {}
  for i, v in ipairs(verbs) do
    local allowed, err = client:can_i(v[1], v[2], { namespace = namespace })
    if allowed == nil then return self:refuse(err) end
    answers[i] = allowed
    if allowed then k8s_api.saw_namespace(client, namespace) end -- (a namespace that does not exist allows nothing)
  end
  local refused, doubt, missing = 0, nil, nil
  for i, v in ipairs(verbs) do
    if not answers[i] then
      local verb, r = v[1], k8s.resource(v[2])
      refused = refused + 1
      if refused == 1 then doubt, missing = k8s_api.namespace_doubt(client, namespace) end
      local hint = k8s_api.rule_hint(who, namespace, r, verb)
      self:refuse(('%s may not %s %s in namespace "%s" (%s)'):format(who, verb, r.display, namespace, why),
        missing and doubt or doubt and (doubt .. "; if it is right, " .. hint) or hint)
    end
  end
  if refused == 0 then
    local names = {}
    for _, v in ipairs(verbs) do names[#names + 1] = v[1] .. " " .. v[2] end
    self:say("Kubernetes: %s may %s", who, table.concat(names, ", "))
  end
end

-- Prints the plan of a dry run on stdout (and, with JSON logs, as a dry_run
-- event) and returns the exit code: 0 when the real run would start, 1.
function Plan:finish()
  assert(self.dry, "plan:finish() ends a dry run")
  local out = { ("dry run: %s"):format(self.what) }
  for _, l in ipairs(self.lines) do out[#out + 1] = "  " .. l end
  if #self.reasons == 0 then
    out[#out + 1] = "the real run would start: nothing was changed"
  else
    out[#out + 1] = ("the real run would not start (%d reason%s):"):format(#self.reasons, #self.reasons > 1 and "s" or "")
    for _, r in ipairs(self.reasons) do
      out[#out + 1] = "  - " .. r.message
      if r.hint then out[#out + 1] = "    hint: " .. r.hint end
    end
  end
  for _, l in ipairs(out) do io.stdout:write(log.escape(log.redact(l)), "\n") end
  if log.format() == "json" then -- the plan as an event too, for whoever reads the JSON lines
    local why = {}
    for _, r in ipairs(self.reasons) do why[#why + 1] = r.message .. (r.hint and (" (hint: " .. r.hint .. ")") or "") end
    log.info("dry run", { event = "dry_run", run = self.what, would_start = #self.reasons == 0,
      plan = table.concat(self.lines, "\n"), reasons = #self.reasons, why = #why > 0 and table.concat(why, "\n") or nil })
  end
  return #self.reasons == 0 and 0 or 1
end

return M
