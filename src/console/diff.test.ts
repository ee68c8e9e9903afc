import { describe, expect, it } from "vitest";
import { toText } from "./html.ts";
import { parseUnifiedDiff, renderDiff, renderDiffSummary } from "./diff.ts";

const TWO_FILES = [
  "diff --git a/apps/shop.yaml b/apps/shop.yaml",
  "index 1111111..2222222 100644",
  "--- a/apps/shop.yaml",
  "+++ b/apps/shop.yaml",
  "@@ -2,4 +2,4 @@ kind: Deployment",
  " metadata:",
  "   name: shop",
  " spec:",
  "-  replicas: 2",
  "+  replicas: 3",
  "diff --git a/apps/new.yaml b/apps/new.yaml",
  "new file mode 100644",
  "--- /dev/null",
  "+++ b/apps/new.yaml",
  "@@ -0,0 +1,2 @@",
  "+kind: ConfigMap",
  "+data: {}",
  "\\ No newline at end of file",
  "",
].join("\n");

describe("parseUnifiedDiff", () => {
  it("splits a git diff into files with their hunks, counts and line numbers", () => {
    const d = parseUnifiedDiff(TWO_FILES);
    expect(d.files.map((f) => [f.path, f.added, f.removed])).toEqual([
      ["apps/shop.yaml", 1, 1],
      ["apps/new.yaml", 2, 0],
    ]);
    const shop = d.files[0]!.lines;
    expect(shop[0]).toEqual({ kind: "hunk", text: "@@ -2,4 +2,4 @@ kind: Deployment" });
    expect(shop.filter((l) => l.kind === "del")).toEqual([
      { kind: "del", text: "  replicas: 2", oldNo: 5, newNo: null },
    ]);
    expect(shop.filter((l) => l.kind === "add")).toEqual([
      { kind: "add", text: "  replicas: 3", oldNo: null, newNo: 5 },
    ]);
    expect(d.files[1]!.meta).toEqual(["new file mode 100644"]);
    expect(d.files[1]!.lines.at(-1)).toEqual({ kind: "note", text: "\\ No newline at end of file" });
  });

  it("keeps the note a cut excerpt ends with, and reads a removed line that looks like a header as removed", () => {
    const d = parseUnifiedDiff(
      ["diff --git a/x b/x", "--- a/x", "+++ b/x", "@@ -1,2 +1,1 @@", "--- a/x", " keep", "… 12 more lines"].join("\n"),
    );
    expect(d.files[0]!.lines.map((l) => l.kind)).toEqual(["hunk", "del", "ctx"]);
    expect(d.notes).toEqual(["… 12 more lines"]);
  });

  it("names a renamed file by its new path and keeps the old one", () => {
    const d = parseUnifiedDiff(
      [
        "diff --git a/old name.yaml b/new name.yaml",
        "similarity index 90%",
        "--- a/old name.yaml",
        "+++ b/new name.yaml",
      ].join("\n"),
    );
    expect(d.files[0]).toMatchObject({ path: "new name.yaml", oldPath: "old name.yaml" });
  });
});

describe("renderDiff", () => {
  it("marks added lines as <ins> and removed lines as <del>, with the +/- kept as text and indentation kept", () => {
    const out = toText(renderDiff(TWO_FILES));
    expect(out).toContain('<ins class="diff-add">+  replicas: 3</ins>');
    expect(out).toContain('<del class="diff-del">-  replicas: 2</del>');
    expect(out).toContain('<span class="diff-ctx">   name: shop</span>');
    expect(out).toContain("<code>apps/shop.yaml</code>");
    expect(out).toContain("1 line added, 1 line removed");
    expect(out).toContain("2 lines added, 0 lines removed");
  });

  it("escapes markup in diff lines and paths: a <script> stays text", () => {
    const evil = [
      "diff --git a/<img src=x onerror=alert(1)>.yaml b/<img src=x onerror=alert(1)>.yaml",
      "--- a/x",
      "+++ b/<img src=x onerror=alert(1)>.yaml",
      "@@ -1 +1 @@",
      "-</pre><script>alert(1)</script>",
      '+"><b>bold</b>',
    ].join("\n");
    const out = toText(renderDiff(evil));
    expect(out).not.toContain("<script>");
    expect(out).not.toContain("<img");
    expect(out).not.toContain("<b>");
    expect(out).toContain("-&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(out).toContain("+&quot;&gt;&lt;b&gt;bold&lt;/b&gt;");
  });

  it("shows text that is not a diff as it is, escaped", () => {
    expect(toText(renderDiff("not a <diff>"))).toBe(
      '<pre class="diff" tabindex="0"><code>not a &lt;diff&gt;</code></pre>',
    );
  });
});

describe("renderDiffSummary", () => {
  it("lists the files with lines added and removed, and how many more files there are", () => {
    const out = toText(
      renderDiffSummary({ files: [{ path: "a<b>.yaml", added: 3, removed: 1 }], added: 40, removed: 2, more: 5 }),
    );
    expect(out).toContain("6 files changed, 40 lines added, 2 lines removed");
    expect(out).toContain("<code>a&lt;b&gt;.yaml</code>");
    expect(out).toContain("and 5 more files");
  });
});
