// Credentials at rest: AES-256-GCM with a key held only in the function secret
// CRM_ENCRYPTION_KEY (base64, 32 bytes), never in the database. Stored form is
// "v1:<base64 iv>:<base64 ciphertext+tag>", so a future key rotation can add "v2".
// The connection id is bound as additional data: a ciphertext copied to another connection
// does not decrypt.
const VERSION = "v1";

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function unb64(s: string): Uint8Array {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

export async function importKey(base64Key: string | undefined): Promise<CryptoKey> {
  if (!base64Key) throw new Error("CRM_ENCRYPTION_KEY is not set");
  const raw = unb64(base64Key);
  if (raw.length !== 32) throw new Error("CRM_ENCRYPTION_KEY must be 32 bytes, base64-encoded");
  return await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

export async function encryptJson(
  key: CryptoKey,
  value: unknown,
  boundTo: string,
): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const data = new TextEncoder().encode(JSON.stringify(value));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(boundTo) },
    key,
    data,
  );
  return `${VERSION}:${b64(iv)}:${b64(new Uint8Array(ct))}`;
}

export async function decryptJson<T = unknown>(
  key: CryptoKey,
  stored: string,
  boundTo: string,
): Promise<T> {
  const [version, iv, ct] = stored.split(":");
  if (version !== VERSION || !iv || !ct) {
    throw new Error("unrecognised credential ciphertext format");
  }
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: unb64(iv), additionalData: new TextEncoder().encode(boundTo) },
    key,
    unb64(ct),
  );
  return JSON.parse(new TextDecoder().decode(plain)) as T;
}

export function generateKey(): string {
  return b64(crypto.getRandomValues(new Uint8Array(32)));
}

/** The function secret CRM_ENCRYPTION_KEY, or the 500 answer a function gives without it. */
export async function keyOrResponse(
  env = Deno.env.get("CRM_ENCRYPTION_KEY"),
): Promise<CryptoKey | Response> {
  try {
    return await importKey(env);
  } catch (e) {
    return Response.json({ error: (e as Error).message }, { status: 500 });
  }
}
