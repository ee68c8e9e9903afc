import type { Generated, Insertable, Selectable, Updateable } from "kysely";

// Times are epoch milliseconds (BIGINT) on both dialects: no timezone conversions, sortable,
// indexable. JSON is stored as text and (de)serialised in the repos, because MySQL, MariaDB and
// SQLite disagree on JSON column types.

export type TaskState = "queued" | "running" | "succeeded" | "failed" | "cancelled";
export const TERMINAL_TASK_STATES: readonly TaskState[] = ["succeeded", "failed", "cancelled"];

export interface IncidentsTable {
  id: string;
  fingerprint: string;
  dedupe_key: string | null;
  /** = fingerprint while the incident is open, NULL once closed: a unique index makes dedupe race-free. */
  open_key: string | null;
  title: string;
  state: string;
  source: string;
  severity: string | null;
  namespace: string | null;
  service: string | null;
  labels: string;
  annotations: string;
  plan: string | null;
  flap_count: number;
  failed_fixes: number;
  truncated_alerts: number;
  alertname: string | null;
  // Defaulted to 0 by the database; optional on insert.
  llm_calls: Generated<number>;
  llm_input_tokens: Generated<number>;
  llm_output_tokens: Generated<number>;
  version: number;
  opened_at: number;
  updated_at: number;
  resolved_at: number | null;
  /** When the incident entered its state, or its work was last queued again: the deadline is this + STUCK_AFTER. */
  state_since: Generated<number>;
  /** How many times the sweeper queued the work of the current state again. */
  requeues: Generated<number>;
  /** From the occurrence's opening to its last resolve; null while open. */
  time_to_resolve_ms: Generated<number | null>;
  /** When the time-to-resolve histogram counted that resolve (once, by one replica). */
  ttr_observed_at: Generated<number | null>;
}

export interface AlertsTable {
  id: string;
  incident_id: string | null;
  fingerprint: string;
  status: string;
  alertname: string;
  labels: string;
  annotations: string;
  starts_at: number;
  ends_at: number | null;
  generator_url: string | null;
  receiver: string | null;
  group_key: string | null;
  received_at: number;
  /** Identifies one alert instance (fingerprint, status, startsAt): repeats update, never add. */
  dedupe: string | null;
  repeat_count: number;
  last_received_at: number | null;
}

export interface TasksTable {
  id: string;
  incident_id: string | null;
  kind: string;
  pool: string;
  state: TaskState;
  payload: string;
  result: string | null;
  error: string | null;
  attempts: number;
  runner_id: string | null;
  idempotency_key: string | null;
  created_by: string;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
  last_event_at: number | null;
}

export interface EventsTable {
  seq: Generated<number>;
  id: string;
  type: string;
  task_id: string | null;
  incident_id: string | null;
  actor: string;
  channel: string;
  reason: string | null;
  data: string;
  occurred_at: number;
  recorded_at: number;
}

export interface ApprovalsTable {
  id: string;
  incident_id: string;
  task_id: string | null;
  state: string;
  risk: string;
  action: string;
  requested_at: number;
  expires_at: number;
  decided_at: number | null;
  decided_by: string | null;
  channel: string | null;
  reason: string | null;
  chat_id: string | null;
  message_id: string | null;
  /** A merge approval's pull request, and the head it was proposed at (the merge is pinned to it). */
  pr_number: number | null;
  pr_branch: string | null;
  head_sha: string | null;
  /** When its merge job was last queued (the claim, or a recovery); null until approved. */
  merge_queued_at: number | null;
  /** The first merge call under the current claim: from then on a resolve no longer revokes it. */
  merge_started_at: number | null;
  /** Times a stuck merge was queued again. */
  merge_requeues: Generated<number>;
  merge_sha: string | null;
  merged_at: number | null;
  /** The change approved: JSON `{files:[{path,added,removed}],added,removed}`, and a short unified diff. */
  diff_summary: Generated<string | null>;
  diff_excerpt: Generated<string | null>;
}

export interface SchedulesTable {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  enabled: number;
  overlap: string;
  task_template: string;
  /** `file` (SCHEDULES_DIR; pruned by a sync) or `mcp` (never pruned by a file sync). */
  source: string;
  next_run_at: number | null;
  last_run_at: number | null;
  created_at: number;
  updated_at: number;
  catch_up: Generated<string>;
  jitter_ms: Generated<number>;
  description: string | null;
  /** Where it came from: the file's path, or `mcp:<who>`. */
  origin: Generated<string>;
}

export interface ScheduleRunsTable {
  id: string;
  schedule_id: string;
  scheduled_for: number;
  task_id: string | null;
  /** fired (its task queued), skipped (overlap, or missed runs not caught up), failed (could not be queued). */
  state: string;
  created_at: number;
  reason: string | null;
  /** For a catch-up run: how many runs were missed while no control plane fired them. */
  missed: Generated<number>;
  fired_at: number | null;
}

export interface RunnersTable {
  id: string;
  host: string;
  version: string;
  pool: string;
  concurrency: number;
  running: number;
  running_task_ids: string;
  totals: string;
  started_at: number;
  last_seen_at: number;
}

export interface WebhookDeliveriesTable {
  id: string;
  target: string;
  event_type: string;
  event_id: string;
  payload: string;
  state: string;
  attempts: number;
  next_attempt_at: number;
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  delivered_at: number | null;
}

