// The one definition of crm-webhook's public URL, used where HubSpot's v2/v3 signatures are
// checked (the URI HubSpot signed) and where subscriptions are registered (the URL the CRMs are
// told to call): CRM_WEBHOOK_PUBLIC_URL when set (a custom domain, a tunnel in front of a local
// stack), else SUPABASE_URL + /functions/v1/crm-webhook (the project's URL on the platform and
// the local gateway's in the local stack), else null. No trailing slash.

export type Env = (name: string) => string | undefined;

const denoEnv: Env = (name) => Deno.env.get(name);

export function webhookBaseUrl(env: Env = denoEnv): string | null {
  const explicit = env("CRM_WEBHOOK_PUBLIC_URL");
  if (explicit) return explicit.replace(/\/+$/, "");
  const project = env("SUPABASE_URL");
  return project ? `${project.replace(/\/+$/, "")}/functions/v1/crm-webhook` : null;
}

/** The route of one provider under the base: /hubspot, /pipedrive, /salesforce/<token>. */
export function webhookRouteUrl(base: string, route: string): string {
  return `${base}${route.startsWith("/") ? route : `/${route}`}`;
}
