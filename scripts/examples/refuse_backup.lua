-- Hooks example: refuse to back up data that fails a check, before any work
-- (no archive is written, the run exits 1 naming the check).
--
--   mxpc-data-migration backup -n NS -e ENV -f backup.tar.gz --hooks refuse_backup.lua
--
-- Each check is a query returning one row with a boolean column "ok". Adapt
-- them to your model.
local errors = require "mxpc.error"

local CHECKS = {
  { name = "every order has a customer", sql = [[
    SELECT NOT EXISTS (
      SELECT 1 FROM "myfirstmodule$order" o
       WHERE NOT EXISTS (SELECT 1 FROM "myfirstmodule$order_customer" oc
                          WHERE oc."myfirstmodule$orderid" = o.id)) AS ok]] },
}

return {
  before_backup = function(ctx)
    for _, check in ipairs(CHECKS) do
      local rows = assert(ctx.db:query(check.sql))
      if not rows[1].ok then
        errors.raise("refused", ("backup refused: the check \"%s\" failed"):format(check.name),
          "fix the data, or run the backup without --hooks")
      end
      ctx.log.info("check passed", { check = check.name })
    end
  end,
}
