/**
 * Access / refresh / API tokens with expiry and revocation, shared by the
 * three emulators. Token strings come from the seeded stream, so the
 * credentials printed by `main.ts` are the same for the same seed.
 */
import type { Prng } from "./prng.ts";

export type TokenKind = "access" | "refresh" | "api" | "code";

export interface TokenInfo {
  token: string;
  kind: TokenKind;
  createdAt: number;
  /** Epoch ms; null = never expires. */
  expiresAt: number | null;
  revoked: boolean;
  clientId?: string;
  scopes?: string[];
  /** For access tokens: the refresh token they came from. */
  refreshToken?: string;
  /** For codes: redirect URI they were issued for. */
  redirectUri?: string;
  /** For codes: the PKCE challenge and its method (S256 | plain) given at authorize. */
  codeChallenge?: string;
  codeChallengeMethod?: string;
  /** Free-form owner (user id etc.). */
  subject?: string;
}

export type TokenCheck =
  | { ok: true; info: TokenInfo }
  | { ok: false; reason: "missing" | "invalid" | "expired" | "revoked"; info?: TokenInfo };

export class TokenStore {
  #tokens = new Map<string, TokenInfo>();
  /** TTL for newly issued access tokens (ms); null = no expiry. */
  accessTtlMs: number | null;
  /** Told of every token added (the tenancy routes requests by token). */
  onAdd?: (token: string) => void;

  constructor(private prng: Prng, accessTtlMs: number | null) {
    this.accessTtlMs = accessTtlMs;
  }

  /** Mint from another stream from now on: after a snapshot is loaded, the seeded stream would
   * hand out tokens the snapshot already holds. */
  useStream(prng: Prng): void {
    this.prng = prng;
  }

  /** Random token string in a provider-like shape. */
  mint(prefix: string, length: number, alphabet: "alnum" | "hex" = "alnum"): string {
    return prefix + (alphabet === "hex" ? this.prng.hex(length) : this.prng.alnum(length));
  }

  /** Every token, for a snapshot. */
  all(): TokenInfo[] {
    return [...this.#tokens.values()];
  }

  add(info: Omit<TokenInfo, "revoked"> & { revoked?: boolean }): TokenInfo {
    const full: TokenInfo = { revoked: false, ...info };
    this.#tokens.set(full.token, full);
    this.onAdd?.(full.token);
    return full;
  }

  issue(
    kind: TokenKind,
    token: string,
    now: number,
    extra: Partial<TokenInfo> = {},
  ): TokenInfo {
    const ttl = kind === "access" ? this.accessTtlMs : kind === "code" ? 10 * 60_000 : null;
    return this.add({
      token,
      kind,
      createdAt: now,
      expiresAt: ttl === null ? null : now + ttl,
      ...extra,
    });
  }

  get(token: string): TokenInfo | undefined {
    return this.#tokens.get(token);
  }

  check(token: string | null | undefined, now: number, kinds: TokenKind[]): TokenCheck {
    if (!token) return { ok: false, reason: "missing" };
    const info = this.#tokens.get(token);
    if (!info || !kinds.includes(info.kind)) return { ok: false, reason: "invalid" };
    if (info.revoked) return { ok: false, reason: "revoked", info };
    if (info.expiresAt !== null && now >= info.expiresAt) {
      return { ok: false, reason: "expired", info };
    }
    return { ok: true, info };
  }

  /** Expire every access token now (refresh tokens stay usable). */
  expireAccessTokens(now: number): number {
    let n = 0;
    for (const t of this.#tokens.values()) {
      if (t.kind === "access" && (t.expiresAt === null || t.expiresAt > now)) {
        t.expiresAt = now;
        n++;
      }
    }
    return n;
  }

  /** Change the TTL; `applyToExisting` also re-times live access tokens. */
  setAccessTtl(ttlMs: number | null, now: number, applyToExisting = true): void {
    this.accessTtlMs = ttlMs;
    if (!applyToExisting) return;
    for (const t of this.#tokens.values()) {
      if (t.kind !== "access" || t.revoked) continue;
      if (t.expiresAt !== null && t.expiresAt <= now) continue;
      t.expiresAt = ttlMs === null ? null : t.createdAt + ttlMs;
    }
  }

  revoke(filter: (t: TokenInfo) => boolean = () => true): number {
    let n = 0;
    for (const t of this.#tokens.values()) {
      if (!t.revoked && filter(t)) {
        t.revoked = true;
        n++;
      }
    }
    return n;
  }

  list(): TokenInfo[] {
    return [...this.#tokens.values()].map((t) => ({ ...t }));
  }

  clear(): void {
    this.#tokens.clear();
  }
}
