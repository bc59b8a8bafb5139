-- The --files-* values (selection.lua): sizes, times, and the options
-- together. Input: the four values on lines (larger, smaller, since, of).
local selection = require "mxpc.selection"

return function(data)
  local size, why = selection.parse_size(data)
  assert(size == nil and type(why) == "string" or math.type(size) == "integer" and size >= 0)
  local t, why2 = selection.parse_time(data)
  assert(t == nil and type(why2) == "string" or type(t) == "number")
  local lines = {}
  for line in (data .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local opts = {}
  if lines[1] and lines[1] ~= "" then opts.files_larger_than = lines[1] end
  if lines[2] and lines[2] ~= "" then opts.files_smaller_than = lines[2] end
  if lines[3] and lines[3] ~= "" then opts.files_changed_since = lines[3] end
  if lines[4] and lines[4] ~= "" then opts.files_of = { lines[4] } end
  local sel = selection.options(opts) -- usage errors are refusals
  selection.selects(sel, { uuid = "u", name = "n", size = 1000, changed = 1700000000, entity = lines[4] })
  selection.thousands(#data * 1000003)
end
