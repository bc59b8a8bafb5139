-- Hooks example: tell a web service about each backup (a chat channel, a
-- monitoring system) by POSTing a JSON summary to MXPC_WEBHOOK_URL.
--
--   MXPC_WEBHOOK_URL=https://hooks.example/backups \
--     mxpc-data-migration backup -n NS -e ENV -f backup.tar.gz --hooks webhook.lua
--
-- The backup is written before after_backup runs: a webhook that does not
-- answer is reported as a warning rather than failing the run. on_error
-- reports failed runs the same way.
local cjson = require "cjson"
local http = require "mxpc.http"

local function post(ctx, payload)
  local url = os.getenv("MXPC_WEBHOOK_URL")
  if not url or url == "" then
    error({ code = "usage", message = "MXPC_WEBHOOK_URL is not set", hint = "set it to the webhook's URL" }, 0)
  end
  payload.namespace, payload.environment = ctx.options.namespace, ctx.options.environment
  local res, err = http.request { url = url, headers = { ["Content-Type"] = "application/json" },
    body = cjson.encode(payload), timeout = 15 }
  if not res then
    ctx.log.warn("the webhook failed", { error = err.message })
  elseif res.status >= 300 then
    ctx.log.warn("the webhook answered an error", { status = res.status })
  end
end

return {
  after_backup = function(ctx, summary)
    post(ctx, { event = "backup", file = summary.file, database_bytes = summary.database_bytes,
      files = summary.files, bytes = summary.bytes, missing = summary.missing, seconds = summary.seconds })
  end,
  on_error = function(ctx, err)
    post(ctx, { event = ctx.workflow .. " failed", error = err.message })
  end,
}
