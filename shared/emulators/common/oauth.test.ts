// The sandboxes' OAuth authorization-code flows as a connect flow meets them: redirect-URI
// match, client secret, PKCE (Salesforce), single-use and expiring codes, refresh-token
// rotation, refused consent, registered redirect URIs.
import { assert, assertEquals, assertMatch, assertNotEquals } from "./assert.ts";
import { startHubSpot } from "../hubspot/mod.ts";
import { startPipedrive } from "../pipedrive/mod.ts";
import { startSalesforce } from "../salesforce/mod.ts";
import { s256 } from "./oauth.ts";

const REDIRECT = "https://app.example/functions/v1/crm-connect/callback";

async function authorize(url: string): Promise<URL | Response> {
  const res = await fetch(url, { redirect: "manual" });
  if (res.status !== 302) return res;
  await res.body?.cancel();
  return new URL(res.headers.get("location")!);
}

function form(data: Record<string, string>, headers: Record<string, string> = {}): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(data),
  };
}

async function post(url: string, init: RequestInit) {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.json().catch(() => null) };
}

Deno.test("salesforce: PKCE S256 at authorize and exchange, single-use code, redirect match", async () => {
  let now = Date.now();
  const sf = await startSalesforce({ seed: 3, records: 1, now: () => now });
  try {
    const c = sf.credentials;
    const verifier = "v".repeat(20) + crypto.randomUUID().replaceAll("-", "");
    const challenge = await s256(verifier);
    const authUrl = (extra: Record<string, string>) =>
      `${sf.url}/services/oauth2/authorize?${new URLSearchParams({
        response_type: "code",
        client_id: c.SALESFORCE_CLIENT_ID,
        redirect_uri: REDIRECT,
        state: "st",
        ...extra,
      })}`;
    const bad = await authorize(
      authUrl({ code_challenge: challenge, code_challenge_method: "S512" }),
    );
    assert(bad instanceof Response && bad.status === 400, "unknown challenge method refused");
    await (bad as Response).body?.cancel();

    const exchange = (code: string, extra: Record<string, string>) =>
      post(
        `${sf.url}/services/oauth2/token`,
        form({
          grant_type: "authorization_code",
          code,
          client_id: c.SALESFORCE_CLIENT_ID,
          client_secret: c.SALESFORCE_CLIENT_SECRET,
          redirect_uri: REDIRECT,
          ...extra,
        }),
      );
    const newCode = async () => {
      const loc = await authorize(authUrl({ code_challenge: challenge }));
      assert(loc instanceof URL);
      assertEquals(loc.searchParams.get("state"), "st");
      return loc.searchParams.get("code")!;
    };

    // Missing verifier, wrong verifier: refused, and the code is spent either way.
    let code = await newCode();
    assertEquals((await exchange(code, {})).body.error, "invalid_grant");
    assertEquals((await exchange(code, { code_verifier: verifier })).body.error, "invalid_grant");
    code = await newCode();
    assertEquals((await exchange(code, { code_verifier: "x".repeat(43) })).status, 400);

    // Wrong client secret and wrong redirect URI.
    code = await newCode();
    assertEquals(
      (await exchange(code, { client_secret: "nope", code_verifier: verifier })).body
        .error,
      "invalid_client",
    );
    assertEquals(
      (await exchange(code, { redirect_uri: `${REDIRECT}x`, code_verifier: verifier })).body.error,
      "redirect_uri_mismatch",
    );

    // The right verifier: tokens and the identity URL; the same code again: refused.
    code = await newCode();
    const ok = await exchange(code, { code_verifier: verifier });
    assertEquals(ok.status, 200);
    assertMatch(ok.body.id, new RegExp(`/id/${c.SALESFORCE_ORG_ID}/`));
    assert(ok.body.refresh_token);
    assertEquals((await exchange(code, { code_verifier: verifier })).body.error, "invalid_grant");

    // A code issued without a challenge refuses a verifier; one older than 10 minutes expires.
    const plain = await authorize(authUrl({}));
    assert(plain instanceof URL);
    assertEquals(
      (await exchange(plain.searchParams.get("code")!, { code_verifier: verifier })).status,
      400,
    );
    const old = await authorize(authUrl({}));
    assert(old instanceof URL);
    now += 10 * 60_000 + 1;
    assertEquals((await exchange(old.searchParams.get("code")!, {})).body.error, "invalid_grant");
  } finally {
    await sf.close();
  }
});

