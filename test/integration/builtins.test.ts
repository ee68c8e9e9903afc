import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { git } from "../../src/gitops/git.ts";
import { repoBuiltins } from "../../src/skills/builtins/index.ts";
import { applyPatch } from "../../src/skills/patch.ts";
import { loadSkills } from "../../src/skills/load.ts";
import { renderParams } from "../../src/skills/planner.ts";
import { fixture } from "../helpers/alerts.ts";

// Each builtin on a GitOps repository made here with the real git CLI: plain manifests with
// several documents per file, a kustomize base with two overlays, Helm values (a release folder
// and a chart folder), ResourceQuotas, comments everywhere. Assertions read the files back.

const NOW = Date.parse("2025-03-04T05:06:07.000Z");
const ctx = { now: () => NOW };
const { rollback, scale, restart, quota } = repoBuiltins;

const CHECKOUT = `# Shop namespace: checkout service
apiVersion: v1
kind: ConfigMap
metadata:
  name: checkout-config   # app settings
  namespace: shop
data:
  LOG_LEVEL: info
---
# The checkout Deployment (owned by team-payments)
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  namespace: shop
  labels: {app: checkout}
spec:
  replicas: 3   # keep at least 3 for zone spread
  selector:
    matchLabels:
      app: checkout
  template:
    metadata:
      labels:
        app: checkout
    spec:
      containers:
      - name: checkout    # main container
        image: registry.example.com/shop/checkout:v1  # bumped by CI
        resources:
          limits:
            cpu: 500m     # throttled at peak
            memory: 512Mi
      - name: envoy
        image: envoyproxy/envoy:v1.30.1
---
apiVersion: v1
kind: Service
metadata:
  name: checkout
  namespace: shop
spec:
  ports:
  - port: 80   # http
`;

const FILES: Record<string, string> = {
  "apps/shop/checkout.yaml": CHECKOUT,
  "apps/shop/postgres.yaml": `# primary database
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: postgres
  namespace: shop
spec:
  replicas: 1 # single primary
  template:
    spec:
      containers:
        - name: postgres
          image: postgres:16.2
`,
  "apps/shop/quota.yaml": `# Quotas for the shop namespace
apiVersion: v1
kind: ResourceQuota
metadata:
  name: compute
  namespace: shop
spec:
  hard:
    requests.cpu: "4"        # 4 cores
    limits.memory: 8Gi       # per team budget
    pods: "10"
    requests.storage: 100Gi
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: objects
  namespace: shop
spec:
  hard:
    count/configmaps: 50 # plenty
    services.loadbalancers: "2"
`,
  "apps/staging/checkout.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  namespace: staging
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: checkout
          image: registry.example.com/shop/checkout:v9
`,
  "apps/monitoring/node-exporter.yaml": `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-exporter
  namespace: monitoring
spec:
  template:
    spec:
      containers:
        - name: node-exporter
          image: quay.io/prometheus/node-exporter:v1.8.0
`,
  "apps/web/frontend.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: frontend
  namespace: web
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: frontend
          image: registry.example.com/frontend:3.1.0
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: frontend
  namespace: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: frontend}
  minReplicas: 2
  maxReplicas: 10
`,
  "kustomize/base/kustomization.yaml": `# base for payments
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
`,
  "kustomize/base/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: payments
spec:
  replicas: 2 # base default
  template:
    spec:
      containers:
        - name: payments
          image: registry.example.com/payments:1.0.0
`,
  "kustomize/overlays/prod/kustomization.yaml": `# production overlay
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: payments-prod
resources:
  - ../../base
patches:
  - path: deployment-patch.yaml
images:
  - name: registry.example.com/payments
    newTag: "1.4.0" # promoted by the release bot
`,
  "kustomize/overlays/prod/deployment-patch.yaml": `# prod sizing
apiVersion: apps/v1
kind: Deployment
metadata:
  name: payments
spec:
  replicas: 4 # prod traffic
`,
  "kustomize/overlays/staging/kustomization.yaml": `namespace: payments-staging
resources:
- ../../base
replicas:
- name: payments
  count: 1  # staging is small
images:
- name: registry.example.com/payments
  newTag: 1.5.0-rc1
`,
  "helm/inventory/values.yaml": `# Defaults for the inventory release
image:
  repository: registry.example.com/inventory
  tag: "1.9"   # set by CI
replicaCount: 2
podAnnotations: {}
`,
  "helm/inventory/values-shop.yaml": `# shop namespace overrides
replicaCount: 3 # black friday
`,
  "charts/catalog/Chart.yaml": "apiVersion: v2\nname: catalog\nversion: 0.1.0\n",
  "charts/catalog/values.yaml": `image:
  repository: registry.example.com/catalog
  tag: v4 # chart default
autoscaling:
  enabled: true
`,
  "charts/catalog/templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "catalog.fullname" . }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
`,
};

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function write(dir: string, files: Record<string, string>) {
  for (const [p, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), text);
  }
}

