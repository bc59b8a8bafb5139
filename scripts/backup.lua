-- The backup workflow: environment -> Mendix Cloud backup archive.
-- Called with the parsed options: { namespace =, environment =, file =, force = }.
local errors = require "mxpc.error"

local opts = ...

errors.raise("not_implemented",
  ("backup of %s/%s is not implemented yet"):format(opts.namespace, opts.environment),
  "this version only parses and validates the command line")
