-- App control: the environment's MendixApp during a restore. How many of
-- its pods run, and an App that stops it (or refuses a running one) and
-- starts it again when closed, retrying while the Kubernetes API is down.
-- Reached through the wf.* facade (mxpc.workflow).
local errors = require "mxpc.error"
local log = require "mxpc.log"
local progress = require "mxpc.progress"
local runtime = require "mxpc.runtime"

local M = {}

-- Pods of the environment that still run.
function M.running_pods(env)
  local pods, err = env.client:list("pods", { namespace = env.namespace,
    labelSelector = "privatecloud.mendix.com/app=" .. env.name })
  if not pods then return nil, err end
  return #(pods.items or {})
end

-- The command that sets the app's replicas by hand.
local function scale_command(env, replicas)
  return ("kubectl -n %s patch mendixapp %s --type merge -p '{\"spec\":{\"replicas\":%d}}'"):format(
    env.namespace, env.name, replicas)
end

-- How long starting the app again is retried while the Kubernetes API is down
-- or answers 5xx/429, in seconds.
M.START_RETRY_SECONDS = 30
-- How often the stopping app's pods are counted, in seconds (the app is down
-- from the stop on: a long pause would be downtime).
M.POD_POLL_SECONDS = 0.2

local RETRY_STATUS = { [408] = true, [409] = true, [429] = true }

-- Sets the app's replicas back, retrying with backoff (0.5 s doubling up to
-- 5 s) for M.START_RETRY_SECONDS; true or nil, err.
local function scale_back(env, replicas)
  local deadline = runtime.monotonic() + M.START_RETRY_SECONDS
  local delay = 0.5
  while true do
    local ok, err = env.client:patch("mendixapps", env.name, { spec = { replicas = replicas } },
      { namespace = env.namespace })
    if ok then return true end
    local left = deadline - runtime.monotonic()
    if (err.status and err.status < 500 and not RETRY_STATUS[err.status]) or left <= 0 then return nil, err end
    log.warn("could not start the app again, retrying", { error = err.message, seconds = math.min(delay, left) })
    runtime.sleep(math.min(delay, left))
    delay = math.min(delay * 2, 5)
  end
end

-- The app of an environment during a restore: stops it if asked, and starts
-- it again when closed (also while an error or a signal unwinds) or when
-- asked to. Create it into a to-be-closed variable before stopping:
--   local app <close> = wf.app_control(env)
--   assert(app:ensure_stopped(opts.stop_app))
local App = {}
App.__index = App

function M.app_control(env)
  return setmetatable({ env = env, replicas = env.replicas or 0, stopped = false }, App)
end

-- Whether the app may be restored into: true if it is stopped (then
-- self.running = false) or `stop` says to stop it (self.running = true);
-- a running app without `stop` is an error. Changes nothing, so a restore
-- can check first and stop the app only for its database phase. In a dry
-- run (mxpc.plan) it also asks whether the user may stop the app, and says
-- what the run would do.
function App:check(stop)
  local env, replicas = self.env, self.replicas
  local pods, perr = M.running_pods(env)
  if not pods and not errors.is(perr, "forbidden") then return nil, perr end
  self.running = not (replicas == 0 and (pods or 0) == 0)
  local dry = require("mxpc.plan").dry()
  local what = env.role == "target" and "the target's app" or "the app"
  if not self.running then
    if dry then dry:say("%s is stopped", what) end
    return true
  end
  if not stop then
    return nil, errors.new { code = "running",
      message = ("environment %s/%s is running (%d replicas%s); restoring into a running app can break it"):format(
        env.namespace, env.name, replicas, pods and (", %d pods"):format(pods) or ""),
      hint = ("stop it first (%s), or use --stop-app to stop it for the restore and start it again afterwards"):format(
        scale_command(env, 0)) }
  end
  if dry then -- (a stopped app is left alone: no patch, no pod list)
    local plan = require "mxpc.plan"
    dry:may(env.client, env.namespace, plan.STOP_VERBS, "--stop-app")
    dry:say("would stop %s (%d replicas%s) and start it again afterwards", what, replicas,
      pods and (", %d pods"):format(pods) or "")
  end
  return true