async function commit(dir: string, message: string, files: Record<string, string> = {}) {
  await write(dir, files);
  await git(dir, ["add", "-A"]);
  await git(dir, ["commit", "-q", "--no-verify", "-m", message]);
  return (await git(dir, ["rev-parse", "HEAD"])).trim();
}

async function makeRepo(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "pitcrew-gitops-"));
  dirs.push(dir);
  await git(dir, ["init", "-q", "-b", "main"]);
  const config: Array<[string, string]> = [
    ["user.name", "Test"],
    ["user.email", "test@example.com"],
    ["commit.gpgsign", "false"],
  ];
  for (const [k, v] of config) await git(dir, ["config", k, v]);
  await commit(dir, "initial", FILES);
  return dir;
}

const read = (dir: string, p: string) => readFile(join(dir, p), "utf8");
const docs = (text: string) => parseAllDocuments(text).map((d) => d.toJS());
const slices = (text: string) => text.split(/^---$/m);
const replaceIn = async (dir: string, p: string, from: string, to: string) => {
  const text = await read(dir, p);
  if (!text.includes(from)) throw new Error(`${p} has no ${from}`);
  return { [p]: text.replace(from, to) };
};

/** Every fixture file but `except` still has its original bytes. */
async function expectUntouched(dir: string, except: string[]) {
  for (const [p, text] of Object.entries(FILES)) if (!except.includes(p)) expect(await read(dir, p), p).toBe(text);
}

