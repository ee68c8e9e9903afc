import { describe, expect, it } from "vitest";
import { escapeHtml, html, raw, toText } from "./html.ts";

describe("html", () => {
  it("escapes every interpolated string, including attribute quotes", () => {
    const label = `<script>alert("x")</script>' onmouseover='x`;
    expect(toText(html`<td title="${label}">${label}</td>`)).toBe(
      `<td title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;x">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;x</td>`,
    );
  });

  it("keeps nested html and raw markup, joins arrays and drops empty values", () => {
    const items = ["a&b", "<i>"].map((x) => html`<li>${x}</li>`);
    expect(toText(html`<ul>${items}</ul>${null}${undefined}${false}${raw("<hr>")}${0}`)).toBe(
      "<ul><li>a&amp;b</li><li>&lt;i&gt;</li></ul><hr>0",
    );
  });

  it("escapes the five characters HTML reserves", () => {
    expect(escapeHtml(`&<>"'`)).toBe("&amp;&lt;&gt;&quot;&#39;");
  });
});
