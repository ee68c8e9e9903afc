import { describe, expect, it } from "vitest";
import { formatImage, imageVersion, parseImage } from "./image.ts";

describe("parseImage", () => {
  it.each([
    ["nginx", { name: "nginx" }],
    ["nginx:1.27", { name: "nginx", tag: "1.27" }],
    ["registry.example.com:5000/shop/checkout:v2", { name: "registry.example.com:5000/shop/checkout", tag: "v2" }],
    ["registry.example.com:5000/shop/checkout", { name: "registry.example.com:5000/shop/checkout" }],
    ["ghcr.io/acme/api:v1@sha256:abc", { name: "ghcr.io/acme/api", tag: "v1", digest: "sha256:abc" }],
    ["ghcr.io/acme/api@sha256:abc", { name: "ghcr.io/acme/api", digest: "sha256:abc" }],
  ])("splits %s", (ref, parsed) => {
    expect(parseImage(ref)).toEqual(parsed);
    expect(formatImage(parseImage(ref))).toBe(ref);
  });

  it("names the version by tag, then digest", () => {
    expect(imageVersion(parseImage("a:v3"))).toBe("v3");
    expect(imageVersion(parseImage("a@sha256:1"))).toBe("sha256:1");
    expect(imageVersion(parseImage("a"))).toBe("latest");
  });
});