describe("rollback", () => {
  it("puts a plain manifest's image back to the tag before the current one in git history", async () => {
    const dir = await makeRepo();
    const v1 = (await git(dir, ["rev-parse", "HEAD"])).trim();
    await commit(dir, "checkout v2", await replaceIn(dir, "apps/shop/checkout.yaml", "checkout:v1", "checkout:v2"));

    const change = await rollback(dir, { namespace: "shop", pod: "checkout-7d9f8b6c5-x2x9k" }, ctx);

    expect(change.files).toEqual(["apps/shop/checkout.yaml"]);
    expect(change.details).toMatchObject({
      workload: "checkout",
      container: "checkout",
      from: "v2",
      to: "v1",
      commit: v1,
      source: "manifest",
    });
    const text = await read(dir, "apps/shop/checkout.yaml");
    expect(text).toBe(CHECKOUT);
    const deployment = docs(text)[1];
    expect(deployment.spec.template.spec.containers.map((c: { image: string }) => c.image)).toEqual([
      "registry.example.com/shop/checkout:v1",
      "envoyproxy/envoy:v1.30.1",
    ]);
    await expectUntouched(dir, []);
  });

  it("with three versions goes back one, skipping commits that did not change the tag", async () => {
    const dir = await makeRepo();
    const f = "apps/shop/checkout.yaml";
    await commit(dir, "v2", await replaceIn(dir, f, "checkout:v1", "checkout:v2"));
    const v2 = (await git(dir, ["rev-parse", "HEAD"])).trim();
    await commit(dir, "v3", await replaceIn(dir, f, "checkout:v2", "checkout:v3"));
    await commit(dir, "more replicas", await replaceIn(dir, f, "replicas: 3 ", "replicas: 4 "));

    const change = await rollback(dir, { namespace: "shop", deployment: "checkout", container: "checkout" }, ctx);

    expect(change.details).toMatchObject({ from: "v3", to: "v2", commit: v2 });
    const text = await read(dir, f);
    expect(text).toBe(CHECKOUT.replace("checkout:v1", "checkout:v2").replace("replicas: 3 ", "replicas: 4 "));
    expect(text).toContain("image: registry.example.com/shop/checkout:v2  # bumped by CI");
  });

  it("never proposes a version a Pitcrew-Rolled-Back-From trailer names, even where the history alone looks like a forward move", async () => {
    const dir = await makeRepo();
    const f = "apps/shop/checkout.yaml";
    await commit(dir, "v3", await replaceIn(dir, f, "checkout:v1", "checkout:v3"));
    // A rollback to a version this file never had (v2): only its trailer says v3 was left.
    await commit(
      dir,
      "pitcrew: crashloop-after-deploy for inc_a\n\nPitcrew-Incident: inc_a\nPitcrew-Rolled-Back-From: v3",
      await replaceIn(dir, f, "checkout:v3", "checkout:v2"),
    );
    await commit(dir, "v3 again", await replaceIn(dir, f, "checkout:v2", "checkout:v3"));
    await commit(dir, "v4", await replaceIn(dir, f, "checkout:v3", "checkout:v4"));

    const change = await rollback(dir, { namespace: "shop", deployment: "checkout", container: "checkout" }, ctx);

    expect(change.details).toMatchObject({
      from: "v4",
      to: "v2",
      rolledBackFrom: "v4",
      skipped: [{ version: "v3", how: "rollback" }],
    });
    expect(await read(dir, f)).toContain("checkout:v2");
  });

  it("still proposes an older version after the newer one was reverted and deployed again", async () => {
    const dir = await makeRepo();
    const f = "apps/shop/checkout.yaml";
    await commit(dir, "v2", await replaceIn(dir, f, "checkout:v1", "checkout:v2"));
    await commit(dir, "Revert v2", await replaceIn(dir, f, "checkout:v2", "checkout:v1"));
    await commit(dir, "v2, fixed config", await replaceIn(dir, f, "checkout:v1", "checkout:v2"));

    const change = await rollback(dir, { namespace: "shop", deployment: "checkout", container: "checkout" }, ctx);

    expect(change.details).toMatchObject({ from: "v2", to: "v1" });
  });

  it("fails with gitops.no_safe_version when every earlier version was reverted, saying which and by what", async () => {
    const dir = await makeRepo();
    const f = "apps/shop/checkout.yaml";
    await commit(dir, "v2", await replaceIn(dir, f, "checkout:v1", "checkout:v2"));
    const revert = await commit(dir, "Revert v2", await replaceIn(dir, f, "checkout:v2", "checkout:v1"));

    await expect(
      rollback(dir, { namespace: "shop", deployment: "checkout", container: "checkout" }, ctx),
    ).rejects.toMatchObject({
      code: "gitops.no_safe_version",
      retryable: false,
      message: expect.stringContaining(`v2 (reverted by ${revert.slice(0, 7)} "Revert v2")`),
    });
    await expectUntouched(dir, [f]);
  });

  it("edits the overlay's kustomize images entry, from that file's history, and leaves the base and other overlay alone", async () => {
    const dir = await makeRepo();
    const k = "kustomize/overlays/prod/kustomization.yaml";
    await commit(dir, "payments 1.5.0", await replaceIn(dir, k, 'newTag: "1.4.0"', 'newTag: "1.5.0"'));

    const change = await rollback(dir, { namespace: "payments-prod", pod: "payments-5f7b9c8d4-abcde" }, ctx);

    expect(change.files).toEqual([k]);
    expect(change.details).toMatchObject({ source: "kustomize", from: "1.5.0", to: "1.4.0", file: k });
    const text = await read(dir, k);
    expect(parse(text).images).toEqual([{ name: "registry.example.com/payments", newTag: "1.4.0" }]);
    expect(text).toContain('newTag: "1.4.0" # promoted by the release bot');
    expect(text).toBe(FILES[k]);
    await expectUntouched(dir, []);
  });

  it("rolls back Helm image.tag and keeps a numeric-looking tag a string", async () => {
    const dir = await makeRepo();
    const v = "helm/inventory/values.yaml";
    await commit(dir, "inventory 1.10", await replaceIn(dir, v, 'tag: "1.9"', "tag: 1.10"));

    const change = await rollback(dir, { namespace: "shop", deployment: "inventory" }, ctx);

    expect(change.details).toMatchObject({ source: "helm", from: "1.10", to: "1.9", file: v });
    const text = await read(dir, v);
    expect(parse(text).image.tag).toBe("1.9");
    // The comment stays in the column it had in the current version.
    expect(text).toBe(FILES[v]!.replace('tag: "1.9"   #', 'tag: "1.9"  #'));
    expect(text).toContain("# Defaults for the inventory release");
    await expectUntouched(dir, [v]);
  });

  it("finds a chart folder's values by chart name whatever the namespace", async () => {
    const dir = await makeRepo();
    await commit(dir, "catalog v5", await replaceIn(dir, "charts/catalog/values.yaml", "tag: v4", "tag: v5"));
    const change = await rollback(dir, { namespace: "web", deployment: "catalog" }, ctx);
    expect(change.details).toMatchObject({ from: "v5", to: "v4" });
    expect(await read(dir, "charts/catalog/values.yaml")).toBe(FILES["charts/catalog/values.yaml"]);
  });

  it("follows the manifest through a rename to find the previous tag", async () => {
    const dir = await makeRepo();
    await git(dir, ["mv", "apps/shop/postgres.yaml", "apps/shop/database.yaml"]);
    await commit(dir, "rename", await replaceIn(dir, "apps/shop/database.yaml", "postgres:16.2", "postgres:16.3"));
    const change = await rollback(dir, { namespace: "shop", pod: "postgres-0" }, ctx);
    expect(change.details).toMatchObject({ file: "apps/shop/database.yaml", from: "16.3", to: "16.2" });
    expect(await read(dir, "apps/shop/database.yaml")).toBe(FILES["apps/shop/postgres.yaml"]);
  });

  it("says so when git history has no other image", async () => {
    const dir = await makeRepo();
    await expect(rollback(dir, { namespace: "shop", deployment: "checkout" }, ctx)).rejects.toMatchObject({
      code: "gitops.no_previous_version",
      message: expect.stringContaining("none of the 1 commits of apps/shop/checkout.yaml has an image other than v1"),
    });
    await write(dir, { "apps/new/api.yaml": FILES["apps/staging/checkout.yaml"]!.replace("staging", "new") });
    await expect(rollback(dir, { namespace: "new", deployment: "checkout" }, ctx)).rejects.toMatchObject({
      code: "gitops.no_previous_version",
      message: "apps/new/api.yaml has no git history: no previous image to roll back to",
    });
    await expectUntouched(dir, []);
  });

  it("reports a workload that is not in the repository, or not in that namespace", async () => {
    const dir = await makeRepo();
    await expect(rollback(dir, { namespace: "shop", deployment: "billing" }, ctx)).rejects.toMatchObject({
      kind: "not_found",
      code: "gitops.workload_not_found",
    });
    await expect(rollback(dir, { namespace: "prod", deployment: "checkout" }, ctx)).rejects.toMatchObject({
      code: "gitops.workload_not_found",
    });
    await expect(rollback(dir, { namespace: "shop", pod: "checkout" }, ctx)).rejects.toMatchObject({
      code: "gitops.workload_not_found",
    });
  });

  it("rejects bad parameters with a message that names them", async () => {
    const dir = await makeRepo();
    await expect(
      rollback(dir, { namespace: "shop", deployment: "checkout", pod: "checkout-0" }, ctx),
    ).rejects.toMatchObject({ kind: "invalid", message: expect.stringContaining("exactly one of deployment or pod") });
    await expect(rollback(dir, { deployment: "checkout" }, ctx)).rejects.toMatchObject({
      kind: "invalid",
      message: expect.stringContaining("namespace"),
    });
    await expect(rollback(dir, { namespace: "../etc", deployment: "checkout" }, ctx)).rejects.toMatchObject({
      kind: "invalid",
    });
    await expect(rollback(dir, { namespace: "shop", deployment: "checkout", tag: "v0" }, ctx)).rejects.toMatchObject({
      kind: "invalid",
      message: expect.stringContaining("tag"),
    });
  });
});

