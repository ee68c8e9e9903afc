import { errorMessage } from "../shared/errors.ts";
import { VERSION } from "../shared/version.ts";
import { getPause, setPause } from "../system/settings.ts";
import { requeueDetected } from "../incidents/queueing.ts";
import { countIncidentsByState } from "../incidents/repo.ts";
import { OPEN_STATES } from "../incidents/lifecycle.ts";
import { findApproval, type ApprovalRow } from "./repo.ts";
import { incidentText, openIncidentsText } from "./telegram-views.ts";
import {
  approvalRef,
  escapeHtml as e,
  personOf,
  type Command,
  type TelegramChat,
  type TelegramMessage,
  type TelegramUser,
} from "./telegram-parse.ts";
import type { Admission, Attempt, TelegramChannelDeps } from "./telegram.ts";

// The chat commands. Each one adapts: it reads its arguments, calls the domain (the approvals
// service, the pause switch, the repos) and answers with a plain message. Only approvers in
// allowed chats may use them; /help (and /start) answer anyone, with their user id and the chat
// id, which is how one finds the ids to configure.

export type CommandContext = TelegramChannelDeps & {
  say(chatId: number, html: string, replyTo?: number): Promise<unknown>;
  admit(at: Attempt, chat: TelegramChat | undefined, needPending: boolean): Promise<Admission>;
  approveAs(at: Attempt, approval: ApprovalRow, told: (text: string) => Promise<void>): Promise<string | null>;
  rejectAs(at: Attempt, approval: ApprovalRow, reason: string | null): Promise<string | null>;
  refuse(at: Attempt, why: string, approval?: ApprovalRow): Promise<void>;
  chatAllowed(c: TelegramChat | undefined): boolean;
  isApprover(u: TelegramUser): boolean;
};

const HELP = [
  "<b>Pitcrew commands</b> (approvers, in the configured chats)",
  "/status — health, pause switch, open incidents, pending approvals",
  "/incidents — the open incidents",
  "/incident &lt;id&gt; — one incident: state, plan, approval, latest steps",
  "/approve &lt;id&gt; — approve an approval (apr_…) or an incident's pending one (inc_…)",
  "/reject &lt;id&gt; [reason] — reject it, with the reason",
  "/pause [reason] — stop automatic analysis and fixes",
  "/resume — resume them",
  "/help — this list",
  "",
  "Approval messages have Approve / Reject / Details buttons; Reject asks for the reason.",
].join("\n");

