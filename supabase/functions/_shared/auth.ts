// Service endpoints accept only the project's service-role key. The platform's gateway has
// verified the JWT signature already (verify_jwt); here we require the role claim, so an anon
// or user token that passes verify_jwt is still refused.
import { decodeJwt } from "jose";

export function isServiceRole(
  req: Request,
  serviceKey = Deno.env.get("SUPABASE_SERVICE_ROLE_KEY"),
): boolean {
  const token = req.headers.get("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
  if (!token) return false;
  if (serviceKey && token === serviceKey) return true;
  try {
    return decodeJwt(token).role === "service_role";
  } catch {
    return false;
  }
}

export type Caller = { kind: "service" } | {
  kind: "user";
  accountId: string;
  userId: string | null;
};

/**
 * Who is calling a user endpoint: the service role, or a signed-in user with the account claim
 * app_metadata.account_id (the same claim RLS uses). The JWT signature was verified by the
 * platform (verify_jwt); anon keys and tokens without an account are refused (null).
 */
export function caller(req: Request): Caller | null {
  if (isServiceRole(req)) return { kind: "service" };
  const token = req.headers.get("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
  if (!token) return null;
  try {
    const claims = decodeJwt(token);
    const account = (claims.app_metadata as { account_id?: unknown } | undefined)?.account_id;
    if (claims.role !== "authenticated" || typeof account !== "string") return null;
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(account)) {
      return null;
    }
    return {
      kind: "user",
      accountId: account,
      userId: typeof claims.sub === "string" ? claims.sub : null,
    };
  } catch {
    return null;
  }
}
