-- The restore workflow: backup archive -> environment.
-- Called with the parsed options: { namespace =, environment =, file = }.
local errors = require "mxpc.error"

local opts = ...

errors.raise("not_implemented",
  ("restore into %s/%s is not implemented yet"):format(opts.namespace, opts.environment),
  "this version only parses and validates the command line")
