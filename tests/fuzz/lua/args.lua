-- The command line as args.lua parses it, with the program's own commands
-- and options (mxpc.main's table) and their checks, then the --files-*
-- values as the commands read them (selection.options). Input: the command
-- line, one argument per line; the first picks the command.
local args = require "mxpc.args"
local cli = require("mxpc.main").cli()
local selection = require "mxpc.selection"

return function(data)
  local argv = {}
  for a in (data .. "\n"):gmatch("([^\n]*)\n") do argv[#argv + 1] = a end
  local names = cli.order
  local def = cli.commands[argv[1]] or cli.commands[names[#argv[1] % #names + 1]]
  local opts, positional = args.parse(def.spec, argv, 2, def.stop_at_positional) -- usage errors are refusals
  assert(type(opts) == "table" and type(positional) == "table")
  for _, p in ipairs(positional) do assert(type(p) == "string") end
  selection.options(opts)
  args.did_you_mean(argv[1], names)
end
