import { describe, expect, it } from "vitest";
import { describeInstance, findObjects, findWorkload, podBelongsTo } from "./manifests.ts";
import { parseYamlFile, type YamlFile } from "./yaml-file.ts";

const repo = (files: Record<string, string>) => ({
  files: new Map<string, YamlFile>(Object.entries(files).map(([p, t]) => [p, parseYamlFile(p, t)])),
});

const deployment = (name: string, ns?: string, kind = "Deployment") =>
  `apiVersion: apps/v1\nkind: ${kind}\nmetadata:\n  name: ${name}\n${ns ? `  namespace: ${ns}\n` : ""}spec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: img:v1\n`;

describe("podBelongsTo", () => {
  it.each([
    ["checkout-7d9f8b6c5-x2x9k", "checkout", "Deployment", true],
    ["checkout-api-7d9f8b6c5-x2x9k", "checkout", "Deployment", false],
    ["postgres-0", "postgres", "StatefulSet", true],
    ["postgres-0", "postgres", "Deployment", false],
    ["node-exporter-x2x9k", "node-exporter", "DaemonSet", true],
    ["web-12", "web", "HelmValues", true],
    ["checkout", "checkout", "Deployment", false],
  ])("%s of %s (%s): %s", (pod, name, kind, yes) => {
    expect(podBelongsTo(pod, name, kind)).toBe(yes);
  });
});

describe("findWorkload", () => {
  it("finds a workload among several documents and kinds, by pod name, preferring the longest name", () => {
    const r = repo({
      "apps/shop.yaml": [
        deployment("checkout", "shop"),
        deployment("checkout-api", "shop"),
        deployment("db", "shop", "StatefulSet"),
      ].join("---\n"),
    });
    expect(findWorkload(r, { namespace: "shop", pod: "checkout-api-7d9f8b6c5-x2x9k" })).toMatchObject({
      name: "checkout-api",
    });
    expect(findWorkload(r, { namespace: "shop", pod: "checkout-7d9f8b6c5-x2x9k" })).toMatchObject({ name: "checkout" });
    expect(findWorkload(r, { namespace: "shop", pod: "db-2" }).instance.kind).toBe("StatefulSet");
    expect(() => findWorkload(r, { namespace: "other", name: "checkout" })).toThrow(
      expect.objectContaining({ code: "gitops.workload_not_found" }),
    );
  });

  it("places a base's workload in the namespace of the overlay that includes it, with prefixes", () => {
    const r = repo({
      "base/kustomization.yaml": "resources: [app.yaml]\n",
      "base/app.yaml": deployment("api"),
      "envs/prod/kustomization.yaml":
        "namespace: prod\nnamePrefix: shop-\nresources: [../../base]\npatches:\n  - path: patch.yaml\n",
      "envs/prod/patch.yaml": "kind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 3\n",
      "envs/dev/kustomization.yaml": "namespace: dev\nresources: [../../base]\n",
    });
    const prod = findWorkload(r, { namespace: "prod", name: "shop-api" });
    expect(describeInstance(prod.instance)).toBe(
      "envs/prod/kustomization.yaml → envs/prod/patch.yaml → base/kustomization.yaml → base/app.yaml",
    );
    expect(findWorkload(r, { namespace: "dev", name: "api" }).instance.layers.map((l) => l.type)).toEqual([
      "kustomization",
      "kustomization",
      "resource",
    ]);
    // The base alone is not a deployment of its own: it is only reached through the overlays.
    expect(() => findWorkload(r, { namespace: "base", name: "api" })).toThrow(
      expect.objectContaining({ code: "gitops.workload_not_found" }),
    );
  });

  it("takes a folder name for the namespace only when nothing states one, and reports ties", () => {
    const r = repo({
      "apps/shop/api.yaml": deployment("api"),
      "apps/web/api.yaml": deployment("api"),
      "clusters/a/shop/api.yaml": deployment("api", "shop"),
    });
    expect(findWorkload(r, { namespace: "shop", name: "api" }).instance.layers[0]!.file.path).toBe(
      "clusters/a/shop/api.yaml",
    );
    expect(findWorkload(r, { namespace: "web", name: "api" }).instance.layers[0]!.file.path).toBe("apps/web/api.yaml");
    const tie = repo({ "a/api.yaml": deployment("api", "shop"), "b/api.yaml": deployment("api", "shop") });
    expect(() => findWorkload(tie, { namespace: "shop", name: "api" })).toThrow(
      expect.objectContaining({
        kind: "conflict",
        code: "gitops.workload_ambiguous",
        message: expect.stringContaining("a/api.yaml; b/api.yaml"),
      }),
    );
  });

  it("reads Helm values: the namespace's file over the folder's defaults, other environments ignored", () => {
    const r = repo({
      "releases/search/values.yaml": "image:\n  repository: search\n  tag: v1\n",
      "releases/search/values-shop.yaml": "replicaCount: 2\n",
      "releases/search/values-staging.yaml": "replicaCount: 1\n",
      "charts/web/Chart.yaml": "name: web-chart\n",
      "charts/web/values.yaml": "fullnameOverride: frontend\nimage:\n  tag: v3\n",
    });
    expect(findWorkload(r, { namespace: "shop", name: "search" }).instance.layers.map((l) => l.file.path)).toEqual([
      "releases/search/values-shop.yaml",
      "releases/search/values.yaml",
    ]);
    expect(findWorkload(r, { namespace: "anything", name: "search" }).instance.layers.map((l) => l.file.path)).toEqual([
      "releases/search/values.yaml",
    ]);
    for (const name of ["web", "web-chart", "frontend"])
      expect(findWorkload(r, { namespace: "x", name }).instance.source).toBe("helm");
    expect(findWorkload(r, { namespace: "x", pod: "frontend-6b8f9c7d5-abcde" }).name).toBe("frontend");
  });

  it("skips documents that are not valid YAML and files that are not objects", () => {
    const r = repo({
      "a.yaml": "kind: Deployment\nmetadata: {name: x\n",
      "b.yaml": "- just\n- a list\n",
      "c.yaml": deployment("x", "ns"),
    });
    expect(findWorkload(r, { namespace: "ns", name: "x" }).instance.layers[0]!.file.path).toBe("c.yaml");
  });
});

describe("findObjects", () => {
  it("lists the objects of a kind in a namespace", () => {
    const quota = (name: string) =>
      `kind: ResourceQuota\nmetadata:\n  name: ${name}\n  namespace: shop\nspec:\n  hard:\n    pods: "10"\n`;
    const r = repo({ "q.yaml": `${quota("a")}---\n${quota("b")}`, "other.yaml": quota("c").replace("shop", "web") });
    expect(findObjects(r, { kind: "ResourceQuota", namespace: "shop" }).map((m) => m.name)).toEqual(["a", "b"]);
    expect(findObjects(r, { kind: "ResourceQuota", namespace: "shop", name: "b" }).map((m) => m.name)).toEqual(["b"]);
  });
});
