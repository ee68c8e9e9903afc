import type { ToolDef } from "../tool.ts";
import { systemStatus } from "./system-status.ts";
import { submitTask } from "./submit-task.ts";
import { getTask } from "./get-task.ts";
import { listTasks } from "./list-tasks.ts";
import { cancelTask } from "./cancel-task.ts";
import { retryTask } from "./retry-task.ts";
import { clearQueue } from "./clear-queue.ts";
import { listEvents } from "./list-events.ts";
import { getTaskProgress } from "./get-task-progress.ts";
import { getLatestEvent } from "./get-latest-event.ts";
import { listIncidents } from "./list-incidents.ts";
import { getIncident } from "./get-incident.ts";
import { createIncident } from "./create-incident.ts";
import { analyzeIncident } from "./analyze-incident.ts";
import { approveAction } from "./approve-action.ts";
import { rejectAction } from "./reject-action.ts";
import { listApprovals } from "./list-approvals.ts";
import { rebuildFix } from "./rebuild-fix.ts";
import { escalateIncident } from "./escalate-incident.ts";
import { resolveIncident } from "./resolve-incident.ts";
import { addIncidentNote } from "./add-incident-note.ts";
import { listSkills } from "./list-skills.ts";
import { getSkill } from "./get-skill.ts";
import { runSkill } from "./run-skill.ts";
import { reloadSkills } from "./reload-skills.ts";
import { fleetStatus } from "./fleet-status.ts";
import { listRunners } from "./list-runners.ts";
import { pauseAutomation } from "./pause-automation.ts";
import { resumeAutomation } from "./resume-automation.ts";
import { listWebhooks } from "./list-webhooks.ts";
import { registerWebhook } from "./register-webhook.ts";
import { deleteWebhook } from "./delete-webhook.ts";
import { listDeliveries } from "./list-deliveries.ts";
import { redeliver } from "./redeliver.ts";
import { rotateWebhookKey } from "./rotate-webhook-key.ts";
import { listSchedules } from "./list-schedules.ts";
import { getSchedule } from "./get-schedule.ts";
import { createSchedule } from "./create-schedule.ts";
import { updateSchedule } from "./update-schedule.ts";
import { deleteSchedule } from "./delete-schedule.ts";
import { runSchedule } from "./run-schedule.ts";
import { syncSchedules } from "./sync-schedules.ts";

// Every tool the MCP server offers; one file per tool.
export const allTools: ToolDef[] = [
  systemStatus,
  submitTask,
  getTask,
  listTasks,
  cancelTask,
  retryTask,
  clearQueue,
  listEvents,
  getTaskProgress,
  getLatestEvent,
  listIncidents,
  getIncident,
  createIncident,
  analyzeIncident,
  listApprovals,
  approveAction,
  rejectAction,
  rebuildFix,
  escalateIncident,
  resolveIncident,
  addIncidentNote,
  listSkills,
  getSkill,
  runSkill,
  reloadSkills,
  fleetStatus,
  listRunners,
  pauseAutomation,
  resumeAutomation,
  listWebhooks,
  registerWebhook,
  deleteWebhook,
  listDeliveries,
  redeliver,
  rotateWebhookKey,
  listSchedules,
  getSchedule,
  createSchedule,
  updateSchedule,
  deleteSchedule,
  runSchedule,
  syncSchedules,
];
