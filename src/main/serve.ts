import { randomBytes } from "node:crypto";
import type { Config } from "../config/load.ts";
import { createEventIngester } from "../events/ingester.ts";
import { buildHttpApp } from "../http/app.ts";
import { type AlertIntake, createAlertIntake } from "../alerts/intake.ts";
import type { AlertmanagerAuth } from "../alerts/route.ts";
import { createAnalysisWorker } from "../incidents/analysis.ts";
import { errorMessage } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { loadOrCreateToken } from "../shared/secrets.ts";
import { VERSION } from "../shared/version.ts";
import { createPlanner } from "./planner.ts";
import { createSkillSync } from "../skills/sync.ts";
import { migrateWithRetry } from "../store/db.ts";
import { handleDeadLetters } from "../tasks/dead-letter.ts";
import { createTaskReconciler } from "../tasks/reconciler.ts";
import { requeuePendingTasks } from "../tasks/requeue.ts";
import { CONTROL_POOL, createControlJobs } from "../tasks/control-jobs.ts";
import { createPacer } from "../shared/pacer.ts";
import { createQueueDepthReader } from "../bus/depth.ts";
import { createScheduleService } from "../schedules/service.ts";
import { createScheduler, SCHEDULE_SKILL_JOB } from "../schedules/scheduler.ts";
import { createScheduleSkillJob } from "../schedules/skill-job.ts";
import { createApprovalService } from "../approvals/service.ts";
import { createTelegramRuntime } from "../approvals/telegram-start.ts";
import { createRunner, runnerOptions } from "../../runner/worker.ts";
import { buildExecutors, checkAgentIdentity } from "../../runner/executors/index.ts";
import { missingAgentClis, warnMissingAgentClis } from "../skills/agent-clis.ts";
import { createGitHost } from "./gitops.ts";
import { createDeps } from "./deps.ts";
import { createFleetMonitor } from "../fleet/monitor.ts";
import { createNotices } from "../notify/service.ts";
import { createWebhooks } from "../webhooks/service.ts";
import { WEBHOOK } from "../webhooks/repo.ts";
import { createClaims } from "../webhooks/claims.ts";
import { createVerifier } from "../incidents/verifier.ts";
import { createSweeper } from "../incidents/sweeper.ts";
import { onShutdownSignal } from "./signals.ts";
import { printBanner, type AlertmanagerTokenSource } from "./banner.ts";
import { describeSetup } from "../system/setup.ts";
import { createMcpAuth, mcpTokens } from "../mcp/auth.ts";
import type { McpDeps } from "../mcp/tool.ts";
import type { InlineDeps } from "../skills/inline.ts";
import type { GitHost } from "../gitops/port.ts";

/** The webhook's credentials, and where the token came from (the banner shows a generated one once). */
export function alertmanagerAuth(
  config: Config,
  log: Logger,
): { auth: AlertmanagerAuth; tokenSource?: AlertmanagerTokenSource } {
  if (config.alertmanager.auth === "none") {
    log.warn("ALERTMANAGER_AUTH=none: the AlertManager webhook accepts requests without credentials");
    return { auth: { mode: "none" } };
  }
  const user = config.alertmanager.user;
  if (config.alertmanager.token)
    return { auth: { mode: "token", token: config.alertmanager.token, user }, tokenSource: { from: "env" } };
  const t = loadOrCreateToken(config.dataDir, "alertmanager");
  if (t.created) log.info({ path: t.path }, "generated the AlertManager webhook token");
  return {
    auth: { mode: "token", token: t.token, user },
    tokenSource: { from: "file", path: t.path, created: t.created },
  };
}

/** The share of the time analysis gets during an alert storm (the intake has the rest). */
const ANALYSIS_STORM_SHARE = 0.2;

