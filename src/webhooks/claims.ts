import { createHash } from "node:crypto";
import type { Store } from "../store/db.ts";
import { isDuplicateKey, type Executor } from "../store/sql.ts";
import type { ExternalClaimsTable, IncidentRow } from "../store/schema.ts";
import type { GitHost, PullDiff, PullRequest } from "../gitops/port.ts";
import type { Logger } from "../shared/logger.ts";
import { AppError, conflict, errorMessage, invalid, isAppError, notFound, unavailable } from "../shared/errors.ts";
import { newId, ulidFactory } from "../shared/ids.ts";
import { appendEvent } from "../events/repo.ts";
import { getIncident } from "../incidents/repo.ts";
import { isOpen, type IncidentState } from "../incidents/lifecycle.ts";
import { requestMergeApproval } from "../approvals/requests.ts";

// External agents take incidents over through leases (DESIGN §7). A claim is an `external_claims`
// row whose `active_key` is the incident id while it is active, so one agent at a time holds an
// incident; the holder claiming again renews its lease, anyone else gets a conflict until the lease
// ends (with a result) or expires. Results are recorded once per (lease, idempotency key): a repeat
// gets the first answer. `accepted` renews the lease; the other statuses end it. `pr_created`
// attaches the agent's pull request the way Pitcrew's own are: a pending merge approval bound to
// the pull request's head and diff as the host reports them, the incident `proposed`; a person
// decides, and Pitcrew merges and verifies. Every claim, result and expiry is a timeline event.

export const RESULT_STATUSES = ["accepted", "pr_created", "needs_human", "declined", "failed"] as const;
export type ResultStatus = (typeof RESULT_STATUSES)[number];

/** Who holds a lease: the webhook target the agent answers for, and the agent's own id. */
export type Holder = { target: string; agent: string };

type ClaimColumns = { external_claims: ExternalClaimsTable & { delivery_id: string | null; target: string | null } };
type ResultColumns = {
  agent_results: {
    id: string;
    claim_id: string;
    incident_id: string;
    idempotency_key: string;
    request_hash: string;
    status: string;
    response: string;
    created_at: number;
  };
};
const tables = (db: Executor) => db.withTables<ClaimColumns & ResultColumns>();
export type ClaimRow = Awaited<ReturnType<typeof getClaim>>;

export const getClaim = (db: Executor, id: string) =>
  tables(db).selectFrom("external_claims").selectAll().where("id", "=", id).executeTakeFirst();

export type Lease = {
  leaseId: string;
  incidentId: string;
  agent: string;
  target: string;
  deliveryId: string | null;
  expiresAt: number;
};
export type PrArtifact = { number: number; url?: string; branch?: string; headSha?: string };
export type ResultInput = {
  incidentId: string;
  leaseId: string;
  idempotencyKey: string;
  status: ResultStatus;
  summary?: string;
  pr?: PrArtifact;
  details?: Record<string, unknown>;
};
export type ResultAnswer = {
  result_id: string;
  lease_id: string;
  incident_id: string;
  status: ResultStatus;
  incident_state: string;
  lease: { state: string; expires_at: string };
  approval_id: string | null;
};

export type ClaimsDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  leaseTtlMs: number;
  gitHost?: GitHost;
  onEnqueued?: () => void;
};

const ENGINE = { actor: "pitcrew:webhooks", channel: "engine" };
const nextResultId = ulidFactory();
const iso = (ms: number) => new Date(ms).toISOString();
export const agentActor = (h: Holder) => `agent:${h.target}/${h.agent}`.slice(0, 255);
const byAgent = (h: Holder) => ({ actor: agentActor(h), channel: "webhook" });
const named = (h: Holder) => `agent ${h.agent} (target ${h.target})`;

/** A lease whose time ran out is over, whether or not the sweep has recorded it yet. */
export function leaseState(c: { state: string; lease_until: number }, now: number): "active" | "expired" | "done" {
  if (c.state === "active") return Number(c.lease_until) > now ? "active" : "expired";
  return c.state === "done" ? "done" : "expired";
}

/** What makes two results the same request: the same key with another one of these is refused. */
export function resultHash(r: Pick<ResultInput, "status" | "summary" | "pr" | "details">): string {
  const canonical = JSON.stringify([
    r.status,
    r.summary ?? null,
    r.pr ? [r.pr.number, r.pr.url ?? null, r.pr.branch ?? null, r.pr.headSha ?? null] : null,
    r.details ?? null,
  ]);
  return createHash("sha256").update(canonical).digest("hex");
}

/**
 * The key an incident closed by a failed fix is found by again when an agent's pull request
 * reopens it: the skill's dedupe key, else the alert fingerprint's (`f:`), or a manual incident's own.
 */