describe("scale", () => {
  it("multiplies a manifest's replicas, rounding up, and keeps the line's comment", async () => {
    const dir = await makeRepo();
    const change = await scale(dir, { namespace: "shop", deployment: "checkout", factor: 1.5, max: 20 }, ctx);
    expect(change.details).toMatchObject({ from: 3, to: 5, capped: false, file: "apps/shop/checkout.yaml" });
    const text = await read(dir, "apps/shop/checkout.yaml");
    expect(text).toBe(CHECKOUT.replace("replicas: 3 ", "replicas: 5 "));
    expect(docs(text)[1].spec.replicas).toBe(5);
  });

  it("caps at max, then has nothing left to do", async () => {
    const dir = await makeRepo();
    const change = await scale(dir, { namespace: "shop", pod: "postgres-0", add: 10, max: 3 }, ctx);
    expect(change.details).toMatchObject({ kind: "StatefulSet", from: 1, to: 3, capped: true });
    expect(parse(await read(dir, "apps/shop/postgres.yaml")).spec.replicas).toBe(3);
    expect(await read(dir, "apps/shop/postgres.yaml")).toContain("replicas: 3 # single primary");
    await expect(scale(dir, { namespace: "shop", pod: "postgres-0", add: 1, max: 3 }, ctx)).rejects.toMatchObject({
      code: "gitops.no_change",
    });
  });

  it("edits the overlay patch that sets replicas, not the shared base", async () => {
    const dir = await makeRepo();
    const change = await scale(dir, { namespace: "payments-prod", deployment: "payments", factor: 2, max: 20 }, ctx);
    expect(change.files).toEqual(["kustomize/overlays/prod/deployment-patch.yaml"]);
    expect(await read(dir, "kustomize/overlays/prod/deployment-patch.yaml")).toBe(
      FILES["kustomize/overlays/prod/deployment-patch.yaml"]!.replace("replicas: 4", "replicas: 8"),
    );
    await expectUntouched(dir, ["kustomize/overlays/prod/deployment-patch.yaml"]);
  });

  it("edits a kustomize replicas entry in the overlay", async () => {
    const dir = await makeRepo();
    const k = "kustomize/overlays/staging/kustomization.yaml";
    await scale(dir, { namespace: "payments-staging", deployment: "payments", add: 1, max: 5 }, ctx);
    expect(parse(await read(dir, k)).replicas).toEqual([{ name: "payments", count: 2 }]);
    expect(await read(dir, k)).toContain("count: 2  # staging is small");
    await expectUntouched(dir, [k]);
  });

  it("uses replicaCount of the namespace's Helm values file", async () => {
    const dir = await makeRepo();
    const change = await scale(dir, { namespace: "shop", deployment: "inventory", add: 2, max: 10 }, ctx);
    expect(change.details).toMatchObject({ source: "helm", from: 3, to: 5, file: "helm/inventory/values-shop.yaml" });
    expect(await read(dir, "helm/inventory/values-shop.yaml")).toBe(
      "# shop namespace overrides\nreplicaCount: 5 # black friday\n",
    );
    await expectUntouched(dir, ["helm/inventory/values-shop.yaml"]);
  });

  it("refuses DaemonSets and autoscaled workloads", async () => {
    const dir = await makeRepo();
    await expect(
      scale(dir, { namespace: "monitoring", deployment: "node-exporter", factor: 2, max: 5 }, ctx),
    ).rejects.toMatchObject({ code: "gitops.not_scalable" });
    await expect(
      scale(dir, { namespace: "web", deployment: "frontend", factor: 2, max: 5 }, ctx),
    ).rejects.toMatchObject({ code: "gitops.autoscaled" });
    await expect(scale(dir, { namespace: "web", deployment: "catalog", factor: 2, max: 5 }, ctx)).rejects.toMatchObject(
      { code: "gitops.autoscaled" },
    );
    await expect(
      scale(dir, { namespace: "shop", deployment: "checkout", factor: 2, add: 1, max: 5 }, ctx),
    ).rejects.toMatchObject({ kind: "invalid", message: expect.stringContaining("exactly one of factor or add") });
    await expectUntouched(dir, []);
  });
});