Deno.test("salesforce: refresh keeps the token; with rotation it is replaced and the old one revoked", async () => {
  const sf = await startSalesforce({ seed: 4, records: 1 });
  try {
    const c = sf.credentials;
    const refresh = (rt: string) =>
      post(
        `${sf.url}/services/oauth2/token`,
        form({
          grant_type: "refresh_token",
          refresh_token: rt,
          client_id: c.SALESFORCE_CLIENT_ID,
          client_secret: c.SALESFORCE_CLIENT_SECRET,
        }),
      );
    const kept = await refresh(c.SALESFORCE_REFRESH_TOKEN);
    assertEquals(kept.status, 200);
    assertEquals(kept.body.refresh_token, undefined);
    const set = await fetch(`${sf.url}/__admin/oauth`, {
      method: "PUT",
      body: JSON.stringify({ rotateRefreshTokens: true }),
    });
    assertEquals((await set.json()).rotateRefreshTokens, true);
    const rotated = await refresh(c.SALESFORCE_REFRESH_TOKEN);
    assert(rotated.body.refresh_token);
    assertNotEquals(rotated.body.refresh_token, c.SALESFORCE_REFRESH_TOKEN);
    assertEquals((await refresh(c.SALESFORCE_REFRESH_TOKEN)).body.error, "invalid_grant");
    assertEquals((await refresh(rotated.body.refresh_token)).status, 200);
  } finally {
    await sf.close();
  }
});

Deno.test("consent refused: Salesforce and Pipedrive redirect with access_denied, HubSpot does not redirect", async () => {
  const sf = await startSalesforce({ seed: 5, records: 1, oauth: { consent: "deny" } });
  const pd = await startPipedrive({ seed: 5, records: 1 });
  const hs = await startHubSpot({ seed: 5, records: 1 });
  try {
    const sfLoc = await authorize(
      `${sf.url}/services/oauth2/authorize?response_type=code&client_id=${sf.credentials.SALESFORCE_CLIENT_ID}&redirect_uri=${
        encodeURIComponent(REDIRECT)
      }&state=s1`,
    );
    assert(sfLoc instanceof URL);
    assertEquals(sfLoc.searchParams.get("error"), "access_denied");
    assertEquals(sfLoc.searchParams.get("state"), "s1");
    assertEquals(sfLoc.searchParams.get("code"), null);

    for (const e of [pd, hs]) {
      const r = await fetch(`${e.url}/__admin/oauth`, {
        method: "PUT",
        body: JSON.stringify({ consent: "deny" }),
      });
      assertEquals(r.status, 200);
      await r.body?.cancel();
    }
    const pdLoc = await authorize(
      `${pd.url}/oauth/authorize?client_id=${pd.credentials.PIPEDRIVE_CLIENT_ID}&redirect_uri=${
        encodeURIComponent(REDIRECT)
      }&state=s2`,
    );
    assert(pdLoc instanceof URL);
    assertEquals(pdLoc.searchParams.get("error"), "access_denied");
    const hsRes = await authorize(
      `${hs.url}/oauth/authorize?client_id=${hs.credentials.HUBSPOT_CLIENT_ID}&redirect_uri=${
        encodeURIComponent(REDIRECT)
      }&scope=oauth&state=s3`,
    );
    assert(hsRes instanceof Response);
    assertEquals(hsRes.status, 200);
    await hsRes.body?.cancel();
    const bad = await fetch(`${hs.url}/__admin/oauth`, {
      method: "PUT",
      body: JSON.stringify({ consent: "maybe" }),
    });
    assertEquals(bad.status, 400);
    await bad.body?.cancel();
  } finally {
    await Promise.all([sf.close(), pd.close(), hs.close()]);
  }
});

