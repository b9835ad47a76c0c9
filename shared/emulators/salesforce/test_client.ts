/**
 * Test helper: a jsforce 3.10.16 Connection pointed at a sandbox, configured
 * the way the product must configure it (explicit version, OAuth client for
 * refresh, and a capped refresh function — jsforce retries a request after
 * every successful refresh, so a 401 that persists would loop forever).
 */
import jsforce from "jsforce";

export interface CappedConnection {
  conn: InstanceType<typeof jsforce.Connection>;
  /** Number of token refreshes performed. */
  refreshes(): number;
}

export function sfConnection(
  url: string,
  creds: Record<string, string>,
  opts: { maxRefreshes?: number; accessToken?: string } = {},
): CappedConnection {
  let refreshes = 0;
  const max = opts.maxRefreshes ?? 3;
  const conn = new jsforce.Connection({
    instanceUrl: url,
    loginUrl: url,
    version: "62.0",
    accessToken: opts.accessToken ?? creds.SALESFORCE_ACCESS_TOKEN,
    refreshToken: creds.SALESFORCE_REFRESH_TOKEN,
    oauth2: {
      clientId: creds.SALESFORCE_CLIENT_ID,
      clientSecret: creds.SALESFORCE_CLIENT_SECRET,
      loginUrl: url,
    },
    refreshFn: (c, callback) => {
      refreshes++;
      if (refreshes > max) {
        callback(new Error(`refresh cap of ${max} reached: the session keeps being rejected`));
        return;
      }
      c.oauth2.refreshToken(c.refreshToken!).then(
        (res) => callback(undefined, res.access_token, res),
        (err: Error) => callback(err),
      );
    },
  });
  return { conn, refreshes: () => refreshes };
}
