-- mxpc.schedule without a cluster: cron checks, staggered start times, the
-- Role's rules limited by name, and the CronJob's limits and pod security.
local t = require "t"
local schedule = require "mxpc.schedule"

t.test("cron schedules: five fields or a macro", function()
  t.eq(schedule.check_cron("0 2 * * *"), true)
  t.eq(schedule.check_cron("*/15 1-5 * * MON-FRI"), true)
  t.eq(schedule.check_cron("@daily"), true)
  local ok, why = schedule.check_cron("0 2 * *")
  t.eq(ok, nil)
  t.ok(why:find("has 4 fields", 1, true), why)
  t.eq(schedule.check_cron("0 2 * * * ; rm"), nil)
end)

t.test("--all staggers start times five minutes apart, wrapping at midnight", function()
  t.eq(schedule.stagger("0 2 * * *", 0), "0 2 * * *")
  t.eq(schedule.stagger("0 2 * * *", 1), "5 2 * * *")
  t.eq(schedule.stagger("55 23 * * 1", 2), "5 0 * * 1")
  t.eq(schedule.stagger("50 * * * *", 3), "5 * * * *")
  t.eq(schedule.stagger("@daily", 3), "@daily")
end)

t.test("CronJob names fit the controller's 52 characters", function()
  t.eq(schedule.cronjob_name("demo-app"), "mxpc-backup-demo-app")
  local long = schedule.cronjob_name(("a"):rep(60))
  t.eq(#long, 52)
end)

local objects = schedule.manifests { namespace = "mendix", envs = { "a", "b" }, cron = "0 2 * * *", image = "img:1",
  to = "s3://bk/nightly/", keep = { keep_daily = "7", keep_within = "2d" }, timezone = "Europe/Amsterdam",
  names = { apps = { "a", "b" }, storage_instances = { "a-database", "a-file", "b-database", "b-file" },
    secrets = { "sa", "sb" } } }

t.test("one ServiceAccount, Role and RoleBinding; a CronJob per environment", function()
  local kinds = {}
  for _, o in ipairs(objects) do kinds[#kinds + 1] = o.kind .. "/" .. o.metadata.name end
  t.eq(table.concat(kinds, " "), "ServiceAccount/mxpc-backup Role/mxpc-backup RoleBinding/mxpc-backup " ..
    "CronJob/mxpc-backup-a CronJob/mxpc-backup-b")
  t.eq(objects[5].spec.schedule, "5 2 * * *")
end)

t.test("the Role: a backup's verbs only, on the environments' objects by name (a secret store's too)", function()
  local rules = objects[2].rules
  local seen = {}
  for _, r in ipairs(rules) do
    for _, res in ipairs(r.resources) do
      seen[#seen + 1] = res .. ":" .. table.concat(r.verbs, ",") .. ":" .. table.concat(r.resourceNames or { "*" }, ",")
    end
  end
  table.sort(seen)
  t.eq(table.concat(seen, " "), "mendixapps:get:a,b secretproviderclasses:get:a,b secrets:get:sa,sb " ..
    "serviceaccounts/token:create:a,b serviceaccounts:get:a,b storageinstances:get:a-database,a-file,b-database,b-file")
end)

t.test("the CronJob: one run at a time, bounded, hardened, backing up then pruning", function()
  local cj = objects[4]
  t.eq(cj.apiVersion, "batch/v1")
  t.eq(cj.spec.concurrencyPolicy, "Forbid")
  t.eq(cj.spec.timeZone, "Europe/Amsterdam")
  t.ok(cj.spec.startingDeadlineSeconds > 0)
  t.ok(cj.spec.successfulJobsHistoryLimit > 0 and cj.spec.failedJobsHistoryLimit > 0)
  local job = cj.spec.jobTemplate.spec
  t.ok(job.backoffLimit >= 0 and job.backoffLimit <= 3)
  t.ok(job.activeDeadlineSeconds > 0 and job.ttlSecondsAfterFinished > 0)
  local pod = job.template.spec
  t.eq(pod.restartPolicy, "Never")
  t.eq(pod.serviceAccountName, "mxpc-backup")
  t.eq(pod.securityContext.runAsUser, 1001)
  t.eq(pod.securityContext.runAsNonRoot, true)
  local c = pod.containers[1]
  t.eq(c.securityContext.readOnlyRootFilesystem, true)
  t.eq(c.securityContext.allowPrivilegeEscalation, false)
  t.eq(table.concat(c.command, " ") .. " " .. table.concat(c.args, " "),
    "mxpc-data-migration backup -n mendix -e a -f s3://bk/nightly/ --log-format json --keep-daily 7 --keep-within 2d")
end)

t.test("--arch pins the jobs' pods to the nodes of the image's package, and names it", function()
  local runtime = require "mxpc.runtime"
  local arm = schedule.manifests { namespace = "mendix", envs = { "a" }, cron = "0 2 * * *", image = "img:1",
    to = "s3://bk/nightly/", keep = { keep_daily = "7" }, arch = "arm64" }
  local cj = arm[4]
  t.eq(cj.spec.jobTemplate.spec.template.spec.nodeSelector["kubernetes.io/arch"], "arm64")
  t.eq(cj.metadata.annotations["mxpc-data-migration/package"],
    ("mxpc-data-migration-%s-linux-arm64"):format(runtime.version))
  t.eq(objects[4].spec.jobTemplate.spec.template.spec.nodeSelector, nil, "no arch, no selector")
end)

t.test("azblob:// places: --azure-client-id annotates the ServiceAccount and labels the jobs' pods", function()
  local id = "5d9d1455-dfd6-4d76-8976-2eb959b82d37"
  local az = schedule.manifests { namespace = "mendix", envs = { "a" }, cron = "0 2 * * *", image = "img:1",
    to = "azblob://acct/backups/nightly/", keep = { keep_last = "3" }, azure_client_id = id,
    archive_endpoint = "https://acct.blob.core.windows.net" }
  t.same(az[1].metadata.annotations, { ["azure.workload.identity/client-id"] = id })
  local template = az[4].spec.jobTemplate.spec.template
  t.eq(template.metadata.labels["azure.workload.identity/use"], "true")
  t.eq(template.metadata.labels["mxpc-data-migration/environment"], "a")
  t.eq(az[4].metadata.labels["azure.workload.identity/use"], nil, "the pods only")
  t.eq(table.concat(template.spec.containers[1].args, " "), "backup -n mendix -e a -f azblob://acct/backups/nightly/ "
    .. "--log-format json --keep-last 3 --archive-endpoint https://acct.blob.core.windows.net")
  t.eq(objects[4].spec.jobTemplate.spec.template.metadata.labels["azure.workload.identity/use"], nil)
end)

t.test("applying again over the other identity: the ServiceAccount loses the annotation it no longer has", function()
  local manifest = require "mxpc.k8s_manifest"
  local errors = require "mxpc.error"
  local cjson = require "cjson"
  local patches = {}
  local client = {
    create = function() return nil, errors.new { code = "exists", message = "exists" } end,
    patch = function(_, resource, name, body) patches[#patches + 1] = { resource, name, cjson.encode(body) } return true end,
  }
  local azure = schedule.manifests { namespace = "mendix", envs = { "a" }, cron = "0 2 * * *", image = "img:1",
    to = "azblob://acct/bk/", keep = {}, names = { apps = { "a" } }, azure_client_id = "11111111-2222-3333-4444-555555555555" }
  t.eq(manifest.create_or_update(client, azure[1], {}), "configured")
  local body = cjson.decode(patches[1][3])
  t.eq(patches[1][1], "serviceaccounts")
  t.eq(body.metadata.annotations["azure.workload.identity/client-id"], "11111111-2222-3333-4444-555555555555")
  t.eq(body.metadata.annotations["eks.amazonaws.com/role-arn"], cjson.null, "a merge patch's null removes it")
  local plain = schedule.manifests { namespace = "mendix", envs = { "a" }, cron = "0 2 * * *", image = "img:1",
    to = "s3://bk/nightly/", keep = {}, names = { apps = { "a" } } }
  manifest.create_or_update(client, plain[1], {})
  body = cjson.decode(patches[2][3])
  t.eq(body.metadata.annotations["azure.workload.identity/client-id"], cjson.null)
  t.eq(body.metadata.annotations["eks.amazonaws.com/role-arn"], cjson.null)
  -- other kinds are patched as they are
  manifest.create_or_update(client, plain[2], { "rules" })
  t.eq(cjson.decode(patches[3][3]).metadata.annotations, nil)
end)

t.test("schedule --to azblob:// without --azure-client-id is refused: the jobs would have no credentials", function()
  local ok, err = pcall(schedule.command, { namespace = "mendix", environment = "a", cron = "0 2 * * *",
    to = "azblob://acct/backups/nightly" })
  t.eq(ok, false)
  t.eq(err.code, "usage")
  t.contains(err.message, "the jobs cannot reach azblob://acct/backups/nightly")
  t.contains(err.hint, "--azure-client-id")
end)

return t.run()