describe("restart", () => {
  it("sets the pod-template annotation, keeping comments and the other documents byte for byte", async () => {
    const dir = await makeRepo();
    const change = await restart(dir, { namespace: "shop", pod: "checkout-7d9f8b6c5-x2x9k" }, ctx);
    expect(change.details).toMatchObject({ restartedAt: "2025-03-04T05:06:07.000Z", file: "apps/shop/checkout.yaml" });

    const text = await read(dir, "apps/shop/checkout.yaml");
    // Two lines added, every other byte as it was.
    expect(text).toBe(
      CHECKOUT.replace(
        "        app: checkout\n    spec:",
        '        app: checkout\n      annotations:\n        pitcrew.dev/restartedAt: "2025-03-04T05:06:07.000Z"\n    spec:',
      ),
    );
    const deployment = docs(text)[1];
    expect(deployment.spec.template.metadata).toEqual({
      labels: { app: "checkout" },
      annotations: { "pitcrew.dev/restartedAt": "2025-03-04T05:06:07.000Z" },
    });
    expect(deployment.spec.template.spec).toEqual(docs(CHECKOUT)[1].spec.template.spec);
    const [cm, , svc] = slices(text);
    expect(cm).toBe(slices(CHECKOUT)[0]);
    expect(svc).toBe(slices(CHECKOUT)[2]);
    for (const comment of [
      "# The checkout Deployment (owned by team-payments)",
      "# keep at least 3 for zone spread",
      "# main container",
      "# bumped by CI",
      "# throttled at peak",
    ])
      expect(text).toContain(comment);
    // The file's list style (items level with their key) is kept.
    expect(text).toContain("\n      containers:\n      - name: checkout");
    await expectUntouched(dir, ["apps/shop/checkout.yaml"]);
  });

  it("puts the annotation in the overlay's patch for a kustomize workload", async () => {
    const dir = await makeRepo();
    const p = "kustomize/overlays/prod/deployment-patch.yaml";
    await restart(dir, { namespace: "payments-prod", deployment: "payments" }, ctx);
    const text = await read(dir, p);
    expect(parse(text)).toEqual({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "payments" },
      spec: {
        replicas: 4,
        template: { metadata: { annotations: { "pitcrew.dev/restartedAt": "2025-03-04T05:06:07.000Z" } } },
      },
    });
    expect(text).toContain("# prod sizing");
    expect(text).toContain("replicas: 4 # prod traffic");
    await expectUntouched(dir, [p]);
  });

  it("sets podAnnotations in the namespace's Helm values file", async () => {
    const dir = await makeRepo();
    await restart(dir, { namespace: "shop", deployment: "inventory" }, ctx);
    const text = await read(dir, "helm/inventory/values-shop.yaml");
    expect(parse(text)).toEqual({
      replicaCount: 3,
      podAnnotations: { "pitcrew.dev/restartedAt": "2025-03-04T05:06:07.000Z" },
    });
    expect(text).toContain("# black friday");
    await expectUntouched(dir, ["helm/inventory/values-shop.yaml"]);
  });
});

