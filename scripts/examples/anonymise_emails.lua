-- Hooks example: a restore that anonymises customer e-mail addresses, for a
-- test or acceptance environment restored from production data.
--
--   mxpc-data-migration restore -n NS -e ENV -f backup.tar.gz --hooks anonymise_emails.lua
--
-- restore_sql returns SQL that runs inside the restore's transaction, after
-- the data is loaded and before the commit: if it fails, nothing of the
-- restore is committed, so the real addresses never land in the database.
-- Change TABLE and COLUMN for your model (Mendix names tables
-- "module$entity" and columns after the attribute, in lower case).
local TABLE, COLUMN = "myfirstmodule$customer", "email"

return {
  restore_sql = function(ctx)
    ctx.log.info("anonymising e-mail addresses", { table = TABLE, column = COLUMN })
    -- the same address for the same row on every restore; empty stays empty
    return ([[
UPDATE "%s" SET "%s" = 'customer-' || id || '@example.invalid'
 WHERE "%s" IS NOT NULL AND "%s" <> '';]]):format(TABLE, COLUMN, COLUMN, COLUMN)
  end,
}
