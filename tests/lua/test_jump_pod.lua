-- mxpc.jump_pod without a cluster: versions, the Role's rules, names, and the
-- manifests as JSON and YAML (kubectl itself reads them in e2e.jump-pod).
local t = require "t"
local cjson = require "cjson"
local jp = require "mxpc.jump_pod"
local errors = require "mxpc.error"

t.test("major version from server_version_num", function()
  t.eq(jp.major_version("150018"), "15")
  t.eq(jp.major_version(170002), "17")
  t.eq(jp.major_version("100023"), "10")
  t.eq(jp.major_version("90624"), "9.6")
  t.eq(jp.major_version("80400"), nil)
  t.eq(jp.major_version("x"), nil)
end)

local function verbs(rules)
  local out = {}
  for _, r in ipairs(rules) do
    for _, res in ipairs(r.resources) do
      for _, v in ipairs(r.verbs) do out[#out + 1] = res .. ":" .. v end
    end
  end
  table.sort(out)
  return table.concat(out, " ")
end

t.test("the Role allows exactly what the operations need", function()
  t.eq(verbs(jp.rules {}), "mendixapps:get secrets:get storageinstances:get")
  t.eq(verbs(jp.rules { restore = true }), "mendixapps:get pods:list secrets:get storageinstances:get")
  t.eq(verbs(jp.rules { stop_app = true }),
    "mendixapps:get mendixapps:patch pods:list secrets:get storageinstances:get")
end)

t.test("the Role names the environment's objects; listing pods cannot be limited by name", function()
  local names = { apps = { "demo-app" }, storage_instances = { "demo-app-database", "demo-app-file" },
    secrets = { "db-creds", "file-creds" } }
  local by = {}
  for _, r in ipairs(jp.rules({ stop_app = true }, names)) do
    by[r.resources[1] .. ":" .. r.verbs[1]] = r.resourceNames and table.concat(r.resourceNames, ",") or "*"
  end
  t.same(by, { ["secrets:get"] = "db-creds,file-creds", ["mendixapps:get"] = "demo-app",
    ["storageinstances:get"] = "demo-app-database,demo-app-file", ["pods:list"] = "*",
    ["mendixapps:patch"] = "demo-app" })
  -- Secrets that could not be learned: that rule alone is open
  names.secrets = nil
  for _, r in ipairs(jp.rules({}, names)) do
    t.eq(r.resourceNames == nil, r.resources[1] == "secrets", r.resources[1])
  end
end)

t.test("secret stores: the SecretProviderClass, the ServiceAccount and its token, for that one name", function()
  local rules = jp.rules { environment = "demo-sm" }
  t.eq(verbs(rules), "mendixapps:get secretproviderclasses:get secrets:get serviceaccounts/token:create "
    .. "serviceaccounts:get storageinstances:get")
  for _, r in ipairs(rules) do
    if r.resources[1]:find("^se[rc][vr]") and r.resources[1] ~= "secrets" then
      t.same(r.resourceNames, { "demo-sm" }, r.resources[1])
    end
  end
end)

t.test("secret stores: their rules only for the environments that have a SecretProviderClass, once known", function()
  local none = jp.rules({ environment = "demo-app" }, { apps = { "demo-app" }, stores = {} })
  t.eq(verbs(none), "mendixapps:get secrets:get storageinstances:get")
  local some = jp.rules({ environments = { "a", "b" } }, { apps = { "a", "b" }, stores = { "b" } })
  for _, r in ipairs(some) do
    if r.resources[1]:find("^se[rc][vr]") and r.resources[1] ~= "secrets" then
      t.same(r.resourceNames, { "b" }, r.resources[1])
    end
  end
  t.eq(verbs(jp.rules({ environment = "demo-sm" }, { apps = { "demo-sm" } })), verbs(jp.rules { environment = "demo-sm" }),
    "not known: kept")
  -- learned from the cluster: a SecretProviderClass found, not found, or not readable
  local function client(answers)
    return { get = function(_, resource, name)
      if resource ~= "secretproviderclasses" then return { spec = { secretName = name .. "-creds" } } end
      local a = answers[name]
      if a == "yes" then return { metadata = { name = name } } end
      return nil, errors.new { code = a == "no" and "not_found" or "forbidden", message = a }
    end }
  end
  t.same(jp.resource_names(client { x = "yes", y = "no" }, "ns", { "x", "y" }).stores, { "x" })
  t.eq(jp.resource_names(client { x = "yes", y = "forbidden" }, "ns", { "x", "y" }).stores, nil)
  t.eq(jp.resource_names(nil, "ns", { "x" }, "no cluster").stores, nil)
end)

t.test("default names are valid object names", function()
  t.eq(jp.default_name("demo-app"), "mxpc-jump-demo-app")
  local long = jp.default_name(("a"):rep(52) .. "-bcd")
  t.eq(#long, 62, long) -- cut to 63, without a trailing '-'
  t.ok(long:match("^[a-z0-9][-a-z0-9]*[a-z0-9]$"), long)
end)

local objects = jp.manifests { namespace = "mendix", environment = "demo-app", name = "jp", image = "img:15",
  rules = jp.rules { stop_app = true } }

t.test("four objects in creation order, the pod running as a non-root user", function()
  local kinds = {}
  for _, o in ipairs(objects) do kinds[#kinds + 1] = o.kind end
  t.eq(table.concat(kinds, " "), "ServiceAccount Role RoleBinding Pod")
  local pod = objects[4]
  t.eq(pod.spec.serviceAccountName, "jp")
  t.eq(pod.spec.securityContext.runAsUser, 1001)
  t.eq(pod.spec.containers[1].image, "img:15")
  t.eq(objects[3].roleRef.name, "jp")
  t.eq(objects[3].subjects[1].namespace, "mendix")
  t.eq(pod.metadata.labels["privatecloud.mendix.com/app"], nil, "not taken for one of the app's pods")
end)

t.test("-o json is a v1 List that decodes to the same objects, slashes unescaped", function()
  local text = jp.render(objects, "json")
  local list = cjson.decode(text)
  t.eq(list.kind, "List")
  t.eq(#list.items, 4)
  t.eq(list.items[4].spec.containers[1].command[2], "infinity")
  t.eq(list.items[2].rules[1].apiGroups[1], "")
  t.contains(text, '"apiVersion": "rbac.authorization.k8s.io/v1"')
  t.contains(text, '"emptyDir": {}')
  t.eq(jp.render(objects, "json"), text, "the same output every time")
end)

t.test("YAML: documents, and strings YAML would read as something else are quoted", function()
  local text = jp.render(objects, "yaml")
  local docs = select(2, text:gsub("\n%-%-%-\n", ""))
  t.eq(docs, 3, "three separators")
  t.contains(text, "\n- apiGroups:\n  - \"\"\n")
  t.contains(text, "  emptyDir: {}\n")
  t.contains(text, "    runAsUser: 1001\n")
  local odd = jp.render({ { kind = "X", metadata = { labels = { a = "true", b = "15", c = "", d = "x: y", e = "-1",
    f = "ok-value" } } } }, "yaml")
  t.contains(odd, 'a: "true"')
  t.contains(odd, 'b: "15"')
  t.contains(odd, 'c: ""')
  t.contains(odd, 'd: "x: y"')
  t.contains(odd, 'e: "-1"')
  t.contains(odd, "f: ok-value")
end)

t.test("--role-arn (IRSA): the ServiceAccount is annotated; only IAM role ARNs are taken", function()
  local with = jp.manifests { namespace = "mendix", environment = "demo-app", name = "jp", image = "img:15",
    rules = jp.rules {}, role_arn = "arn:aws:iam::123456789012:role/mxpc/backup" }
  t.eq(with[1].metadata.annotations["eks.amazonaws.com/role-arn"], "arn:aws:iam::123456789012:role/mxpc/backup")
  t.eq(with[4].metadata.annotations, nil, "the pod itself is not annotated")
  t.eq(objects[1].metadata.annotations, nil, "no annotation without --role-arn")
  t.contains(jp.render(with, "yaml"), "  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/mxpc/backup\n")
  for _, good in ipairs { "arn:aws:iam::123456789012:role/r", "arn:aws-cn:iam::123456789012:role/a.b@c_d+e=f,g-h",
    "arn:aws-us-gov:iam::123456789012:role/path/name" } do
    t.ok(jp.valid_role_arn(good), good)
  end
  for _, bad in ipairs { "", "role/r", "arn:aws:iam::12345:role/r", "arn:aws:iam::123456789012:user/r",
    "arn:aws:iam::123456789012:role/", "arn:aws:iam::123456789012:role/a//b", "arn:aws:s3:::bucket",
    "arn:aws:iam::123456789012:role/r x" } do
    t.ok(not jp.valid_role_arn(bad), bad)
  end
  t.eq(jp.pod_role_arn { spec = { containers = { { env = { { name = "X", value = "1" },
    { name = "AWS_ROLE_ARN", value = "arn:aws:iam::123456789012:role/r" } } } } } }, "arn:aws:iam::123456789012:role/r")
  t.eq(jp.pod_role_arn { spec = { containers = { {} } } }, nil)
end)


t.test("--azure-client-id (Workload Identity): the ServiceAccount annotated, the pod labelled for the webhook", function()
  local id = "5d9d1455-dfd6-4d76-8976-2eb959b82d37"
  local with = jp.manifests { namespace = "mendix", environment = "demo-azure-wi", name = "jp", image = "img:15",
    rules = jp.rules {}, azure_client_id = id }
  t.eq(with[1].kind, "ServiceAccount")
  t.same(with[1].metadata.annotations, { ["azure.workload.identity/client-id"] = id })
  t.eq(with[4].metadata.labels["azure.workload.identity/use"], "true")
  t.eq(with[4].metadata.labels["app.kubernetes.io/component"], "jump-pod")
  t.eq(with[1].metadata.labels["azure.workload.identity/use"], nil, "only the pod carries the label")
  t.eq(objects[4].metadata.labels["azure.workload.identity/use"], nil, "no label without it")
  local yaml = jp.render(with, "yaml")
  t.contains(yaml, "  annotations:\n    azure.workload.identity/client-id: " .. id .. "\n")
  t.contains(yaml, '    azure.workload.identity/use: "true"\n')
  local m = require "mxpc.k8s_manifest"
  t.ok(m.valid_client_id(id))
  t.ok(m.valid_client_id(id:upper()))
  for _, bad in ipairs { "", "x", id .. "0", id:sub(2), id:gsub("-", "") } do t.ok(not m.valid_client_id(bad), bad) end
end)

t.test("--service-account: the pod runs under an existing ServiceAccount, which is not made; the Role is bound to it",
  function()
  local with = jp.manifests { namespace = "mendix", environment = "demo-azure-wi", name = "jp", image = "img:15",
    rules = jp.rules {}, service_account = "demo-azure-wi", workload_identity = true }
  local kinds = {}
  for _, o in ipairs(with) do kinds[#kinds + 1] = o.kind end
  t.eq(table.concat(kinds, " "), "Role RoleBinding Pod")
  t.same(with[2].subjects, { { kind = "ServiceAccount", name = "demo-azure-wi", namespace = "mendix" } })
  t.eq(with[3].spec.serviceAccountName, "demo-azure-wi")
  t.eq(with[3].metadata.labels["azure.workload.identity/use"], "true")
end)

t.test("the default image: the official postgres image, fully qualified", function()
  t.eq(jp.IMAGE_REPOSITORY, "docker.io/library/postgres")
end)

local function pending(status)
  return { metadata = { name = "jp", namespace = "mendix" }, status = status }
end

t.test("a pod that will not start: the reason the cluster gives, and what to do", function()
  t.eq(jp.pod_problem(pending { phase = "Pending" }), nil, "merely not started yet")
  t.eq(jp.pod_problem(pending { phase = "Pending", containerStatuses = { { state = { waiting = {
    reason = "ContainerCreating" } } } } }), nil, "still being created")
  local e = jp.pod_problem(pending { phase = "Pending", containerStatuses = { { image = "x.invalid/pg:15",
    state = { waiting = { reason = "ImagePullBackOff", message = "Back-off pulling image" } } } } })
  t.eq(e.code, "pod")
  t.contains(e.message, "pod jp will not start: ImagePullBackOff: Back-off pulling image")
  t.contains(e.hint, "cannot pull x.invalid/pg:15")
  t.contains(e.hint, "--image")
  t.contains(e.hint, "--delete")
  e = jp.pod_problem(pending { phase = "Pending", containerStatuses = { { state = { waiting = {
    reason = "ErrImagePull", message = "not found" } } } } })
  t.contains(e.message, "ErrImagePull: not found")
  e = jp.pod_problem(pending { phase = "Pending", containerStatuses = { { state = { waiting = {
    reason = "CreateContainerConfigError", message = 'secret "s" not found' } } } } })
  t.contains(e.message, 'CreateContainerConfigError: secret "s" not found')
  t.contains(e.hint, "kubectl -n mendix describe pod jp")
  e = jp.pod_problem(pending { phase = "Pending", conditions = { { type = "PodScheduled", status = "False",
    reason = "Unschedulable", message = "0/3 nodes are available: 3 Insufficient memory." } } })
  t.contains(e.message, "pod jp cannot be scheduled: 0/3 nodes are available: 3 Insufficient memory.")
  t.contains(e.hint, "no node can take it")
end)

t.test("next steps name the real package, and copy this very package when run from one", function()
  local name = jp.package_name()
  t.ok(name:match("^mxpc%-data%-migration%-%d+%.%d+%.%d+%-linux%-%w+$"), name)
  local text = jp.next_steps { namespace = "mendix", environment = "demo-app", name = "mxpc-jump-demo-app",
    package_dir = "/opt/my tools/" .. name }
  t.contains(text, "tar -C '/opt/my tools' -czf - " .. name .. " | kubectl -n mendix exec -i mxpc-jump-demo-app -- tar -xzf - -C /tmp\n")
  t.contains(text, "exec mxpc-jump-demo-app -- /tmp/" .. name .. "/mxpc-data-migration backup -n mendix -e demo-app")
  t.eq(text:find("VERSION", 1, true), nil)
  t.eq(text:find("ARCH", 1, true), nil)
  text = jp.next_steps { namespace = "mendix", environment = "demo-app", name = "jp", custom_name = true }
  t.contains(text, "kubectl -n mendix exec -i jp -- tar -xzf - -C /tmp < " .. name .. ".tar.gz")
  t.contains(text, "--delete --name jp")
  t.eq(jp.package_dir(), nil, "a build directory is no package")
end)

t.test("--arch pins the pod to the nodes its package runs on, and names that package", function()
  local runtime = require "mxpc.runtime"
  local arm = jp.manifests { namespace = "mendix", environment = "demo-app", name = "jp", image = "img:15",
    rules = jp.rules {}, arch = "arm64" }
  local pod = arm[4]
  t.eq(pod.spec.nodeSelector["kubernetes.io/arch"], "arm64")
  t.eq(pod.metadata.annotations["mxpc-data-migration/package"],
    ("mxpc-data-migration-%s-linux-arm64"):format(runtime.version))
  t.contains(jp.render(arm, "yaml"), "\n    kubernetes.io/arch: arm64\n")
  t.eq(objects[4].spec.nodeSelector, nil, "no arch, no selector")
  t.eq(objects[4].metadata.annotations, nil)
  -- the default is this program's architecture (its package fits those nodes)
  local k8s_manifest = require "mxpc.k8s_manifest"
  t.eq(k8s_manifest.default_arch(), (runtime.arch == "amd64" or runtime.arch == "arm64") and runtime.arch or nil)
  -- a node of another architecture: the package of that one, never this very directory
  local other = runtime.arch == "arm64" and "amd64" or "arm64"
  local name = jp.package_name(other)
  t.eq(name, ("mxpc-data-migration-%s-linux-%s"):format(runtime.version, other))
  local text = jp.next_steps { namespace = "mendix", environment = "demo-app", name = "jp", arch = other,
    package_dir = "/opt/" .. jp.package_name() }
  t.contains(text, ("runs in namespace mendix on an %s node (the package for it: %s.tar.gz)"):format(other, name))
  t.contains(text, "kubectl -n mendix exec -i jp -- tar -xzf - -C /tmp < " .. name .. ".tar.gz")
  t.contains(text, "exec jp -- /tmp/" .. name .. "/mxpc-data-migration backup")
  t.eq(text:find("tar -C /opt", 1, true), nil)
end)

return t.run()
