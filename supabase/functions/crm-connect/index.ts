// crm-connect: users connect, check and disconnect their CRM accounts.
//   POST /crm-connect/start       {provider, redirect_to?} → {authorize_url}   (user JWT)
//   GET  /crm-connect/callback    the provider's redirect (authenticated by its state)
//   POST /crm-connect/token       {provider: hubspot|pipedrive, token}          (user JWT)
//   GET  /crm-connect/status      [?connection_id=] the account's connections  (user JWT)
//   POST /crm-connect/disconnect  {connection_id, purge?}                       (user JWT)
//   POST /crm-connect/webhook-url {connection_id} a Salesforce listener URL     (user JWT)
// verify_jwt is off in config.toml (the callback cannot carry a JWT); the function verifies
// the user's JWT itself on every other route (_shared/connect/handler.ts). Configuration:
// _shared/connect/config.ts. Browsers may call it from the origins in CRM_CORS_ORIGINS
// (_shared/http/cors.ts), as crm-fetch-live.
import { authFromEnv } from "../_shared/auth.ts";
import { keyOrResponse } from "../_shared/crypto.ts";
import { connect } from "../_shared/db.ts";
import { corsFromEnv, preflight, withCors } from "../_shared/http/cors.ts";
import { connectConfigFromEnv, stateKey } from "../_shared/connect/config.ts";
import { createConnectHandler } from "../_shared/connect/handler.ts";
import { webhookBaseUrl } from "../_shared/webhooks/public_url.ts";

const log = (msg: string, extra?: Record<string, unknown>) =>
  console.log(JSON.stringify({ fn: "crm-connect", msg, ...extra }));

const key = await keyOrResponse();
const handler = key instanceof Response ? null : createConnectHandler({
  sql: connect(),
  key,
  stateKey: await stateKey(),
  cfg: connectConfigFromEnv(),
  auth: authFromEnv(),
  log,
  webhookBase: webhookBaseUrl(),
});

const cors = corsFromEnv();

Deno.serve(async (req) => {
  if (req.method === "OPTIONS") return preflight(req, cors);
  return withCors(req, handler ? await handler(req) : (key as Response).clone(), cors);
});
