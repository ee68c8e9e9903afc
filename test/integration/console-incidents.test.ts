import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendEvent } from "../../src/events/repo.ts";
import { newIncidentRow } from "../../src/incidents/repo.ts";
import { applyTransition } from "../../src/incidents/service.ts";
import { requestRunApproval } from "../../src/approvals/requests.ts";
import { newId } from "../../src/shared/ids.ts";
import { unavailable } from "../../src/shared/errors.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { startConsoleApp, TOKENS, type ConsoleApp } from "../helpers/browser.ts";
import { fixHarness, scaleSkill, uid, type FixHarness } from "../helpers/fixes.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// The console's incidents and approvals over HTTP, on SQLite and MySQL: the list with its filters
// and cursor pages, the incident page with the pull request's diff read from a real bare
// repository, and decisions from the browser's forms — through the approvals service, recorded as
// the signed-in person via the console, refused (and nothing changed) without the approve scope or
// the CSRF token, and conflicts answered with a message on the page.

const factories = await storeFactories();
const skill = scaleSkill();
const HTML = { accept: "text/html" };
const bearer = (token: string) => ({ ...HTML, authorization: `Bearer ${token}` });

/** Incident ids linked from a page, in order, once each. */
const linkedIncidents = (body: string) => [
  ...new Set([...body.matchAll(/href="\/incidents\/(inc_[0-9A-Z]+)"/g)].map((m) => m[1]!)),
];