export function createTelegramCommands(ctx: CommandContext) {
  const { store } = ctx;
  const actorOf = (u: TelegramUser) => ({ actor: `telegram:${u.id}`, channel: "telegram" });

  async function status(): Promise<string> {
    const [db, queue] = await Promise.allSettled([store.ping(1500), ctx.queue.health()]);
    const dbText = db.status === "fulfilled" ? "ok" : `DOWN (${errorMessage(db.reason)})`;
    const queueText =
      queue.status === "rejected"
        ? `DOWN (${errorMessage(queue.reason)})`
        : queue.value.ok
          ? "ok"
          : `DOWN (${queue.value.reason})`;
    const mode = ctx.queue.kind === "memory" ? "embedded" : "distributed";
    const lines = [`<b>Pitcrew ${e(VERSION)}</b>, ${mode}`, `database: ${e(dbText)} · queue: ${e(queueText)}`];
    if (db.status === "fulfilled") {
      const pause = await getPause(store.db);
      const why = pause.reason ? `: ${e(pause.reason.slice(0, 300))}` : "";
      lines.push(pause.paused ? `automation <b>PAUSED</b> by ${e(pause.by ?? "?")}${why}` : "automation running");
      const byState = await countIncidentsByState(store.db);
      const open = OPEN_STATES.map((s) => [s, byState[s] ?? 0] as const).filter(([, n]) => n > 0);
      lines.push(
        `open incidents: ${open.reduce((n, [, c]) => n + c, 0)}${open.length ? ` (${open.map(([s, n]) => `${n} ${s}`).join(", ")})` : ""}`,
      );
      const pending = await store.db
        .selectFrom("approvals")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("state", "=", "pending")
        .where("expires_at", ">", ctx.now())
        .executeTakeFirst();
      lines.push(`pending approvals: ${Number(pending?.n ?? 0)}`);
    }
    return lines.join("\n");
  }

  /** /approve and /reject: the approval by id, or the incident's pending one. */
  async function decide(updateId: number, m: TelegramMessage, verb: "approve" | "reject", args: string): Promise<void> {
    const [id = "", ...rest] = args.split(/\s+/);
    const ref = approvalRef(id);
    const usage = `Usage: <code>/${verb} &lt;approval or incident id&gt;${verb === "reject" ? " [reason]" : ""}</code>`;
    if (!ref) return void (await ctx.say(m.chat.id, usage, m.message_id));
    const from = m.from!;
    const a = await findApproval(store.db, ref).catch(() => undefined);
    const at: Attempt = {
      updateId,
      user: from,
      chatId: m.chat.id,
      data: `/${verb} ${id}`,
      approvalId: a?.id ?? ("approvalId" in ref ? ref.approvalId : null),
    };
    if (!a) {
      await ctx.refuse(
        at,
        `${"approvalId" in ref ? `approval ${ref.approvalId} does not exist` : `incident ${ref.incidentId} has no approval`}`,
      );
      return void (await ctx.say(m.chat.id, `Refused: no such approval (<code>${e(id)}</code>).`, m.message_id));
    }
    const adm = await ctx.admit(at, m.chat, true);
    if (!adm.ok) return void (await ctx.say(m.chat.id, `Refused: ${e(adm.why)}`, m.message_id));
    if (verb === "approve") {
      const refused = await ctx.approveAs(
        at,
        a,
        async (text) => void (await ctx.say(m.chat.id, e(text), m.message_id)),
      );
      if (refused) await ctx.say(m.chat.id, `Refused: ${e(refused)}`, m.message_id);
      return;
    }
    const reason = rest.join(" ").trim().slice(0, 1000) || null;
    const refused = await ctx.rejectAs(at, a, reason);
    const done = `Rejected <code>${e(a.id)}</code> by ${e(personOf(from))}${reason ? `: ${e(reason)}` : ""}`;
    await ctx.say(m.chat.id, refused ? `Refused: ${e(refused)}` : done, m.message_id);
  }

  async function pause(m: TelegramMessage, paused: boolean, args: string): Promise<string> {
    const before = await getPause(store.db);
    const by = {
      ...actorOf(m.from!),
      reason: args.slice(0, 1000) || `${paused ? "paused" : "resumed"} by ${personOf(m.from!)}`,
    };
    const now = ctx.now();
    await setPause(store, paused, by, now);
    if (paused)
      return `Automation paused${before.paused ? " (it already was)" : ""}: incidents are recorded but not analysed or fixed until /resume.`;
    const requeued = await requeueDetected(store, now, actorOf(m.from!));
    if (requeued > 0) ctx.kick();
    return `Automation resumed${before.paused ? "" : " (it was not paused)"}; analysis queued again for ${requeued} waiting incident(s).`;
  }

  /** Runs a command from a person (not a bot) in any chat. */
  async function run(updateId: number, m: TelegramMessage, cmd: Command): Promise<void> {
    const from = m.from!;
    const reply = (html: string) => ctx.say(m.chat.id, html, m.message_id);
    if (cmd.name === "help" || cmd.name === "start") {
      const role = ctx.isApprover(from) ? " (an approver)" : " (not in TELEGRAM_APPROVER_IDS)";
      const where = ctx.chatAllowed(m.chat) ? "" : " (not a configured chat)";
      const who = `Your Telegram user id: <code>${from.id}</code>${role}. This chat's id: <code>${m.chat.id}</code>${where}.`;
      return void (await reply(`${HELP}\n\n${who}`));
    }
    // Elsewhere the bot stays quiet: it only works in the chats it was configured for.
    if (!ctx.chatAllowed(m.chat)) return;
    if (!ctx.isApprover(from)) {
      if (cmd.name === "approve" || cmd.name === "reject") {
        const ref = approvalRef(cmd.args.split(/\s+/)[0] ?? "");
        const approvalId = ref && "approvalId" in ref ? ref.approvalId : null;
        const at: Attempt = { updateId, user: from, chatId: m.chat.id, data: `/${cmd.name} ${cmd.args}`, approvalId };
        await ctx.refuse(at, `${personOf(from)} is not an approver (TELEGRAM_APPROVER_IDS)`);
      }
      const id = `<code>${from.id}</code>`;
      return void (await reply(
        `Refused: you are not an approver. Your Telegram user id is ${id}; an admin can add it to TELEGRAM_APPROVER_IDS.`,
      ));
    }
    switch (cmd.name) {
      case "status":
        return void (await reply(await status()));
      case "incidents":
        return void (await reply(await openIncidentsText(store.db)));
      case "incident": {
        const id = cmd.args.split(/\s+/)[0] ?? "";
        const text = id ? await incidentText(store.db, id) : null;
        return void (await reply(
          text ?? (id ? `No incident <code>${e(id.slice(0, 60))}</code>.` : "Usage: <code>/incident &lt;id&gt;</code>"),
        ));
      }
      case "approve":
      case "reject":
        return decide(updateId, m, cmd.name, cmd.args);
      case "pause":
      case "resume":
        return void (await reply(e(await pause(m, cmd.name === "pause", cmd.args))));
      default:
        return void (await reply(`Unknown command /${e(cmd.name)}. /help lists the commands.`));
    }
  }

  return { run };
}
