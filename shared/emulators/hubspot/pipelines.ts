/**
 * GET /crm/v3/pipelines/deals[/{pipelineId}]: the two deal pipelines the
 * sandbox uses (read-only), so adapters can map stage ids to labels.
 * Docs: https://developers.hubspot.com/docs/api/crm/pipelines
 */
import { json } from "../common/http.ts";
import type { HubSpotEmulator } from "./emulator.ts";
import { DEAL_STAGES } from "./properties.ts";

const LABELS: Record<string, string> = {
  appointmentscheduled: "Appointment Scheduled",
  qualifiedtobuy: "Qualified To Buy",
  presentationscheduled: "Presentation Scheduled",
  decisionmakerboughtin: "Decision Maker Bought-In",
  contractsent: "Contract Sent",
  closedwon: "Closed Won",
  closedlost: "Closed Lost",
  renewalupcoming: "Renewal upcoming",
  renewalquoted: "Renewal quoted",
  renewalwon: "Renewed",
  renewallost: "Churned",
};
const PROBABILITY: Record<string, string> = {
  appointmentscheduled: "0.2",
  qualifiedtobuy: "0.4",
  presentationscheduled: "0.6",
  decisionmakerboughtin: "0.8",
  contractsent: "0.9",
  closedwon: "1.0",
  closedlost: "0.0",
  renewalupcoming: "0.5",
  renewalquoted: "0.7",
  renewalwon: "1.0",
  renewallost: "0.0",
};

function pipeline(id: string, order: number) {
  const at = "2023-01-01T00:00:00.000Z";
  return {
    id,
    label: id === "default" ? "Sales Pipeline" : "Renewals",
    displayOrder: order,
    createdAt: at,
    updatedAt: at,
    archived: false,
    stages: DEAL_STAGES[id].map((s, i) => ({
      id: s,
      label: LABELS[s],
      displayOrder: i,
      metadata: { isClosed: String(/won$|lost$/.test(s)), probability: PROBABILITY[s] },
      createdAt: at,
      updatedAt: at,
      archived: false,
      writePermissions: "CRM_PERMISSIONS_ENFORCEMENT",
    })),
  };
}

export function registerPipelineRoutes(hs: HubSpotEmulator): void {
  const all = () => Object.keys(DEAL_STAGES).map((id, i) => pipeline(id, i));
  hs.route("GET", "/crm/v3/pipelines/:objectType", (ctx) => {
    if (ctx.params.objectType !== "deals") return json({ results: [] });
    return json({ results: all() });
  });
  hs.route("GET", "/crm/v3/pipelines/:objectType/:pipelineId", (ctx) => {
    const p = ctx.params.objectType === "deals"
      ? all().find((x) => x.id === ctx.params.pipelineId)
      : undefined;
    if (!p) hs.fail(404, "OBJECT_NOT_FOUND", `Pipeline ${ctx.params.pipelineId} not found`);
    return json(p);
  });
}
