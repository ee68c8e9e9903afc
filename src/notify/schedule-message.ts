import { escapeHtml, fitHtml, formatDateTime } from "./format.ts";

// The message about a scheduled run that failed: which schedule, which task, why, and when. It has
// no incident, so it goes to the default chat and is sent once (nothing later edits it).

export type ScheduleFailure = {
  schedule: string;
  taskId: string | null;
  kind: string | null;
  reason: string | null;
  at: number;
};

export function renderScheduleFailure(f: ScheduleFailure): string {
  return fitHtml([
    `⚠️ <b>Scheduled run failed</b>: <code>${escapeHtml(f.schedule)}</code>\n`,
    f.taskId
      ? `Task <code>${escapeHtml(f.taskId)}</code>${f.kind ? ` (${escapeHtml(f.kind)})` : ""}, ${escapeHtml(formatDateTime(f.at))}\n`
      : `${escapeHtml(formatDateTime(f.at))}\n`,
    { text: f.reason ?? "no reason given", max: 3000, min: 40, open: "<pre>", close: "</pre>" },
  ]);
}
