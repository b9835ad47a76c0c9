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