describe("quota", () => {
  const q = "apps/shop/quota.yaml";

  it("raises every spec.hard entry in its own unit and records the baseline", async () => {
    const dir = await makeRepo();
    const change = await quota(dir, { namespace: "shop", resourcequota: "compute", factor: 1.25, max_factor: 2 }, ctx);
    expect(change.files).toEqual([q]);
    const text = await read(dir, q);
    const [compute, objects] = docs(text);
    expect(compute.spec.hard).toEqual({
      "requests.cpu": "5",
      "limits.memory": "10Gi",
      pods: "13",
      "requests.storage": "125Gi",
    });
    expect(JSON.parse(compute.metadata.annotations["pitcrew.dev/quota-baseline"])).toEqual({
      "requests.cpu": "4",
      "limits.memory": "8Gi",
      pods: "10",
      "requests.storage": "100Gi",
    });
    expect(objects).toEqual(docs(FILES[q]!)[1]);
    expect(slices(text)[1]).toBe(slices(FILES[q]!)[1]);
    for (const comment of ["# Quotas for the shop namespace", "# 4 cores", "# per team budget"])
      expect(text).toContain(comment);
    await expectUntouched(dir, [q]);
  });

  it("stops at max_factor × the baseline over repeated runs, then has nothing to change", async () => {
    const dir = await makeRepo();
    const seen: unknown[] = [];
    for (let i = 0; i < 4; i++) {
      await quota(dir, { namespace: "shop", resourcequota: "compute", factor: 1.25, max_factor: 2 }, ctx);
      seen.push(docs(await read(dir, q))[0].spec.hard);
    }
    expect(seen.at(-1)).toEqual({
      "requests.cpu": "8",
      "limits.memory": "16Gi",
      pods: "20",
      "requests.storage": "200Gi",
    });
    expect(seen[1]).toEqual({
      "requests.cpu": "6250m",
      "limits.memory": "12800Mi",
      pods: "17",
      "requests.storage": "160000Mi",
    });
    await expect(
      quota(dir, { namespace: "shop", resourcequota: "compute", factor: 1.25, max_factor: 2 }, ctx),
    ).rejects.toMatchObject({ code: "gitops.no_change" });
  });

  it("raises one entry when asked, and counts as whole numbers", async () => {
    const dir = await makeRepo();
    await quota(dir, { namespace: "shop", resourcequota: "objects", resource: "count/configmaps", factor: 1.1 }, ctx);
    const text = await read(dir, q);
    expect(docs(text)[1].spec.hard).toEqual({ "count/configmaps": 55, "services.loadbalancers": "2" });
    expect(text).toContain("count/configmaps: 55 # plenty");
    expect(slices(text)[0]).toBe(slices(FILES[q]!)[0]);
  });

  it("raises only the resource a KubeQuotaExceeded alert names with the shipped skill, and says so in the change summary", async () => {
    const dir = await makeRepo();
    const skill = loadSkills(join(import.meta.dirname, "..", "..", "skills")).skills.find(
      (s) => s.name === "quota-exceeded-raise",
    )!;
    const alert = fixture("quota-exceeded.json", "q").alerts[0];
    // The fixture's alert, pointed at this repository's quota.
    const labels = { ...alert.labels, namespace: "shop", resourcequota: "compute" };
    const ctxOf = {
      incident: {
        id: "inc_q",
        alertname: labels.alertname,
        fingerprint: alert.fingerprint,
        namespace: "shop",
        service: null,
        severity: "warning",
        title: "quota",
      },
      labels,
      annotations: alert.annotations,
    };
    const params = renderParams(skill, ctxOf);
    expect(params).toMatchObject({ namespace: "shop", resourcequota: "compute", resource: "requests.cpu" });
    const change = await quota(dir, params, ctx);
    const [compute] = docs(await read(dir, q));
    expect(compute.spec.hard).toEqual({
      "requests.cpu": "5",
      "limits.memory": "8Gi",
      pods: "10",
      "requests.storage": "100Gi",
    });
    expect(change.summary).toBe(
      `quota shop/compute: requests.cpu 4 → 5 in ${q}; only requests.cpu, the resource the alert names, was raised (limits.memory, pods, requests.storage unchanged)`,
    );
  });

  it("asks which quota when a namespace has several, and reports a missing one", async () => {
    const dir = await makeRepo();
    await expect(quota(dir, { namespace: "shop", factor: 1.5 }, ctx)).rejects.toMatchObject({
      kind: "invalid",
      code: "gitops.quota_ambiguous",
    });
    await expect(quota(dir, { namespace: "web", factor: 1.5 }, ctx)).rejects.toMatchObject({
      kind: "not_found",
      code: "gitops.quota_not_found",
    });
    await expect(quota(dir, { namespace: "shop", resourcequota: "compute", factor: 0.5 }, ctx)).rejects.toMatchObject({
      kind: "invalid",
    });
    await expectUntouched(dir, []);
  });
});