Deno.test("hubspot and pipedrive: registered redirect URIs, secret and redirect checks, single-use codes, rotation", async () => {
  const hs = await startHubSpot({ seed: 6, records: 1, oauth: { redirectUris: [REDIRECT] } });
  const pd = await startPipedrive({ seed: 6, records: 1, oauth: { rotateRefreshTokens: true } });
  try {
    const h = hs.credentials;
    const hsAuth = (redirect: string) =>
      authorize(
        `${hs.url}/oauth/authorize?client_id=${h.HUBSPOT_CLIENT_ID}&redirect_uri=${
          encodeURIComponent(redirect)
        }&scope=oauth`,
      );
    const off = await hsAuth("https://evil.example/cb");
    assert(off instanceof Response && off.status === 400);
    await (off as Response).body?.cancel();
    const loc = await hsAuth(REDIRECT);
    assert(loc instanceof URL);
    const hsCode = loc.searchParams.get("code")!;
    const hsExchange = (extra: Record<string, string>) =>
      post(
        `${hs.url}/oauth/v1/token`,
        form({
          grant_type: "authorization_code",
          code: hsCode,
          client_id: h.HUBSPOT_CLIENT_ID,
          client_secret: h.HUBSPOT_CLIENT_SECRET,
          redirect_uri: REDIRECT,
          ...extra,
        }),
      );
    assertEquals((await hsExchange({ client_secret: "x" })).body.status, "BAD_CLIENT_SECRET");
    assertEquals(
      (await hsExchange({ redirect_uri: `${REDIRECT}/` })).body.status,
      "BAD_REDIRECT_URI",
    );
    const tok = await hsExchange({});
    assertEquals(tok.status, 200);
    assertEquals((await hsExchange({})).body.status, "BAD_AUTH_CODE");
    const info = await (await fetch(`${hs.url}/oauth/v1/access-tokens/${tok.body.access_token}`))
      .json();
    assertEquals(String(info.hub_id), h.HUBSPOT_PORTAL_ID);

    const p = pd.credentials;
    const basic = `Basic ${btoa(`${p.PIPEDRIVE_CLIENT_ID}:${p.PIPEDRIVE_CLIENT_SECRET}`)}`;
    const pdLoc = await authorize(
      `${pd.url}/oauth/authorize?client_id=${p.PIPEDRIVE_CLIENT_ID}&redirect_uri=${
        encodeURIComponent(REDIRECT)
      }`,
    );
    assert(pdLoc instanceof URL);
    const pdCode = pdLoc.searchParams.get("code")!;
    const wrongSecret = await post(
      `${pd.url}/oauth/token`,
      form({ grant_type: "authorization_code", code: pdCode, redirect_uri: REDIRECT }, {
        authorization: `Basic ${btoa(`${p.PIPEDRIVE_CLIENT_ID}:nope`)}`,
      }),
    );
    assertEquals(wrongSecret.status, 401);
    const pdTok = await post(
      `${pd.url}/oauth/token`,
      form({ grant_type: "authorization_code", code: pdCode, redirect_uri: REDIRECT }, {
        authorization: basic,
      }),
    );
    assertEquals(pdTok.status, 200);
    const me = await (await fetch(`${pd.url}/v1/users/me`, {
      headers: { authorization: `Bearer ${pdTok.body.access_token}` },
    })).json();
    assertEquals(String(me.data.company_id), p.PIPEDRIVE_COMPANY_ID);
    const refresh = (rt: string) =>
      post(
        `${pd.url}/oauth/token`,
        form({ grant_type: "refresh_token", refresh_token: rt }, {
          authorization: basic,
        }),
      );
    const r1 = await refresh(pdTok.body.refresh_token);
    assertEquals(r1.status, 200);
    assertNotEquals(r1.body.refresh_token, pdTok.body.refresh_token);
    assertEquals((await refresh(pdTok.body.refresh_token)).body.error, "invalid_grant");
    assertEquals((await refresh(r1.body.refresh_token)).status, 200);
  } finally {
    await Promise.all([hs.close(), pd.close()]);
  }
});
