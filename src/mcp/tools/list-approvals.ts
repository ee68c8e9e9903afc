import { z } from "zod";
import { defineTool } from "../tool.ts";
import { listApprovals as queryApprovals } from "../../approvals/repo.ts";
import { ApprovalView, approvalView, cursorIn, cursorOf, limitIn, nextCursorOut } from "../views.ts";

const STATES = ["pending", "approved", "rejected", "cancelled", "expired", "superseded"] as const;

export const listApprovals = defineTool({
  name: "list_approvals",
  title: "List approvals",
  description:
    "Lists approvals, newest first: by default the pending ones that can still be decided, each with its pull request, the head it was requested for, the diff summary (files, lines added and removed), a short excerpt of the diff, and its expiry. Decide with approve_action or reject_action. Paginated: pass next_cursor back as cursor.",
  scope: "read",
  input: {
    state: z
      .enum([...STATES, "all"])
      .default("pending")
      .describe("Only approvals in this state (default pending, unexpired); `all` for every state."),
    incident_id: z.string().max(40).optional().describe("Only this incident's approvals."),
    cursor: cursorIn,
    limit: limitIn(200, 50),
  },
  output: {
    approvals: z.array(ApprovalView).describe("Approvals, newest first."),
    next_cursor: nextCursorOut,
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    const rows = await queryApprovals(deps.store.db, {
      state: args.state === "all" ? undefined : args.state,
      incidentId: args.incident_id,
      afterId: cursorOf("approval", args.cursor, "apr"),
      limit: args.limit,
      now: deps.now(),
    });
    const next = rows.length === args.limit ? rows[rows.length - 1]!.id : null;
    const what = args.state === "all" ? "approval(s)" : `${args.state} approval(s)`;
    return {
      summary: `${rows.length} ${what}${next ? "; more with next_cursor" : ""}`,
      data: { approvals: rows.map(approvalView), next_cursor: next },
    };
  },
});
