// The function secrets the local stack owns: CRM_ENCRYPTION_KEY, the AES key for connection
// credentials at rest (supabase/functions/_shared/crypto.ts), and CRM_CORS_ORIGINS, the browser
// origins crm-fetch-live answers (_shared/http/cors.ts): locally the usual dashboard dev servers,
// while a deployed project allows none until it sets the secret. The key is generated once
// per profile into cfg.stackSecretsFile (mode 0600) and handed to the functions by the gateway,
// which merges the developer's supabase/functions/.env over it: a key the developer sets there
// wins, and the stack then encrypts the sandbox credentials with that key too, so functions
// and stored ciphertext always agree. Values are never logged.
import { chmod } from "node:fs/promises";
import { generateKey, importKey } from "../../supabase/functions/_shared/crypto.ts";
import type { StackConfig } from "./config.ts";
import { formatEnv, readEnvFile } from "./env_file.ts";

const HEADER = "# Function secrets owned by the crm-sync local stack (shared/local/secrets.ts).\n" +
  "# Generated once; set the same name in supabase/functions/.env to override.\n";

export const LOCAL_CORS_ORIGINS = "http://localhost:3000,http://localhost:5173";

export async function ensureStackSecrets(
  cfg: StackConfig,
): Promise<{ CRM_ENCRYPTION_KEY: string }> {
  const own = await readEnvFile(cfg.stackSecretsFile);
  if (!own.CRM_ENCRYPTION_KEY || own.CRM_CORS_ORIGINS === undefined) {
    own.CRM_ENCRYPTION_KEY ||= generateKey();
    own.CRM_CORS_ORIGINS ??= LOCAL_CORS_ORIGINS;
    await Deno.mkdir(cfg.dir, { recursive: true });
    await Deno.writeTextFile(cfg.stackSecretsFile, HEADER + formatEnv(own), { mode: 0o600 });
  }
  // writeTextFile's mode applies on creation only; a file copied in by hand may be wider.
  await chmod(cfg.stackSecretsFile, 0o600);
  const developer = (await readEnvFile(cfg.functionsEnvFile)).CRM_ENCRYPTION_KEY;
  const key = developer || own.CRM_ENCRYPTION_KEY;
  try {
    await importKey(key);
  } catch (e) {
    const from = developer ? cfg.functionsEnvFile : cfg.stackSecretsFile;
    throw new Error(`CRM_ENCRYPTION_KEY in ${from}: ${(e as Error).message}`);
  }
  return { CRM_ENCRYPTION_KEY: key };
}

/**
 * Sets function secrets the stack owns beside the key (the dev stack's crm-connect settings for
 * its sandboxes, ./connect_sandboxes.ts): merged into cfg.stackSecretsFile (0600). The gateway
 * reads the file at every function spawn; the developer's supabase/functions/.env still wins.
 * Answers whether the file changed.
 */
export async function setStackSecrets(
  cfg: StackConfig,
  vars: Record<string, string>,
): Promise<boolean> {
  const own = await readEnvFile(cfg.stackSecretsFile);
  if (Object.entries(vars).every(([k, v]) => own[k] === v)) return false;
  await Deno.mkdir(cfg.dir, { recursive: true });
  await Deno.writeTextFile(cfg.stackSecretsFile, HEADER + formatEnv({ ...own, ...vars }), {
    mode: 0o600,
  });
  await chmod(cfg.stackSecretsFile, 0o600);
  return true;
}