export function openKeyOf(inc: Pick<IncidentRow, "dedupe_key" | "fingerprint" | "source">): string {
  return inc.dedupe_key ?? (inc.source === "alertmanager" ? `f:${inc.fingerprint}` : inc.fingerprint);
}

export function createClaims(deps: ClaimsDeps) {
  const { store } = deps;
  const log = deps.log.child({ component: "agent-claims" });

  /** Ends an active lease whose time ran out (once, whoever sees it first) and records it. */
  async function expire(trx: Executor, c: NonNullable<ClaimRow>, now: number): Promise<boolean> {
    const res = await tables(trx)
      .updateTable("external_claims")
      .set({ state: "expired", active_key: null, updated_at: now })
      .where("id", "=", c.id)
      .where("state", "=", "active")
      .where("lease_until", "<=", now)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) return false;
    const h = { target: c.target ?? "", agent: c.agent };
    await appendEvent(
      trx,
      store.dialect,
      {
        type: "agent.lease_expired",
        incidentId: c.incident_id,
        ...ENGINE,
        reason: `the lease of ${named(h)} expired at ${iso(Number(c.lease_until))} without a result`,
        data: { leaseId: c.id, agent: c.agent, target: c.target, deliveryId: c.delivery_id },
        occurredAt: now,
      },
      now,
    );
    return true;
  }

  async function holderOf(db: Executor, incidentId: string) {
    return tables(db).selectFrom("external_claims").selectAll().where("active_key", "=", incidentId).executeTakeFirst();
  }

  const heldError = (c: NonNullable<ClaimRow>) =>
    conflict(
      "claim.held",
      `incident ${c.incident_id} is claimed by ${named({ target: c.target ?? "", agent: c.agent })} until ${iso(Number(c.lease_until))}`,
    );

  /**
   * Claims the incident for `holder`, or renews the holder's lease. `deliveryId` is the delivery
   * whose invitation the agent takes up (authenticated by the caller). 201: a new lease.
   */
  async function claim(
    incidentId: string,
    holder: Holder,
    deliveryId: string | null,
    via: string,
  ): Promise<{ created: boolean; lease: Lease }> {
    try {
      return await store.db.transaction().execute(async (trx) => {
        const now = deps.now();
        const inc = await getIncident(trx, incidentId);
        if (!inc) throw notFound("incident.not_found", `incident ${incidentId} does not exist`);
        if (!isOpen(inc.state as IncidentState) && inc.state !== "failed")
          throw conflict("incident.closed", `incident ${incidentId} is ${inc.state}; there is nothing to claim`);
        const expiresAt = now + deps.leaseTtlMs;
        let held = await holderOf(trx, incidentId);
        if (held && (await expire(trx, held, now))) held = undefined;
        if (held) {
          if (held.target !== holder.target || held.agent !== holder.agent) throw heldError(held);
          await tables(trx)
            .updateTable("external_claims")
            .set({ lease_until: expiresAt, updated_at: now })
            .where("id", "=", held.id)
            .where("state", "=", "active")
            .execute();
          await appendEvent(
            trx,
            store.dialect,
            {
              type: "agent.lease_renewed",
              incidentId,
              ...byAgent(holder),
              reason: `${named(holder)} renewed its lease until ${iso(expiresAt)}`,
              data: {
                leaseId: held.id,
                agent: holder.agent,
                target: holder.target,
                deliveryId,
                leaseUntil: expiresAt,
                via,
              },
              occurredAt: now,
            },
            now,
          );
          return {
            created: false,
            lease: { leaseId: held.id, incidentId, ...holder, deliveryId: held.delivery_id, expiresAt },
          };
        }
        const id = newId("clm", now);
        await tables(trx)
          .insertInto("external_claims")
          .values({
            id,
            incident_id: incidentId,
            task_id: null,
            agent: holder.agent,
            target: holder.target,
            delivery_id: deliveryId,
            active_key: incidentId,
            state: "active",
            lease_until: expiresAt,
            result_status: null,
            result: null,
            created_at: now,
            updated_at: now,
          })
          .execute();
        await appendEvent(
          trx,
          store.dialect,
          {
            type: "agent.claimed",
            incidentId,
            ...byAgent(holder),
            reason: `claimed by ${named(holder)} until ${iso(expiresAt)}`,
            data: { leaseId: id, agent: holder.agent, target: holder.target, deliveryId, leaseUntil: expiresAt, via },
            occurredAt: now,
          },
          now,
        );
        return { created: true, lease: { leaseId: id, incidentId, ...holder, deliveryId, expiresAt } };
      });
    } catch (err) {
      // Two agents claiming at once: the unique active_key lets one in; the other is told who.
      if (!isDuplicateKey(err)) throw err;
      const held = await holderOf(store.db, incidentId);
      if (held && (held.target !== holder.target || held.agent !== holder.agent)) throw heldError(held);
      throw new AppError(
        "conflict",
        "claim.concurrent",
        `incident ${incidentId} was claimed at the same moment; try again`,
        { retryable: true },
      );
    }
  }

  /** The answer already given to this (lease, idempotency key), or null. Refuses the key reused for another result. */
  async function repeated(db: Executor, input: ResultInput, hash: string): Promise<ResultAnswer | null> {
    const prior = await tables(db)
      .selectFrom("agent_results")
      .selectAll()
      .where("claim_id", "=", input.leaseId)
      .where("idempotency_key", "=", input.idempotencyKey)
      .executeTakeFirst();
    if (!prior) return null;
    if (prior.request_hash !== hash)
      throw invalid(
        "result.idempotency_key_reused",
        `idempotency_key ${JSON.stringify(input.idempotencyKey)} was already used for another result of lease ${input.leaseId}; use a new key for a new result`,
      );
    return JSON.parse(prior.response) as ResultAnswer;
  }

  /** The agent's pull request as the host sees it, checked against what the agent reported. */
  async function readPull(pr: PrArtifact): Promise<{ pull: PullRequest; diff: PullDiff }> {
    if (!deps.gitHost)
      throw conflict(
        "gitops.not_configured",
        "no pull-request host is configured: Pitcrew cannot review or merge the pull request",
      );
    const host = deps.gitHost;
    try {
      const pull = await host.getPullRequest(pr.number);
      if (pull.state !== "open")
        throw conflict("result.pull_not_open", `pull request #${pr.number} is ${pull.state}, not open`);
      if (pr.branch && pr.branch !== pull.branch)
        throw invalid("result.pull_mismatch", `pull request #${pr.number} is branch ${pull.branch}, not ${pr.branch}`);
      const diff = await host.pullRequestDiff(pr.number);
      if (pr.headSha && pr.headSha !== diff.headSha) {
        throw conflict(
          "result.head_mismatch",
          `pull request #${pr.number} is at ${diff.headSha.slice(0, 12)}, not at the reported head ${pr.headSha.slice(0, 12)}; report the head it is at`,
        );
      }
      return { pull, diff };
    } catch (err) {
      if (isAppError(err) && err.code === "gitops.pull_not_found")
        throw invalid("result.pull_not_found", `pull request #${pr.number} does not exist on the GitOps repository`);
      if (isAppError(err)) throw err;
      throw unavailable("gitops.unavailable", `could not read pull request #${pr.number}: ${errorMessage(err)}`, err);
    }
  }

  /** Records an agent's result on its lease; `holder` is who the caller authenticated as. */
  async function report(input: ResultInput, holder: Holder): Promise<ResultAnswer> {
    const hash = resultHash(input);
    const first = await getClaim(store.db, input.leaseId);
    if (!first || first.incident_id !== input.incidentId)
      throw notFound("claim.not_found", `lease ${input.leaseId} does not exist for incident ${input.incidentId}`);
    const again = await repeated(store.db, input, hash);
    if (again) return again;
    if (input.status === "pr_created" && !input.pr)
      throw invalid("result.pr_required", "a pr_created result needs pr.number");
    // The host is asked only for a lease that can take the result (record() says why not, otherwise).
    const live =
      leaseState(first, deps.now()) === "active" && first.target === holder.target && first.agent === holder.agent;
    const pull = input.status === "pr_created" && live ? await readPull(input.pr!) : null;
    try {
      const answer = await store.db.transaction().execute((trx) => record(trx, input, holder, hash, pull));
      if (pull) deps.onEnqueued?.();
      return answer;
    } catch (err) {
      // The same result sent twice at once: the first one's answer.
      if (isDuplicateKey(err)) {
        const prior = await repeated(store.db, input, hash);
        if (prior) return prior;
      }
      throw err;
    }
  }

  async function record(
    trx: Executor,
    input: ResultInput,
    holder: Holder,
    hash: string,
    pull: { pull: PullRequest; diff: PullDiff } | null,
  ): Promise<ResultAnswer> {
    const now = deps.now();
    const again = await repeated(trx, input, hash);
    if (again) return again;
    const c = (await getClaim(trx, input.leaseId))!;
    if (c.target !== holder.target || c.agent !== holder.agent)
      throw conflict(
        "claim.not_yours",
        `lease ${c.id} is held by ${named({ target: c.target ?? "", agent: c.agent })}, not by ${named(holder)}`,
      );
    const state = leaseState(c, now);
    if (state === "expired")
      throw conflict(
        "claim.expired",
        `lease ${c.id} expired at ${iso(Number(c.lease_until))}; claim the incident again`,
      );
    if (state === "done")
      throw conflict(
        "claim.finished",
        `lease ${c.id} already ended with a ${c.result_status} result; claim the incident again to report more`,
      );
    if (input.status === "pr_created" && !pull)
      throw new AppError("conflict", "claim.concurrent", `lease ${c.id} changed meanwhile; try again`, {
        retryable: true,
      });
    let inc = (await getIncident(trx, c.incident_id))!;
    const summary = input.summary?.trim() || null;
    const pr = pull
      ? { number: pull.pull.number, url: pull.pull.url, branch: pull.pull.branch, sha: pull.diff.headSha }
      : null;
    await appendEvent(
      trx,
      store.dialect,
      {
        type: "agent.result",
        incidentId: inc.id,
        ...byAgent(holder),
        reason: `${named(holder)} reported ${input.status}${summary ? `: ${summary}` : ""}`.slice(0, 2000),
        data: {
          leaseId: c.id,
          agent: holder.agent,
          target: holder.target,
          status: input.status,
          summary,
          pr,
          details: input.details ?? null,
          idempotencyKey: input.idempotencyKey,
        },
        occurredAt: now,
      },
      now,
    );
    let approvalId: string | null = null;
    if (pull && pr) approvalId = await propose(trx, inc, holder, pr, pull.diff, summary, now);
    const ends = input.status !== "accepted";
    const leaseUntil = ends ? Number(c.lease_until) : now + deps.leaseTtlMs;
    const claimState = ends ? "done" : "active";
    const set = ends
      ? {
          state: claimState,
          active_key: null,
          lease_until: leaseUntil,
          result_status: input.status,
          result: JSON.stringify({ summary, pr, details: input.details ?? null }),
          updated_at: now,
        }
      : { lease_until: leaseUntil, result_status: input.status, updated_at: now };
    await tables(trx)
      .updateTable("external_claims")
      .set(set)
      .where("id", "=", c.id)
      .where("state", "=", "active")
      .execute();
    inc = (await getIncident(trx, c.incident_id))!;
    const answer: ResultAnswer = {
      result_id: `res_${nextResultId(now)}`,
      lease_id: c.id,
      incident_id: inc.id,
      status: input.status,
      incident_state: inc.state,
      lease: { state: claimState, expires_at: iso(leaseUntil) },
      approval_id: approvalId,
    };
    await tables(trx)
      .insertInto("agent_results")
      .values({
        id: answer.result_id,
        claim_id: c.id,
        incident_id: inc.id,
        idempotency_key: input.idempotencyKey,
        request_hash: hash,
        status: input.status,
        response: JSON.stringify(answer),
        created_at: now,
      })
      .execute();
    return answer;
  }

  /** The agent's pull request waits for approval; the incident (escalated, or failed) is `proposed`. */
  async function propose(
    trx: Executor,
    inc: IncidentRow,
    holder: Holder,
    pr: { number: number; url: string; branch: string; sha: string },
    diff: PullDiff,
    summary: string | null,
    now: number,
  ): Promise<string> {
    if (inc.state !== "escalated" && inc.state !== "failed") {
      throw conflict(
        "incident.not_escalated",
        `incident ${inc.id} is ${inc.state}: an agent's pull request is taken when the incident is escalated or its fix failed; report needs_human or declined instead`,
      );
    }
    const extra: { open_key?: string } = {};
    if (inc.state === "failed") {
      const key = openKeyOf(inc);
      const other = await trx.selectFrom("incidents").select("id").where("open_key", "=", key).executeTakeFirst();
      if (other)
        throw conflict(
          "incident.reopened_elsewhere",
          `the alert of incident ${inc.id} is now incident ${other.id}; nothing was attached`,
        );
      extra.open_key = key;
    }
    const risk = "unknown";
    const proposal = {
      incident: inc,
      task: null,
      pr,
      risk,
      skill: null,
      summary: summary ?? `pull request by ${named(holder)}`,
      diff: { summary: diff.summary, excerpt: diff.excerpt },
    };
    return requestMergeApproval(trx, store.dialect, proposal, byAgent(holder), now, "agent.proposed", extra);
  }

  /** Ends the active leases whose time ran out (the sweep); returns how many. */
  async function expireLeases(now = deps.now()): Promise<number> {
    const due = await tables(store.db)
      .selectFrom("external_claims")
      .selectAll()
      .where("state", "=", "active")
      .where("lease_until", "<=", now)
      .orderBy("lease_until")
      .limit(200)
      .execute();
    let n = 0;
    for (const c of due) {
      if (await store.db.transaction().execute((trx) => expire(trx, c, now))) n += 1;
    }
    if (n > 0) log.info({ expired: n }, "agent leases expired");
    return n;
  }

  return { claim, report, expireLeases, getClaim: (id: string) => getClaim(store.db, id) };
}

export type Claims = ReturnType<typeof createClaims>;
