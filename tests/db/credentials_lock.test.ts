// The credentials lock with two real database sessions: while one session holds a
// connection's crm.lock_credentials (a token refresh in flight), a reconnect of that connection
// (crm.connect_connection re-activating it) waits, and writes its grant after the refresh
// committed; another connection's lock is independent.
import assert from "node:assert/strict";
import { openSession as open } from "../_support/db.ts";

const later = (ms: number) => new Promise((r) => setTimeout(() => r("pending"), ms));

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("a reconnect waits for a refresh in flight; other connections do not", opts, async () => {
  const a = open();
  const b = open();
  const remote = `lock-test-${crypto.randomUUID()}`;
  const account = crypto.randomUUID();
  const [{ id }] = await a`select connection_id as id from crm.connect_connection(
    ${account}::uuid, 'hubspot', ${remote}, null)`;
  const [{ other }] = await a`select connection_id as other from crm.connect_connection(
    ${account}::uuid, 'pipedrive', ${remote}, null)`;
  try {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const refresh = a.begin(async (tx) => {
      await tx`select crm.lock_credentials(${id}::uuid)`;
      await held;
      await tx`update crm.connections set credentials = convert_to('v1:refreshed:x', 'UTF8')
               where id = ${id}`;
    });
    await new Promise((r) => setTimeout(r, 100));
    // Another connection's lock is free.
    const free = b.begin((tx) => tx`select crm.lock_credentials(${other}::uuid)`);
    assert.notEqual(await Promise.race([free, later(2000)]), "pending");
    const reconnect = b.begin(async (tx) => {
      await tx`select crm.connect_connection(${account}::uuid, 'hubspot', ${remote}, null)`;
      await tx`update crm.connections set credentials = convert_to('v1:reconnected:x', 'UTF8')
               where id = ${id}`;
    });
    assert.equal(await Promise.race([reconnect, later(500)]), "pending", "the reconnect waits");
    release();
    await refresh;
    await reconnect;
    const [row] = await a`select convert_from(credentials, 'UTF8') as c from crm.connections
                          where id = ${id}`;
    assert.equal(row.c, "v1:reconnected:x", "the reconnect's grant is written last");
  } finally {
    await a`delete from crm.connections where id in (${id}, ${other})`;
    await a.end();
    await b.end();
  }
});

Deno.test(
  "a disconnect waits for a refresh in flight, which cannot write the credentials back",
  opts,
  async () => {
    const a = open();
    const b = open();
    const account = crypto.randomUUID();
    const [{ id }] = await a`select connection_id as id from crm.connect_connection(
    ${account}::uuid, 'salesforce', ${`lock-test-${crypto.randomUUID()}`}, null)`;
    await a`update crm.connections set credentials = convert_to('v1:old:x', 'UTF8') where id = ${id}`;
    try {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const refresh = a.begin(async (tx) => {
        await tx`select crm.lock_credentials(${id}::uuid)`;
        await held;
        await tx`update crm.connections set credentials = convert_to('v1:refreshed:x', 'UTF8')
               where id = ${id}`;
      });
      await new Promise((r) => setTimeout(r, 100));
      const disconnect = b`select crm.disconnect_connection(${account}::uuid, ${id}::uuid) as r`;
      assert.equal(await Promise.race([disconnect, later(500)]), "pending", "the disconnect waits");
      release();
      await refresh;
      assert.equal((await disconnect)[0].r, "disconnected");
      const [row] = await a`select status, credentials from crm.connections where id = ${id}`;
      assert.equal(row.status, "disconnected");
      assert.equal(row.credentials, null);
    } finally {
      await a`delete from crm.connections where id = ${id}`;
      await a.end();
      await b.end();
    }
  },
);
