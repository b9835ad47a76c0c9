// Webhook secrets the engine generates: the Salesforce listener URL token and the Pipedrive
// basic-auth user and password. 32 random bytes as base64url (43 characters of A-Z a-z 0-9 - _):
// inside the receiver's token route ([A-Za-z0-9_-]{16,128}), never a ':' (basic auth splits
// there), and 256 bits, so the unsalted SHA-256 the connection is looked up by reveals nothing.

export const SECRET_BYTES = 32;

export function generateSecret(bytes = SECRET_BYTES): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...raw)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}