for (const f of factories) {
  describe.skipIf(!f.available)(`console incidents and approvals on ${f.name}`, () => {
    let store: TestStore;
    let h: FixHarness;
    let app: ConsoleApp;

    beforeAll(async () => {
      store = await f.make();
      h = await fixHarness(store, [skill]);
      app = await startConsoleApp({
        store,
        deps: { gitHost: h.host, approvals: h.approvals, now: () => h.clock.now, skills: () => [skill] },
      });
    });
    afterAll(async () => {
      await app?.close();
      await h?.close();
      await store?.close();
    });

    const get = (url: string, headers: Record<string, string>) => app.app.inject({ method: "GET", url, headers });

    /** A browser session for `token`: its cookie and the CSRF token its forms carry. */
    async function session(token: string, incidentId: string): Promise<{ cookie: string; csrf: string }> {
      const login = await app.app.inject({
        method: "POST",
        url: "/login",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        payload: new URLSearchParams({ token, next: "/" }).toString(),
      });
      expect(login.statusCode).toBe(303);
      const cookie = String(login.headers["set-cookie"]).split(";")[0]!;
      const page = await get(`/incidents/${incidentId}`, { ...HTML, cookie });
      expect(page.statusCode).toBe(200);
      return { cookie, csrf: /name="_csrf" value="([^"]+)"/.exec(page.body)![1]! };
    }

    const post = (
      url: string,
      s: { cookie: string },
      form: Record<string, string>,
      headers: Record<string, string> = {},
    ) =>
      app.app.inject({
        method: "POST",
        url,
        headers: {
          ...HTML,
          cookie: s.cookie,
          "content-type": "application/x-www-form-urlencoded",
          origin: app.url,
          ...headers,
        },
        payload: new URLSearchParams(form).toString(),
      });

    /** An incident whose fix opened its pull request in the bare repository and waits for a person. */
    async function proposed() {
      const fix = await h.fixing(skill);
      const run = await h.runTask(fix.taskId);
      expect(run.ok, JSON.stringify(run)).toBe(true);
      return { ...fix, approval: await h.pending(fix.id) };
    }

    const approvalEvents = async (id: string) =>
      (await h.events(id)).filter((e) => e.type.startsWith("approval.") && e.type !== "approval.requested");

    it("lists incidents newest first, filtered by state, severity, namespace and text, in cursor pages", async () => {
      const ns = `ns-${uid()}`;
      const ids: string[] = [];
      for (let i = 0; i < 57; i++) {
        const t = h.clock.now - (60 - i) * 60_000;
        const row = newIncidentRow(
          {
            id: newId("inc", t),
            fingerprint: `${ns}-${i}`,
            dedupe_key: null,
            open_key: null,
            title: i % 10 === 3 ? `Disk FULL on node-${i}` : `Latency ${i}% over budget`,
            source: "alertmanager",
            severity: i % 5 === 0 ? "critical" : "warning",
            namespace: ns,
            service: `svc-${i}`,
            alertname: "AppSlow",
            labels: {},
            annotations: {},
          },
          t,
        );
        await store.db
          .insertInto("incidents")
          .values({ ...row, state: i % 4 === 0 ? "resolved" : "escalated" })
          .execute();
        ids.push(row.id);
      }
      const newestFirst = [...ids].reverse();

      const first = await get(`/incidents?namespace=${ns}`, bearer(TOKENS.reader));
      expect(first.statusCode).toBe(200);
      expect(linkedIncidents(first.body)).toEqual(newestFirst.slice(0, 50));
      const older = /href="([^"]+)" rel="next"/.exec(first.body)![1]!.replace(/&amp;/g, "&");
      expect(older).toBe(`/incidents?namespace=${ns}&cursor=${newestFirst[49]}`);
      const second = await get(older, bearer(TOKENS.reader));
      expect(linkedIncidents(second.body)).toEqual(newestFirst.slice(50));
      expect(second.body).not.toContain('rel="next"');

      const critical = await get(`/incidents?namespace=${ns}&severity=critical&state=`, bearer(TOKENS.reader));
      expect(linkedIncidents(critical.body)).toEqual(newestFirst.filter((_, k) => (56 - k) % 5 === 0));
      const resolved = await get(`/incidents?namespace=${ns}&state=resolved`, bearer(TOKENS.reader));
      expect(linkedIncidents(resolved.body)).toHaveLength(15);
      const open = await get(`/incidents?namespace=${ns}&state=open`, bearer(TOKENS.reader));
      expect(linkedIncidents(open.body)).toHaveLength(42);
      // Text matches title, id, alert, service and namespace, whatever the case; LIKE's wildcards are literal.
      const disk = await get(`/incidents?namespace=${ns}&q=disk+full`, bearer(TOKENS.reader));
      expect(linkedIncidents(disk.body)).toEqual(newestFirst.filter((_, k) => (56 - k) % 10 === 3));
      expect(
        linkedIncidents(
          (await get(`/incidents?namespace=${ns}&q=${encodeURIComponent("4%")}`, bearer(TOKENS.reader))).body,
        ),
      ).toEqual([ids[54]!, ids[44]!, ids[34]!, ids[24]!, ids[14]!, ids[4]!]);
      expect(linkedIncidents((await get(`/incidents?q=svc-17&namespace=${ns}`, bearer(TOKENS.reader))).body)).toEqual([
        ids[17]!,
      ]);
      expect((await get(`/incidents?namespace=${ns}&q=disk_full`, bearer(TOKENS.reader))).body).toContain(
        "No incident matches these filters.",
      );
      // The filters survive in the form, and a bad one is refused rather than ignored.
      expect(disk.body).toContain(`name="q" value="disk full"`);
      expect((await get(`/incidents?state=nonsense`, bearer(TOKENS.reader))).statusCode).toBe(400);
    });

    it("shows the skill and pull request in the list, and the incident page with its plan, diff from the host, approval and timeline", async () => {
      const p = await proposed();
      const list = await get(`/incidents?namespace=shop&q=${p.app}`, bearer(TOKENS.reader));
      expect(linkedIncidents(list.body)).toEqual([p.id]);
      expect(list.body).toMatch(
        new RegExp(
          `<td>scale-app</td>\\s*<td>#${p.approval.pr_number} <small class="muted">awaiting approval</small></td>`,
        ),
      );

      const page = await get(`/incidents/${p.id}`, bearer(TOKENS.approver));
      expect(page.statusCode).toBe(200);
      expect(page.headers["content-security-policy"]).toContain("script-src 'self'");
      expect(page.body).toContain(`<h1>${p.app} is slow</h1>`);
      expect(page.body).toContain("<dt>Skill</dt><dd>scale-app</dd>");
      expect(page.body).toContain(`<code>${p.file}</code>`);
      expect(page.body).toContain('<del class="diff-del">-  replicas: 2</del>');
      expect(page.body).toContain('<ins class="diff-add">+  replicas: 3</ins>');
      expect(page.body).toContain(`Approve and merge #${p.approval.pr_number}`);
      expect(page.body).toContain(`<strong class="log-type">approval.requested</strong>`);
      // The live regions, and each one's fragment.
      expect(page.body).toContain(`data-live="/incidents/${p.id}/timeline" data-live-on="incident:${p.id}"`);
      const timeline = await get(`/incidents/${p.id}/timeline`, {
        ...bearer(TOKENS.reader),
        "x-pitcrew-fragment": "1",
      });
      expect(timeline.body.startsWith("<ol")).toBe(true);
      expect(timeline.body).toContain("approval.requested");
      expect((await get(`/incidents/${p.id}/secrets`, bearer(TOKENS.reader))).statusCode).toBe(404);
      expect((await get(`/incidents/inc_NOPE`, bearer(TOKENS.reader))).statusCode).toBe(404);

      const approvals = await get("/approvals", bearer(TOKENS.reader));
      expect(approvals.body).toContain(`href="/incidents/${p.id}#approvals">${p.app} is slow</a>`);
      expect(approvals.body).toMatch(/expires in 23 h 59 min|expires in 24 h 0 min/);
      expect(approvals.body).toContain("1 file changed, 1 line added, 1 line removed");
    });

    it("approves from a signed-in session: the merge happens in the repository and the decision names the person via the console", async () => {
      const p = await proposed();
      const s = await session(TOKENS.approver, p.id);
      const r = await post(`/approvals/${p.approval.id}/approve`, s, {
        _csrf: s.csrf,
        reason: "one-line bump, looks right",
      });
      expect(r.statusCode, r.body).toBe(303);
      expect(r.headers.location).toBe(`/incidents/${p.id}#approvals`);

      expect((await h.approvalsOf(p.id))[0]).toMatchObject({
        state: "approved",
        decided_by: "oncall",
        channel: "console",
        reason: "one-line bump, looks right",
        merged_at: expect.anything(),
      });
      expect((await approvalEvents(p.id)).map((e) => [e.type, e.actor, e.channel, e.reason])).toEqual([
        ["approval.approved", "console:oncall", "console", "one-line bump, looks right"],
      ]);
      expect(h.show("main", p.file)).toContain("replicas: 3");
      expect(h.git("log", "-1", "--format=%B", "main")).toMatch(/Approved-by: oncall\nApproved-via: console/);
      expect((await h.incident(p.id)).state).toBe("verifying");

      const after = await get(`/incidents/${p.id}`, { ...HTML, cookie: s.cookie });
      expect(after.body).toContain(
        'approved by <span class="decided-by">oncall</span> via <span class="channel">console</span>',
      );
      expect(after.body).toContain('<span class="pr-status">merged</span>');
      expect(after.body).not.toContain("Approve and merge");
    });

    it("rejects with the reason recorded, closes the pull request, and asks for a reason when none is given", async () => {
      const p = await proposed();
      const s = await session(TOKENS.approver, p.id);
      const blank = await post(`/approvals/${p.approval.id}/reject`, s, { _csrf: s.csrf, reason: "  " });
      expect(blank.statusCode).toBe(400);
      expect(blank.body).toContain("Not rejected: Say why you reject");
      expect((await h.approvalsOf(p.id))[0]!.state).toBe("pending");

      const r = await post(`/approvals/${p.approval.id}/reject`, s, {
        _csrf: s.csrf,
        reason: "wrong app: <b>checkout</b> is the slow one",
      });
      expect(r.statusCode, r.body).toBe(303);
      expect((await h.approvalsOf(p.id))[0]).toMatchObject({
        state: "rejected",
        decided_by: "oncall",
        channel: "console",
        reason: "wrong app: <b>checkout</b> is the slow one",
      });
      expect((await approvalEvents(p.id)).map((e) => [e.type, e.actor, e.channel, e.reason])).toEqual([
        ["approval.rejected", "console:oncall", "console", "wrong app: <b>checkout</b> is the slow one"],
      ]);
      expect(h.pullRecord(p.approval.pr_number!).state).toBe("closed");
      expect((await h.incident(p.id)).state).toBe("rejected");
      const after = await get(`/incidents/${p.id}`, { ...HTML, cookie: s.cookie });
      expect(after.body).toContain("wrong app: &lt;b&gt;checkout&lt;/b&gt; is the slow one");
    });

    it("approves a plan before it runs: the fix task is queued and the decision names the person via the console", async () => {
      const t = h.clock.now;
      const app_ = uid();
      const row = newIncidentRow(
        {
          id: newId("inc", t),
          fingerprint: app_,
          dedupe_key: null,
          open_key: app_,
          title: `${app_} needs a restart`,
          source: "alertmanager",
          severity: "warning",
          namespace: "shop",
          service: app_,
          alertname: "AppSlow",
          labels: { app: app_ },
          annotations: {},
        },
        t,
      );
      const by = { actor: "pitcrew:analysis", channel: "engine" };
      const approvalId = await store.db.transaction().execute(async (trx) => {
        await trx.insertInto("incidents").values(row).execute();
        const inc = await applyTransition(trx, store.dialect, row, "analysis.started", by, t);
        return requestRunApproval(
          trx,
          store.dialect,
          inc,
          { skill: skill.name, params: {}, risk: "medium", approval: "before_run" },
          by,
          t,
        );
      });
      const s = await session(TOKENS.approver, row.id);
      expect((await get(`/incidents/${row.id}`, { ...HTML, cookie: s.cookie })).body).toContain("Approve and run");
      const r = await post(`/approvals/${approvalId}/approve`, s, { _csrf: s.csrf });
      expect(r.statusCode, r.body).toBe(303);
      expect((await h.approvalsOf(row.id))[0]).toMatchObject({
        state: "approved",
        decided_by: "oncall",
        channel: "console",
        reason: null,
      });
      expect((await h.incident(row.id)).state).toBe("fixing");
      const tasks = await store.db
        .selectFrom("tasks")
        .select(["state", "created_by"])
        .where("incident_id", "=", row.id)
        .execute();
      expect(tasks).toEqual([{ state: "queued", created_by: "console:oncall" }]);
    });

    it("shows no buttons to a user without the approve scope and refuses their forged POST, changing nothing", async () => {
      const p = await proposed();
      const s = await session(TOKENS.reader, p.id);
      const page = await get(`/incidents/${p.id}`, { ...HTML, cookie: s.cookie });
      expect(page.body).not.toContain(`/approvals/${p.approval.id}/approve`);
      expect(page.body).toContain("deciding needs the <code>approve</code> scope");

      for (const decision of ["approve", "reject"]) {
        const r = await post(`/approvals/${p.approval.id}/${decision}`, s, { _csrf: s.csrf, reason: "forged" });
        expect(r.statusCode).toBe(403);
      }
      expect((await h.approvalsOf(p.id))[0]!.state).toBe("pending");
      expect(await approvalEvents(p.id)).toEqual([]);
      expect(h.pullRecord(p.approval.pr_number!).state).toBe("open");
    });

    it("refuses an approver's POST without the CSRF token, with another session's token, or from another site", async () => {
      const p = await proposed();
      const s = await session(TOKENS.approver, p.id);
      const other = await session(TOKENS.admin, p.id);
      expect((await post(`/approvals/${p.approval.id}/approve`, s, {})).statusCode).toBe(403);
      expect((await post(`/approvals/${p.approval.id}/approve`, s, { _csrf: other.csrf })).statusCode).toBe(403);
      expect(
        (await post(`/approvals/${p.approval.id}/approve`, s, { _csrf: s.csrf }, { origin: "https://evil.example" }))
          .statusCode,
      ).toBe(403);
      expect((await h.approvalsOf(p.id))[0]!.state).toBe("pending");
      expect(await approvalEvents(p.id)).toEqual([]);
      expect(h.show("main", p.file)).toContain("replicas: 2");
    });

    it("answers a decision that conflicts with a message on the page: already decided, pull request moved, expired", async () => {
      const asApprover = (url: string) =>
        app.app.inject({
          method: "POST",
          url,
          headers: { ...bearer(TOKENS.approver), "content-type": "application/x-www-form-urlencoded" },
          payload: "",
        });

      const decided = await proposed();
      await h.approvals.reject(
        { approvalId: decided.approval.id },
        { subject: "bob", actor: "mcp:bob", channel: "mcp" },
        "not now",
      );
      const late = await asApprover(`/approvals/${decided.approval.id}/approve`);
      expect(late.statusCode).toBe(409);
      expect(late.body).toContain(
        `Not approved: approval ${decided.approval.id} is already rejected: already decided by bob via mcp`,
      );
      expect(late.body).toContain('role="alert"');

      const moved = await proposed();
      h.push(moved.approval.pr_branch!, { [moved.file]: "kind: Deployment\nspec:\n  replicas: 9\n" });
      const warned = await get(`/incidents/${moved.id}`, bearer(TOKENS.approver));
      expect(warned.body).toContain("The pull request moved since its approval was requested");
      expect(warned.body).toContain('<ins class="diff-add">+  replicas: 9</ins>');
      const refused = await asApprover(`/approvals/${moved.approval.id}/approve`);
      expect(refused.statusCode).toBe(409);
      expect(refused.body).toMatch(/Not approved: .*moved/);
      expect(h.show("main", moved.file)).toContain("replicas: 2");

      const expired = await proposed();
      h.clock.now += 25 * 3_600_000;
      try {
        const r = await asApprover(`/approvals/${expired.approval.id}/approve`);
        expect(r.statusCode).toBe(409);
        expect(r.body).toContain(`Not approved: approval ${expired.approval.id} expired at`);
        // A script (bearer, JSON) gets the same refusal as JSON.
        const json = await app.app.inject({
          method: "POST",
          url: `/approvals/${expired.approval.id}/reject`,
          headers: { authorization: `Bearer ${TOKENS.approver}`, "content-type": "application/x-www-form-urlencoded" },
          payload: "reason=late",
        });
        expect(json.statusCode).toBe(409);
        expect(json.json()).toMatchObject({
          error: { code: "approval.reject_refused", message: expect.stringContaining("expired") },
        });
      } finally {
        h.clock.now -= 25 * 3_600_000;
      }
      expect((await h.approvalsOf(expired.id))[0]!.state).toBe("pending");
    });

    it("shows the diff stored with the approval when the pull-request host cannot be read", async () => {
      const p = await proposed();
      const down: GitHost = {
        ...h.host,
        pullRequestDiff: async () => {
          throw unavailable("gitops.unreachable", "the host is down");
        },
      };
      const other = await startConsoleApp({
        store,
        deps: { gitHost: down, approvals: h.approvals, now: () => h.clock.now },
      });
      try {
        const page = await other.app.inject({
          method: "GET",
          url: `/incidents/${p.id}`,
          headers: bearer(TOKENS.reader),
        });
        expect(page.statusCode).toBe(200);
        expect(page.body).toContain(
          "The diff as it was when its approval was requested (the pull-request host could not be read: the host is down)",
        );
        expect(page.body).toContain('<ins class="diff-add">+  replicas: 3</ins>');
      } finally {
        await other.close();
      }
    });

    it("shows labels, annotations, alert values, titles and reasons with markup as text", async () => {
      const t = h.clock.now;
      const evil = `<script>document.title="pwned"</script><img src=x onerror=alert(1)>`;
      const row = newIncidentRow(
        {
          id: newId("inc", t),
          fingerprint: `fp-${uid()}`,
          dedupe_key: null,
          open_key: null,
          title: `Title ${evil}`,
          source: "alertmanager",
          severity: "critical",
          namespace: "shop",
          service: "x",
          alertname: "AppSlow",
          labels: { team: evil },
          annotations: { summary: evil },
        },
        t,
      );
      await store.db.insertInto("incidents").values(row).execute();
      await appendEvent(
        store.db,
        store.dialect,
        {
          type: "incident.note",
          incidentId: row.id,
          actor: `mcp:${evil}`,
          channel: "mcp",
          reason: evil,
          data: { note: evil },
          occurredAt: t,
        },
        t,
      );
      const page = await get(`/incidents/${row.id}`, bearer(TOKENS.reader));
      expect(page.statusCode).toBe(200);
      expect(page.body).not.toContain("<script>document");
      expect(page.body).not.toContain("<img src=x");
      expect(
        page.body.split("&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;").length - 1,
      ).toBeGreaterThanOrEqual(6);
    });
  });
}
