import { describe, expect, it } from "vitest";
import { liveRegion, topics, topicsOf } from "./live.ts";
import { html, toText } from "./html.ts";

describe("topicsOf", () => {
  it("names the incident, the task, approvals and system changes an event is about", () => {
    expect(topicsOf({ type: "task.progress", incident_id: "inc_1", task_id: "tsk_2" })).toEqual([
      "incident:inc_1",
      "incidents",
      "task:tsk_2",
      "tasks",
    ]);
    expect(topicsOf({ type: "approval.requested", incident_id: "inc_1", task_id: null })).toEqual([
      "incident:inc_1",
      "incidents",
      "approvals",
    ]);
    expect(topicsOf({ type: "system.paused", incident_id: null, task_id: null })).toEqual(["system"]);
    expect(topicsOf({ type: "skills.published", incident_id: null, task_id: null })).toEqual(["system"]);
  });
});

describe("liveRegion", () => {
  it("marks the region with its source and topics, escaping both", () => {
    const out = toText(
      liveRegion(
        { src: '/tasks/rows?state="x"&a=<b>', on: [topics.tasks, topics.task("tsk_1")], every: 5, id: "r" },
        html`<p>${"<i>"}</p>`,
      ),
    );
    expect(out).toBe(
      '<div data-live="/tasks/rows?state=&quot;x&quot;&amp;a=&lt;b&gt;" data-live-on="tasks task:tsk_1" data-live-every="5" id="r" aria-live="polite"><p>&lt;i&gt;</p></div>',
    );
  });

  it("can be a table body (no aria-live on rows)", () => {
    expect(toText(liveRegion({ tag: "tbody", src: "/x", on: ["tasks"] }, html`<tr></tr>`))).toBe(
      '<tbody data-live="/x" data-live-on="tasks"><tr></tr></tbody>',
    );
  });
});