export async function serve(config: Config, log: Logger): Promise<void> {
  const { deps, relay, onTerminal } = await createDeps(config, log);
  const { store, queue } = deps;
  const embedded = queue.kind === "memory";

  const applied = await migrateWithRetry(store, log);
  if (applied.length > 0) log.info({ migrations: applied }, "migrations applied");

  if (embedded) {
    const requeued = await requeuePendingTasks(store, queue);
    if (requeued > 0) log.info({ requeued }, "re-queued tasks left pending by the last run");
  }

  // Every replica uses the skill set published in the database. Start-up, SIGHUP and the MCP
  // reload_skills tool read the folder and publish it; the others follow within
  // SKILLS_SYNC_INTERVAL, and before each AlertManager payload.
  const skillSync = createSkillSync({ store, log, now: deps.now, dir: config.skillsDir });
  const reloadSkills = (
    by: { actor: string; channel: string } = { actor: `control-plane:${config.runner.id}`, channel: "system" },
  ) => skillSync.publish(by);
  const firstLoad = await reloadSkills();
  skillSync.start(config.skillsSyncIntervalMs);
  const skills = skillSync.skills;
  const tasks = deps.tasks;
  const { metrics } = deps;
  const ingester = createEventIngester({ store, queue, log, now: deps.now, onTerminal, metrics }).start();
  const deadLetters = handleDeadLetters({ queue, tasks, log, metrics });
  // Remote skills name the env var that holds their signing secret.
  const inline: InlineDeps = { argocd: config.argocd, secrets: (name) => process.env[name] };
  let intake: AlertIntake | undefined;
  const analysisWorker = createAnalysisWorker({
    store,
    queue,
    log,
    now: deps.now,
    skills,
    planner: await createPlanner(config, log, store, metrics),
    guardrails: { ...config.guardrails, stuckAfterMs: config.sweep.stuckAfterMs },
    fixPool: config.runner.pool,
    inline,
    onEnqueued: () => relay.kick(),
    metrics,
    // During an alert storm analysis takes turns with the intake (created below): the alerts first.
    pacer: createPacer({ busy: () => intake?.busy() ?? false, share: ANALYSIS_STORM_SHARE }),
  });
  // The in-process runners start coding agents: as whom, and whether the skills' CLIs are there.
  const agentClis = embedded ? () => missingAgentClis(skills(), config.agents, process.env.PATH ?? "") : undefined;
  if (embedded) {
    checkAgentIdentity(config.agents, process.getuid?.(), log);
    warnMissingAgentClis(agentClis!(), log);
  }
  const gitHost = await openGitHost(config, log, embedded);
  // Deciding, merging and cleaning up pull requests: one service for MCP, its jobs and the sweeper.
  const approvals = createApprovalService({
    store,
    log,
    now: deps.now,
    skills,
    gitHost,
    fixPool: config.runner.pool,
    inline,
    deleteMergedBranches: config.gitops.deleteMergedBranches,
    sweep: config.sweep,
    onEnqueued: () => relay.kick(),
  });
  // Schedules: files synced at start; the scheduler fires each run once whichever replicas run.
  const schedules = createScheduleService({ store, log, now: deps.now, dir: config.schedulesDir });
  await schedules.sync({ actor: `control-plane:${config.runner.id}`, channel: "system" });
  const scheduler = createScheduler({
    store,
    log,
    now: deps.now,
    skills,
    config,
    inline,
    onQueued: () => relay.kick(),
  });
  // One consumer of the control pool runs every kind of control-plane job.
  const controlJobs = createControlJobs(
    { store, queue, log, now: deps.now, onDone: () => relay.kick(), metrics },
    {
      "incident.analyze": analysisWorker.job,
      ...approvals.jobs,
      [SCHEDULE_SKILL_JOB]: createScheduleSkillJob({ store, now: deps.now, skills, inline }),
    },
  );
  const analysis = controlJobs.start(config.analysisConcurrency);
  relay.start();
  const fleet = createFleetMonitor({ store, log, now: deps.now, heartbeatMs: config.runner.heartbeatMs, metrics });
  fleet.start();
  const depth = createQueueDepthReader({ queue, log, metrics }, { pools: [config.runner.pool, CONTROL_POOL] });
  depth.start();
  // Telegram notices and approval messages: durable rows, sent by one replica at a time (dropped
  // when TELEGRAM_BOT_TOKEN is unset).
  // Signed webhooks to external agents: targets from WEBHOOKS_DIR and MCP, sent by the same deliverer.
  const webhooks = createWebhooks(config, { store, log, now: deps.now, env: (name) => process.env[name] });
  await webhooks.registry.reload();
  // External agents' claims and results, the callbacks of those webhooks.
  const agentClaims = createClaims({
    store,
    log,
    now: deps.now,
    leaseTtlMs: config.webhooks.leaseTtlMs,
    gitHost,
    onEnqueued: () => relay.kick(),
  });
  const notices = createNotices(
    config,
    { store, log, now: deps.now, owner: `${config.runner.id}-${randomBytes(4).toString("hex")}`, metrics },
    { [WEBHOOK]: webhooks.sender },
  );
  notices.start();
  // Dead letters whose advisory nobody saw, and tasks whose runner vanished for good.
  const reconciler = createTaskReconciler(
    { store, tasks, log, now: deps.now, busHealthy: async () => (await queue.health()).ok },
    {
      ackWaitMs: config.task.ackWaitMs,
      maxDeliver: config.task.maxDeliver,
      heartbeatMs: config.runner.heartbeatMs,
      intervalMs: config.sweep.intervalMs,
    },
  );
  reconciler.start();
  // Verification windows (and reverts with verify.on_failure: revert), and the time-to-resolve histogram.
  const verifier = createVerifier({
    store,
    log,
    now: deps.now,
    skills,
    fixPool: config.runner.pool,
    observeResolved: (seconds) => deps.metrics.timeToResolve.observe(seconds),
    onEnqueued: () => relay.kick(),
  });
  verifier.start();
  // Incidents stranded in a transient state get their work queued again, or a person.
  const sweeper = createSweeper({
    store,
    log,
    now: deps.now,
    skills,
    settings: config.sweep,
    onTerminal,
    onQueued: () => relay.kick(),
    metrics,
    // Approved merges that never finished: queued again, then given up and escalated.
    extra: [
      async (now) => {
        const r = await approvals.recoverStuckMerges(now);
        return r.requeued + r.gaveUp;
      },
      // Agents' leases that ran out without a result.
      (now) => agentClaims.expireLeases(now),
    ],
  });
  sweeper.start();
  scheduler.start();

  const runner = embedded
    ? createRunner(
        {
          queue,
          log: log.child({ component: "runner" }),
          executors: await buildExecutors(config, { host: gitHost!, env: process.env }),
        },
        runnerOptions(config, `embedded-${config.runner.id}`, VERSION),
      )
    : undefined;
  runner?.start();

  const { auth, tokenSource } = alertmanagerAuth(config, log);
  intake = createAlertIntake({
    store,
    log,
    now: deps.now,
    skills,
    settings: {
      flapWindowMs: config.guardrails.flapWindowMs,
      flapLimit: config.guardrails.flapLimit,
      maxFailedFixes: config.guardrails.maxFailedFixes,
      labels: config.labels,
      maxAlerts: config.alertmanager.maxAlerts,
    },
    onCommitted: () => relay.kick(),
  });
  const mcpDeps: McpDeps = {
    config,
    log,
    store,
    queue,
    tasks,
    now: deps.now,
    skills,
    reloadSkills,
    analyze: (incidentId) => analysisWorker.analyze(incidentId),
    gitHost,
    inline,
    approvals,
    missingAgentClis: agentClis,
    schedules: { service: schedules, scheduler },
    kick: () => relay.kick(),
  };
  const mcpToken = mcpTokens(config);
  if (mcpToken.generated?.created) log.info({ path: mcpToken.generated.path }, "generated the MCP admin token");
  const mcpAuth = createMcpAuth({ tokens: mcpToken.tokens, oidc: config.mcp.oidc, log });

  // Telegram approvals (buttons, commands): a webhook when PUBLIC_URL is https, else long polling.
  const telegram = createTelegramRuntime({
    config,
    store,
    log,
    now: deps.now,
    approvals,
    queue,
    kick: () => relay.kick(),
  });
  // The web console: the same deps, tokens and JWT checks as /mcp.
  const consoleDeps = {
    deps: mcpDeps,
    mcpAuth,
    tokens: mcpToken.tokens,
    agentPath: embedded ? (process.env.PATH ?? "") : undefined,
  };
  const app = await buildHttpApp({
    log,
    store,
    queue,
    metrics: deps.metrics,
    bodyLimit: config.bodyLimit,
    requestTimeoutMs: config.requestTimeoutMs,
    alertmanager: {
      bodyLimit: config.alertmanager.bodyLimit,
      intake: {
        ...intake,
        receive: async (payload) => (await skillSync.refresh().catch(() => false), intake.receive(payload)),
      },
      auth,
    },
    mcp: { deps: mcpDeps, auth: mcpAuth },
    telegram: telegram?.http,
    jwks: { store, now: deps.now },
    callbacks: {
      store,
      now: deps.now,
      claims: agentClaims,
      targets: webhooks.registry,
      leaseTtlMs: config.webhooks.leaseTtlMs,
    },
    console: consoleDeps,
  });
  await app.listen({ port: config.port, host: config.host });
  telegram?.start();
  printBanner(config, {
    auth,
    tokenSource,
    mcp: mcpToken.generated,
    setup: describeSetup({
      config,
      dialect: store.dialect,
      queueKind: queue.kind,
      skills: skills(),
      skillProblems: firstLoad.problems,
      searchPath: process.env.PATH ?? "",
    }),
  });

  process.on("SIGHUP", () => {
    // A folder or file that cannot be read is reported; the skills in use stay.
    reloadSkills({ actor: "signal:SIGHUP", channel: "system" }).catch((err) =>
      log.error({ err: { message: errorMessage(err) } }, "skills not reloaded"),
    );
    webhooks.registry
      .reload()
      .catch((err) => log.error({ err: { message: errorMessage(err) } }, "webhook targets not reloaded"));
  });

  onShutdownSignal(log, config.shutdownTimeoutMs, async () => {
    // Order: stop taking requests, let running work finish and report, stop the loops that
    // move data, then close connections.
    await app.close();
    await telegram?.stop();
    await runner?.stop();
    await analysis.stop();
    fleet.stop();
    depth.stop();
    await reconciler.stop();
    verifier.stop();
    await sweeper.stop();
    await scheduler.stop();
    await notices.stop();
    await relay.stop();
    await deadLetters.stop();
    await ingester.stop();
    await queue.close();
    await store.close();
  });
}

/**
 * The pull-request host: the embedded runner needs it; in distributed mode the control plane uses
 * it to merge approved pull requests and close abandoned ones, so a host that cannot be set up
 * there is logged and left out (those jobs then fail with gitops.not_configured).
 */
async function openGitHost(config: Config, log: Logger, required: boolean): Promise<GitHost | undefined> {
  if (required) return createGitHost(config, log);
  try {
    return await createGitHost(config, log);
  } catch (err) {
    log.warn(
      { error: errorMessage(err) },
      "GitOps host not available: approved pull requests cannot be merged nor abandoned ones closed",
    );
    return undefined;
  }
}