export interface ExternalClaimsTable {
  id: string;
  incident_id: string;
  task_id: string | null;
  agent: string;
  /** = incident id while the claim is active, NULL after: one active claim per incident. */
  active_key: string | null;
  state: string;
  lease_until: number;
  result_status: string | null;
  result: string | null;
  created_at: number;
  updated_at: number;
}

export interface OutboxTable {
  id: string;
  /** What to publish: "task" (PITCREW_TASKS) or "event" (PITCREW_EVENTS). */
  topic: string;
  /** The bus de-duplication id (Nats-Msg-Id): the task id for tasks. */
  msg_id: string;
  payload: string;
  attempts: number;
  last_error: string | null;
  available_at: number;
  lease_owner: string | null;
  lease_until: number | null;
  created_at: number;
  sent_at: number | null;
}

export interface SettingsTable {
  key: string;
  value: string;
  updated_by: string;
  updated_at: number;
}

/**
 * A durable delivery to an outside service (a Telegram notice or approval message): pending until
 * sent, with attempts and backoff, then `sent`, `skipped` (nothing to say) or `dead`. `pending_key`
 * is set (and unique) while pending, so changes coalesce into one row; `requests` counts them.
 */
export interface DeliveriesTable {
  id: string;
  channel: string;
  kind: string;
  /** What it is about: an incident id (incident card), an approval id (approval message). */
  ref: string;
  /** Where it went (a chat id); empty while the sender routes it when it sends. */
  target: string;
  payload: string | null;
  pending_key: string | null;
  state: string;
  priority: Generated<number>;
  requests: Generated<number>;
  attempts: Generated<number>;
  next_attempt_at: number;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  sent_at: number | null;
  /** Webhook deliveries: the incident the delivery is about. */
  incident_id: string | null;
  /** Webhook deliveries: hex sha256 of the bearer token the body carries (the token is never stored). */
  token_hash: string | null;
  /** Webhook deliveries: the HTTP status of the last attempt. */
  last_status: number | null;
}

/** Webhook targets registered through MCP (`spec`), and any target a 410 Gone disabled (for `disabled_url`). */
export interface WebhookTargetsTable {
  name: string;
  source: string;
  spec: string | null;
  disabled_at: number | null;
  disabled_url: string | null;
  disabled_reason: string | null;
  created_by: string;
  created_at: number;
  updated_at: number;
}

/** Ed25519 keys of JWS-signed webhooks; `active_key` = 'active' on the key in use, NULL once retired. */
export interface WebhookKeysTable {
  kid: string;
  alg: string;
  public_jwk: string;
  private_jwk: string;
  active_key: string | null;
  created_at: number;
  retired_at: number | null;
}

/** The Telegram message that is an incident's card, edited as the incident moves. */
export interface NoticeMessagesTable {
  incident_id: string;
  chat_id: string;
  message_id: string;
  created_at: number;
  updated_at: number;
}

/** A Reject press's ForceReply prompt: the reply to (chat_id, message_id) from user_id rejects approval_id. */
export interface TelegramPromptsTable {
  chat_id: string;
  message_id: number;
  approval_id: string;
  user_id: number;
  created_at: number;
  expires_at: number;
}

/** Telegram updates already handled, per bot (the token's numeric prefix). */
export interface TelegramUpdatesTable {
  bot_id: string;
  update_id: number;
  processed_at: number;
}

/** A web console sign-in: `id` is the sha256 of the cookie's value; `credential` the sha256 of the token it signed in with. */
export interface ConsoleSessionsTable {
  id: string;
  subject: string;
  /** Space-separated scopes. */
  scopes: string;
  method: "token" | "oidc";
  via: string;
  credential: string | null;
  csrf: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

/** An OIDC sign-in under way: `id` is the sha256 of its state; `browser` the sha256 of the cookie that binds it to one browser. */
export interface ConsoleLoginsTable {
  id: string;
  nonce: string;
  verifier: string;
  browser: string;
  next: string;
  created_at: number;
  expires_at: number;
}

export interface DB {
  incidents: IncidentsTable;
  alerts: AlertsTable;
  tasks: TasksTable;
  events: EventsTable;
  approvals: ApprovalsTable;
  schedules: SchedulesTable;
  schedule_runs: ScheduleRunsTable;
  runners: RunnersTable;
  webhook_deliveries: WebhookDeliveriesTable;
  external_claims: ExternalClaimsTable;
  outbox: OutboxTable;
  settings: SettingsTable;
  deliveries: DeliveriesTable;
  webhook_targets: WebhookTargetsTable;
  webhook_keys: WebhookKeysTable;
  notice_messages: NoticeMessagesTable;
  telegram_prompts: TelegramPromptsTable;
  telegram_updates: TelegramUpdatesTable;
  console_sessions: ConsoleSessionsTable;
  console_logins: ConsoleLoginsTable;
}

export type TaskRow = Selectable<TasksTable>;
export type NewTask = Insertable<TasksTable>;
export type TaskUpdate = Updateable<TasksTable>;
export type EventRow = Selectable<EventsTable>;
export type OutboxRow = Selectable<OutboxTable>;
export type RunnerRow = Selectable<RunnersTable>;
export type IncidentRow = Selectable<IncidentsTable>;
export type AlertRow = Selectable<AlertsTable>;
