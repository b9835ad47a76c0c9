// A failed OAuth refresh is "revoked" only when the server refuses the grant or the client.
import assert from "node:assert/strict";
import {
  refreshAnswerError,
  refreshRefused,
  refreshSdkError,
} from "../../supabase/functions/_shared/providers/token_errors.ts";

Deno.test("token errors: 400/401 with an OAuth refusal are revoked, the rest transient", () => {
  assert.equal(refreshRefused(400, { error: "invalid_grant" }), true);
  assert.equal(refreshRefused(401, { error: "invalid_client" }), true);
  assert.equal(refreshRefused(400, { status: "BAD_REFRESH_TOKEN", message: "x" }), true);
  assert.equal(refreshRefused(400, { error: "invalid_request" }), false);
  assert.equal(refreshRefused(429, { error: "invalid_grant" }), false);
  assert.equal(refreshRefused(503, {}), false);
  assert.equal(refreshRefused(500, "<html>"), false);
  assert.equal(refreshAnswerError("HubSpot", 502, {}).action, "retry");
  assert.equal(refreshAnswerError("HubSpot", 429, { message: "slow down" }).action, "retry");
  assert.equal(refreshAnswerError("Pipedrive", 400, { error: "invalid_grant" }).action, "revoked");
  const jsforce = (name: string, message: string) => Object.assign(new Error(message), { name });
  assert.equal(
    refreshSdkError("Salesforce", jsforce("invalid_grant", "expired")).action,
    "revoked",
  );
  assert.equal(refreshSdkError("Salesforce", jsforce("ERROR_HTTP_503", "<html>")).action, "retry");
  assert.equal(
    refreshSdkError("Salesforce", new TypeError("error sending request")).action,
    "retry",
  );
});