end

-- Makes sure the app does not run. With `stop`, scales it to 0 and waits for
-- its pods to go (at most `timeout` seconds, default 300); without, a running
-- app is an error. true or nil, err; after a failure or a signal the app is
-- started again before this returns. A dry run stops nothing (see check).
function App:ensure_stopped(stop, timeout)
  local env, replicas = self.env, self.replicas
  if self.stopped then return true end
  local ok, cerr = self:check(stop)
  if not ok then return nil, cerr end
  if not self.running or require("mxpc.plan").dry() then return true end
  log.info("stopping the app", { replicas = replicas })
  local function stop_and_wait()
    self.stopped = true -- from the request on, even if it is interrupted
    local ok, err = env.client:patch("mendixapps", env.name, { spec = { replicas = 0 } }, { namespace = env.namespace })
    if not ok then
      if err.status then self.stopped = false end -- the server refused: nothing changed
      return nil, err
    end
    local deadline = os.time() + (timeout or 300)
    local said = runtime.monotonic()
    while true do
      local n, lerr = M.running_pods(env)
      if not n then return nil, lerr end
      if n == 0 then return true end
      if runtime.monotonic() - said >= progress.LINE_SECONDS then -- not silent while it waits
        said = runtime.monotonic()
        log.info("waiting for the app's pods to stop", { pods = n })
      end
      if os.time() >= deadline then
        return nil, errors.new { code = "timeout", message = ("%d pods of %s/%s still run after %d seconds"):format(
          n, env.namespace, env.name, timeout or 300) }
      end
      runtime.sleep(M.POD_POLL_SECONDS)
    end
  end
  local ran, ok2, err = pcall(stop_and_wait)
  if not ran or not ok2 then
    self:__close(not ran and ok2 or nil)
    if not ran then error(ok2, 0) end
    return nil, err
  end
  log.info("app stopped")
  return true
end

local function start(self)
  if self.result == nil then
    if not self.stopped then
      self.result = true
    else
      local was = runtime.defer_interrupts(true)
      log.info("starting the app again", { replicas = self.replicas })
      local ok, err = scale_back(self.env, self.replicas)
      if ok then
        self.result = true
      else
        self.result = false
        self.err = errors.new { code = "app_stopped",
          message = ("starting the app again failed, %s/%s is left stopped: %s"):format(self.env.namespace,
            self.env.name, err.message),
          hint = "start it when the Kubernetes API answers again: " .. scale_command(self.env, self.replicas) }
      end
      runtime.defer_interrupts(was)
    end
  end
  if self.result then return true end
  return nil, self.err
end

-- Starts the app again if it was stopped (once; later calls return the first
-- result): true, or nil, err (code app_stopped) naming the command that
-- starts it by hand. Signals are deferred meanwhile: the first one does not
-- stop it, and is raised afterwards unless signals were deferred already.
function App:start_again()
  local ok, err = start(self)
  if not ok then self.reported = true end -- the caller reports it
  return ok, err
end

function App:__close(err)
  -- while an error or a signal unwinds the app must still come back, so a
  -- pending interruption must not stop this request
  if err ~= nil then runtime.clear_interrupt() end
  local ok, serr = start(self)
  if not ok and not self.reported then
    self.reported = true
    log.error(serr.message .. "; " .. serr.hint, { code = serr.code })
  end
end

-- The same in one call, for scripts written before app_control: returns the
-- app (to close) or nil, err.
function M.ensure_stopped(env, stop, timeout)
  local app = M.app_control(env)
  local ok, err = app:ensure_stopped(stop, timeout)
  if not ok then return nil, err end
  return app
end

return M
