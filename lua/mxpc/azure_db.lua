-- Azure Database for PostgreSQL logins with Entra ID tokens (managed identity,
-- Azure Workload Identity): the mirror of RDS IAM in workflow.lua (use_iam,
-- db_password). A database without database-password whose host is Azure's
-- (*.postgres.database.azure.com), or of an environment whose files are reached
-- with Workload Identity, or where Workload Identity is set up and AWS's web
-- identity is not, logs in with an Entra token for
-- https://ossrdbms-aad.database.windows.net/.default as the password: one valid
-- token for every connection and every child (PGPASSWORD, never a command line),
-- renewed before it expires (mxpc.azure.token caches), sslmode at least require.
local errors = require "mxpc.error"
local log = require "mxpc.log"

local M = {}

M.SCOPE = "https://ossrdbms-aad.database.windows.net/.default"

local function set(name) local v = os.getenv(name); return v ~= nil and v ~= "" end

-- Why the database's IAM login is Entra's, or nil when it is RDS's.
function M.reason(env)
  local host = env.database.host or ""
  if host:lower():match("%.postgres%.database%.azure%.com%.?$") then return "an Azure PostgreSQL host" end
  if env.storage and env.storage.service == "azure" then return "an environment on Azure" end
  if set("AZURE_FEDERATED_TOKEN_FILE") and not set("AWS_WEB_IDENTITY_TOKEN_FILE")
      and not host:lower():match("%.rds%.amazonaws%.com%.?$") then
    return "Azure Workload Identity (AZURE_FEDERATED_TOKEN_FILE)"
  end
end

-- The token for one new connection: token | nil, err.
function M.password()
  local token, err = require("mxpc.azure").token(M.SCOPE)
  if not token then return nil, err end
  return token
end

-- Switches the login to Entra tokens; a token is fetched now, so that a
-- missing identity fails before any work.
function M.use(env, because)
  local db = env.database
  db.entra = true
  local token, err = M.password()
  if not token then
    return nil, errors.new { code = err.code or "credentials",
      message = "the database logs in with Entra ID tokens (" .. because .. "), but " .. err.message, hint = err.hint }
  end
  log.info("database login with Entra ID tokens", { because = db.iam_reason, entra = because,
    identity = os.getenv("AZURE_CLIENT_ID"), sslmode = db.sslmode })
  return true
end

-- A refused login, explained: how the role is mapped to the identity.
function M.refusal(db, err)
  local text = tostring(err)
  if not (text:find("authentication failed", 1, true) or text:find("token", 1, true)) then return err end
  local client = os.getenv("AZURE_CLIENT_ID") or "?"
  return errors.new { code = "forbidden",
    message = ("the database %s:%s refused the Entra ID token of the managed identity %s for user %s: %s"):format(
      db.host, db.port, client, db.user, (text:gsub("\n.*", ""))),
    hint = ("map the database role to the identity: as an Entra administrator, SELECT * FROM "
      .. "pgaadauth_create_principal_with_oid('%s', '<principal id>', 'service', false, false), or "
      .. "SECURITY LABEL for \"pgaadauth\" on role \"%s\" is 'aadauth,oid=<principal id>,type=service'"):format(
        db.user, db.user) }
end

return M
