-- mxpc.backup_store without a bucket: locations, the keys of a schedule's
-- archives and their times, and --max-age against an injected clock.
local t = require "t"
local store = require "mxpc.backup_store"
local retention = require "mxpc.retention"

t.test("locations: s3://BUCKET[/PREFIX], slashes at the ends ignored", function()
  t.same(assert(store.parse_location("s3://bk/nightly/")), { bucket = "bk", prefix = "nightly", spec = "s3://bk/nightly/" })
  t.eq(assert(store.parse_location("s3://bk")).prefix, "")
  t.eq(assert(store.parse_location("s3://bk/a/b/c")).prefix, "a/b/c")
  t.eq(store.parse_location("s3://bk/a//b"), nil)
  t.eq(store.parse_location("/local/dir"), nil)
end)

t.test("locations: azblob://ACCOUNT/CONTAINER[/PREFIX], their URLs and schedule places", function()
  t.same(assert(store.parse_location("azblob://acct/backups/nightly/")), { service = "azure", account = "acct",
    bucket = "backups", prefix = "nightly", spec = "azblob://acct/backups/nightly/" })
  local loc = assert(store.parse_location("azblob://acct/backups"))
  t.eq(loc.prefix, "")
  t.eq(store.url(loc, "ns/env/x.tar.gz"), "azblob://acct/backups/ns/env/x.tar.gz")
  t.eq(store.place(loc), "azblob://acct/backups/")
  t.eq(store.place(assert(store.parse_location("azblob://acct/backups/a/b"))), "azblob://acct/backups/a/b/")
  t.eq(store.place(assert(store.parse_location("s3://bk/a"))), "s3://bk/a/")
  t.eq(store.url(assert(store.parse_location("s3://bk")), "k"), "s3://bk/k")
  t.eq(store.parse_location("azblob://acct"), nil)
  t.eq(store.parse_location("azblob://acct/c/a//b"), nil)
  t.eq(store.is_schedule_place("azblob://acct/c/nightly/"), true)
  t.eq(store.is_schedule_place("azblob://acct/c/"), true)
  t.eq(store.is_schedule_place("azblob://acct/c/x.tar.gz"), false)
  t.eq(store.is_schedule_place("azblob://acct/"), false)
  t.eq(store.is_schedule_place("s3://bk/"), true)
  t.eq(store.is_schedule_place("s3://bk/k"), false)
end)

t.test("an archive's key, its index's key and its time", function()
  local key = store.archive_key("nightly", "mendix", "demo-app", 1796558403)
  t.eq(key, "nightly/mendix/demo-app/20261206T120003Z.tar.gz")
  t.eq(store.index_key(key), "nightly/mendix/demo-app/20261206T120003Z.json")
  t.eq(store.archive_key("", "ns", "env", 0), "ns/env/19700101T000000Z.tar.gz")
  t.eq(store.parse_stamp("20261206T120003Z"), 1796558403)
  t.eq(store.parse_stamp("20261306T120003Z"), nil)
  t.eq(store.parse_stamp("2026-12-06"), nil)
end)

t.test("--max-age: environments whose newest archive is older, at the given time", function()
  local now = store.parse_stamp("20261206T120000Z")
  local groups = {
    { name = "mendix/fresh", archives = { { time = now - 3600 } } },
    { name = "mendix/late", archives = { { time = now - 27 * 3600 }, { time = now - 50 * 3600 } } },
    { name = "mendix/edge", archives = { { time = now - 26 * 3600 } } },
  }
  local stale = store.stale(groups, assert(retention.parse_duration("26h")), now)
  t.eq(#stale, 1)
  t.eq(stale[1].name, "mendix/late")
  t.eq(stale[1].newest, now - 27 * 3600)
  -- two days later every one is late
  t.eq(#store.stale(groups, assert(retention.parse_duration("26h")), now + 2 * 86400), 3)
end)

t.test("the --keep-* options as a policy", function()
  t.eq(store.policy_of {}, nil)
  t.same(store.policy_of { keep_daily = "7", keep_yearly = "unlimited", keep_within = "1y" },
    { daily = 7, yearly = -1, within = "1y" })
  local ok, err = pcall(store.policy_of, { keep_last = "0" })
  t.eq(ok, false)
  t.ok(tostring(err.message or err):find("at least one", 1, true))
end)

return t.run()