describe("patch", () => {
  const f = "apps/shop/checkout.yaml";
  const cpu = "spec.template.spec.containers[name=checkout].resources.limits.cpu";

  it("multiplies a quantity in the document of a multi-document file where the path exists", async () => {
    const dir = await makeRepo();
    const change = await applyPatch(dir, [
      { file: f, path: cpu, multiply: 1.5, max: 8 },
      { file: f, path: "spec.template.spec.containers[name=checkout].resources.limits.memory", multiply: 1.5 },
    ]);
    expect(change.files).toEqual([f]);
    expect(change.details.ops).toMatchObject([
      { doc: 1, from: "500m", to: "750m", changed: true },
      { doc: 1, from: "512Mi", to: "768Mi" },
    ]);
    expect(await read(dir, f)).toBe(
      CHECKOUT.replace("cpu: 500m ", "cpu: 750m ").replace("memory: 512Mi", "memory: 768Mi"),
    );
  });

  it("stops at max and then reports nothing to change", async () => {
    const dir = await makeRepo();
    await applyPatch(dir, [{ file: f, path: cpu, multiply: 4, max: 1 }]);
    expect(docs(await read(dir, f))[1].spec.template.spec.containers[0].resources.limits.cpu).toBe("1000m");
    await expect(applyPatch(dir, [{ file: f, path: cpu, multiply: 4, max: 1 }])).rejects.toMatchObject({
      code: "gitops.no_change",
    });
  });

  it("sets and appends, creating what is missing, and is idempotent", async () => {
    const dir = await makeRepo();
    const ops = [
      { file: f, path: "spec.template.spec.containers[name=envoy].resources.requests.memory", set: "128Mi" },
      { file: f, path: "spec.template.spec.containers[name=checkout].env", append: { name: "GOGC", value: "50" } },
      { file: f, path: 'spec.template.metadata.annotations["pitcrew.dev/owner"]', set: "sre" },
    ];
    await applyPatch(dir, ops);
    const text = await read(dir, f);
    const [cm, deployment, svc] = docs(text);
    expect(deployment.spec.template.spec.containers[1].resources).toEqual({ requests: { memory: "128Mi" } });
    expect(deployment.spec.template.spec.containers[0].env).toEqual([{ name: "GOGC", value: "50" }]);
    expect(deployment.spec.template.metadata).toEqual({
      labels: { app: "checkout" },
      annotations: { "pitcrew.dev/owner": "sre" },
    });
    expect([cm, svc]).toEqual([docs(CHECKOUT)[0], docs(CHECKOUT)[2]]);
    expect(text).toContain("# bumped by CI");
    await expect(applyPatch(dir, ops)).rejects.toMatchObject({ code: "gitops.no_change" });
    expect(await read(dir, f)).toBe(text);
  });

  it("refuses paths outside the repository, missing files and paths, and non-quantities", async () => {
    const dir = await makeRepo();
    await expect(applyPatch(dir, [{ file: "../../etc/passwd", path: "a", set: 1 }])).rejects.toMatchObject({
      kind: "invalid",
      code: "gitops.bad_path",
    });
    await expect(applyPatch(dir, [{ file: ".git/config", path: "a", set: 1 }])).rejects.toMatchObject({
      code: "gitops.bad_path",
    });
    await expect(applyPatch(dir, [{ file: "apps/nope.yaml", path: "a", set: 1 }])).rejects.toMatchObject({
      code: "gitops.file_not_found",
    });
    await expect(
      applyPatch(dir, [{ file: f, path: "spec.template.spec.containers[name=api].resources.limits.cpu", multiply: 2 }]),
    ).rejects.toMatchObject({ code: "patch.path_not_found" });
    await expect(
      applyPatch(dir, [{ file: f, path: "spec.template.spec.containers[name=checkout].image", multiply: 2 }]),
    ).rejects.toMatchObject({ code: "patch.not_a_quantity" });
    await expect(applyPatch(dir, [{ file: f, path: "spec..replicas", set: 2 }])).rejects.toMatchObject({
      code: "patch.bad_path",
    });
    await expectUntouched(dir, []);
  });
});
