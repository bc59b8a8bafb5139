-- Hooks example: a backup of only the attachments smaller than 10 MiB (the
-- database is always backed up whole).
--
--   mxpc-data-migration backup -n NS -e ENV -f small.tar.gz --hooks small_attachments.lua
--
-- select_file is asked about each file in use; `file` has uuid, name, size
-- (bytes), changed ("YYYY-MM-DD HH:MM:SS", UTC), entity (the FileDocument
-- specialization) and has_contents. Simple cases need no code:
-- --files-of MyFirstModule.Attachment --files-smaller-than 10MiB does the same.
local ENTITY, LIMIT = "MyFirstModule.Attachment", 10 * 1024 * 1024

return {
  select_file = function(file)
    return file.entity == ENTITY and file.size < LIMIT
  end,
}
