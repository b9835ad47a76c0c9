// The Pipedrive writer against the Pipedrive sandbox through the official SDK: the external-id
// custom field (created / exists / denied), per-record creates/updates/deletes with the exact
// stored values, labelled emails/phones, idempotent uncertain creates, typed item errors, and
// one call per op (plus the reads an email/phone/name update needs).
import assert from "node:assert/strict";
import { admin } from "./_support.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { createPipedriveAdapter } from "../../supabase/functions/_shared/providers/pipedrive.ts";
import { BudgetPausedError } from "../../supabase/functions/_shared/http/limiter.ts";
import {
  ProviderError,
  type ProviderWriter,
  type WriteOp,
  type WriteResult,
} from "../../supabase/functions/_shared/providers/types.ts";

type Sandbox = Awaited<ReturnType<typeof startPipedrive>>;

interface Harness {
  writer: ProviderWriter;
  /** Kinds of the calls made since the last reset. */
  kinds: string[];
  calls: () => number;
  reset: () => void;
}

function harness(pd: Sandbox): Harness {
  const kinds: string[] = [];
  let calls = 0;
  const adapter = createPipedriveAdapter({
    baseUrl: pd.url,
    credentials: { apiToken: pd.credentials.PIPEDRIVE_API_TOKEN },
    beforeRequest: (kind) => {
      kinds.push(kind);
      return Promise.resolve();
    },
    onTokens: () => Promise.resolve(),
    countCall: (n = 1) => {
      calls += n;
    },
    log: () => {},
  });
  assert.ok(adapter.writer);
  return {
    writer: adapter.writer,
    kinds,
    calls: () => calls,
    reset: () => {
      kinds.length = 0;
      calls = 0;
    },
  };
}

// deno-lint-ignore no-explicit-any
type Rec = Record<string, any>;

const record = (pd: Sandbox, entity: string, id: string): Promise<Rec> =>
  admin(pd.url, "GET", `/__admin/records/${entity}/${id}`);

function byRef(results: WriteResult[]): Map<string, WriteResult> {
  return new Map(results.map((r) => [r.ref, r]));
}

function ok(r: WriteResult | undefined): Extract<WriteResult, { ok: true }> {
  assert.ok(r, "a result for the ref");
  assert.ok(r.ok, `expected ok, got ${JSON.stringify(r)}`);
  return r;
}

function failed(r: WriteResult | undefined): Extract<WriteResult, { ok: false }> {
  assert.ok(r, "a result for the ref");
  assert.ok(!r.ok, `expected a failure, got ${JSON.stringify(r)}`);
  return r;
}

async function withSandbox(fn: (pd: Sandbox, h: Harness) => Promise<void>) {
  const pd = await startPipedrive({ port: 0, seed: 31, records: 20 });
  try {
    await fn(pd, harness(pd));
  } finally {
    await pd.close();
  }
}

const test = (name: string, fn: (pd: Sandbox, h: Harness) => Promise<void>) =>
  Deno.test({
    name: `pipedrive writer: ${name}`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => withSandbox(fn),
  });

test("ensureExternalId creates crm_sync_id once, finds it after, reports a 403", async (pd, h) => {
  const first = await h.writer.ensureExternalId("persons");
  assert.ok(first.ok && first.created, JSON.stringify(first));
  assert.match(first.property, /^[0-9a-f]{40}$/);
  assert.deepEqual(h.kinds, ["fields", "fields-create", "fields"]);
  const stored = pd.store.fields.find((f) => f.entity === "person" && f.name === "crm_sync_id");
  assert.equal(stored?.key, first.property);
  assert.equal(stored?.type, "varchar");

  // Another writer (a new function run) finds it by name, creating nothing.
  const other = harness(pd);
  const again = await other.writer.ensureExternalId("persons");
  assert.deepEqual(again, { ok: true, property: first.property, created: false });
  assert.deepEqual(other.kinds, ["fields"]);
  assert.equal(await other.writer.externalIdProperty("persons"), first.property);
  assert.equal(pd.store.fields.filter((f) => f.name === "crm_sync_id").length, 1);

  // A user without the permission to add fields: ok false with Pipedrive's message.
  await admin(pd.url, "PUT", "/__admin/permissions", { customFields: false });
  const denied = await h.writer.ensureExternalId("organizations");
  assert.equal(denied.ok, false);
  assert.ok(!denied.ok && /403 from Pipedrive: You do not have permission/.test(denied.reason));
  assert.equal(pd.store.fields.filter((f) => f.name === "crm_sync_id").length, 1);
  await assert.rejects(h.writer.externalIdProperty("organizations"), ProviderError);
});

test(
  "creates and updates store the exact values, custom field and relations; one call each",
  async (pd, h) => {
    const keys: Record<string, string> = {};
    for (const t of ["organizations", "persons", "deals"]) {
      const r = await h.writer.ensureExternalId(t);
      assert.ok(r.ok);
      keys[t] = r.property;
    }
    h.reset();
    const orgExt = crypto.randomUUID();
    const [org] = await h.writer.write("companies", [{
      kind: "create",
      ref: "o1",
      remoteType: "organizations",
      externalId: orgExt,
      properties: { name: "Analytical Engines Ltd", owner_id: "1" },
    }]);
    const orgId = ok(org).remoteId;
    assert.equal(ok(org).created, true);
    const storedOrg = await record(pd, "organization", orgId);
    assert.equal(storedOrg.name, "Analytical Engines Ltd");
    assert.equal(storedOrg.owner_id, 1);
    assert.equal(storedOrg.custom_fields[keys.organizations], orgExt);
    assert.equal(ok(org).remoteVersion, new Date(storedOrg.update_time).toISOString());
    assert.deepEqual(storedOrg.last_change, {
      action: "create",
      change_source: "api",
      user_id: 1,
      at: storedOrg.last_change.at,
    });

    const personExt = crypto.randomUUID();
    const [person] = await h.writer.write("contacts", [{
      kind: "create",
      ref: "p1",
      remoteType: "persons",
      externalId: personExt,
      properties: {
        first_name: "Ada",
        last_name: "Lovelace",
        emails: [{ value: "ada@example.com", primary: true, label: "work" }],
        phones: [{ value: "+442071234567", primary: true, label: "mobile" }],
        org_id: orgId,
        owner_id: "1",
        job_title: null,
      },
    }]);
    const personId = ok(person).remoteId;
    const p = await record(pd, "person", personId);
    assert.equal(p.name, "Ada Lovelace");
    assert.deepEqual([p.first_name, p.last_name], ["Ada", "Lovelace"]);
    assert.deepEqual(p.emails, [{ value: "ada@example.com", primary: true, label: "work" }]);
    assert.deepEqual(p.phones, [{ value: "+442071234567", primary: true, label: "mobile" }]);
    assert.equal(p.org_id, Number(orgId));
    assert.equal(p.custom_fields[keys.persons], personExt);

    const dealExt = crypto.randomUUID();
    const [deal] = await h.writer.write("deals", [{
      kind: "create",
      ref: "d1",
      remoteType: "deals",
      externalId: dealExt,
      properties: {
        title: "Difference engine",
        value: "1234.50",
        currency: "GBP",
        status: "open",
        expected_close_date: "2027-03-01",
        probability: "40",
        pipeline_id: "1",
        stage_id: "3",
        org_id: orgId,
        person_id: personId,
        owner_id: "1",
      },
    }]);
    const dealId = ok(deal).remoteId;
    const d = await record(pd, "deal", dealId);
    assert.deepEqual(
      {
        title: d.title,
        value: d.value,
        currency: d.currency,
        status: d.status,
        expected_close_date: d.expected_close_date,
        probability: d.probability,
        pipeline_id: d.pipeline_id,
        stage_id: d.stage_id,
        org_id: d.org_id,
        person_id: d.person_id,
        owner_id: d.owner_id,
        ext: d.custom_fields[keys.deals],
      },
      {
        title: "Difference engine",
        value: 1234.5,
        currency: "GBP",
        status: "open",
        expected_close_date: "2027-03-01",
        probability: 40,
        pipeline_id: 1,
        stage_id: 3,
        org_id: Number(orgId),
        person_id: Number(personId),
        owner_id: 1,
        ext: dealExt,
      },
    );
    assert.deepEqual(h.kinds, ["create", "create", "create"]);
    assert.equal(h.calls(), 3);

    // Updates: a won deal, a relation cleared, a custom field set by its key; one call each.
    h.reset();
    const source = pd.store.fields.find((f) => f.entity === "deal" && f.name === "Source")!;
    const res = byRef(
      await h.writer.write("deals", [{
        kind: "update",
        ref: "d1u",
        remoteType: "deals",
        remoteId: dealId,
        properties: {
          status: "won",
          value: "99.90",
          person_id: null,
          [`custom_fields.${source.key}`]: "partner",
          expected_close_date: "2027-04-02T00:00:00.000Z",
        },
      }, {
        kind: "update",
        ref: "o1u",
        remoteType: "organizations",
        remoteId: orgId,
        properties: { name: "Analytical Engines plc" },
      }]),
    );
    const d2 = await record(pd, "deal", dealId);
    assert.deepEqual(
      [d2.status, d2.value, d2.person_id, d2.custom_fields[source.key], d2.expected_close_date],
      ["won", 99.9, null, "partner", "2027-04-02"],
    );
    assert.equal(d2.custom_fields[keys.deals], dealExt, "an update keeps the external id");
    assert.equal(ok(res.get("d1u")).created, false);
    assert.equal(ok(res.get("d1u")).remoteVersion, new Date(d2.update_time).toISOString());
    assert.equal((await record(pd, "organization", orgId)).name, "Analytical Engines plc");
    assert.equal(h.calls(), 2);
  },
);

test(
  "email/phone updates replace only the primary entry; a half name keeps the other",
  async (pd, h) => {
    const made = await admin(pd.url, "POST", "/__admin/records/person", {
      name: "Grace Hopper",
      emails: [
        { value: "grace@navy.mil", primary: true, label: "work" },
        { value: "grace@home.example", primary: false, label: "home" },
      ],
      phones: [
        { value: "+12025550100", primary: true, label: "work" },
        { value: "+12025550199", primary: false, label: "mobile" },
      ],
    }) as Rec;
    const id = String(made.id);
    h.reset();
    const [r] = await h.writer.write("contacts", [{
      kind: "update",
      ref: "u1",
      remoteType: "persons",
      remoteId: id,
      properties: {
        emails: [{ value: "grace@yale.edu", primary: true, label: "work" }],
        phones: [{ value: "+12025550111", primary: true }],
      },
    }]);
    ok(r);
    const p = await record(pd, "person", id);
    assert.deepEqual(p.emails, [
      { value: "grace@yale.edu", primary: true, label: "work" },
      { value: "grace@home.example", primary: false, label: "home" },
    ]);
    assert.deepEqual(p.phones, [
      { value: "+12025550111", primary: true, label: "work" },
      { value: "+12025550199", primary: false, label: "mobile" },
    ]);
    assert.deepEqual(h.kinds, ["read", "update"], "one read, one write");

    // The new primary value was a secondary entry: listed once, as the primary.
    h.reset();
    await h.writer.write("contacts", [{
      kind: "update",
      ref: "u2",
      remoteType: "persons",
      remoteId: id,
      properties: {
        emails: [{ value: "grace@home.example", primary: true, label: "home" }],
        last_name: "Murray Hopper",
      },
    }]);
    const p2 = await record(pd, "person", id);
    assert.deepEqual(p2.emails, [{ value: "grace@home.example", primary: true, label: "home" }]);
    assert.equal(p2.name, "Grace Murray Hopper", "first name from the stored record");
    assert.equal(h.calls(), 2);

    // Neither lists nor a half name: no read.
    h.reset();
    await h.writer.write("contacts", [{
      kind: "update",
      ref: "u3",
      remoteType: "persons",
      remoteId: id,
      properties: { first_name: "Amazing", last_name: "Grace" },
    }]);
    assert.equal((await record(pd, "person", id)).name, "Amazing Grace");
    assert.deepEqual(h.kinds, ["update"]);
  },
);

test(
  "half-name updates join the CRM's current other half, read 100 at a time, never the row's",
  async (pd, h) => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const made = await admin(pd.url, "POST", "/__admin/records/person", {
        name: `Ada Lovelace${i}`,
      }) as Rec;
      ids.push(String(made.id));
    }
    // A CRM user renames the last halves after the app read the rows.
    for (const id of ids) {
      await admin(pd.url, "PATCH", `/__admin/records/person/${id}`, { name: `Ada King${id}` });
    }
    h.reset();
    const results = await h.writer.write(
      "contacts",
      ids.map((id, i) => ({
        kind: "update" as const,
        ref: `u${i}`,
        remoteType: "persons",
        remoteId: id,
        properties: { first_name: "Augusta" },
      })),
    );
    results.forEach((r) => ok(r));
    for (const id of ids) {
      assert.equal((await record(pd, "person", id)).name, `Augusta King${id}`);
    }
    assert.deepEqual(
      h.kinds.filter((k) => k === "read").length,
      1,
      `one read for five updates: ${h.kinds.join(",")}`,
    );
    assert.equal(h.kinds.filter((k) => k === "update").length, 5);
  },
);

test(
  "a retried half-name update reads the person again: a CRM edit between the attempts stays",
  async (pd, h) => {
    const made = await admin(pd.url, "POST", "/__admin/records/person", {
      name: "Ada Lovelace",
    }) as Rec;
    const path = `/api/v2/persons/${made.id}`;
    await admin(pd.url, "PUT", "/__admin/request-faults", {
      rules: [{ method: "PATCH", path, status: 503, times: 1 }],
    });
    // The first PATCH fails; before its answer leaves, a CRM user renames the last half (found
    // by the chaos harness: the retry resent the name joined from the first read).
    const handle = pd.emulator.handle.bind(pd.emulator);
    let renamed = false;
    pd.emulator.handle = async (req: Request) => {
      const res = await handle(req);
      if (!renamed && req.method === "PATCH" && new URL(req.url).pathname === path) {
        renamed = true;
        assert.equal(res.status, 503, "the first attempt is the injected 503");
        await admin(pd.url, "PATCH", `/__admin/records/person/${made.id}`, { name: "Ada King" });
      }
      return res;
    };
    h.reset();
    const [r] = await h.writer.write("contacts", [{
      kind: "update",
      ref: "u1",
      remoteType: "persons",
      remoteId: String(made.id),
      properties: { first_name: "Augusta" },
    }]);
    ok(r);
    assert.ok(renamed);
    assert.equal((await record(pd, "person", String(made.id))).name, "Augusta King");
    assert.deepEqual(h.kinds, ["read", "update", "read", "update"]);
  },
);

test("an uncertain create finds the earlier attempt's record: no duplicate", async (pd, h) => {
  const setup = await h.writer.ensureExternalId("persons");
  assert.ok(setup.ok);
  const ext = crypto.randomUUID();
  const op: WriteOp = {
    kind: "create",
    ref: "c1",
    remoteType: "persons",
    externalId: ext,
    properties: { name: "Alan Turing", emails: [{ value: "alan@example.com", primary: true }] },
  };
  const [first] = await h.writer.write("contacts", [op]);
  const id = ok(first).remoteId;
  h.reset();
  const [again] = await h.writer.write("contacts", [{
    ...op,
    uncertain: true,
    properties: { ...op.properties, name: "Alan M. Turing" },
  }]);
  assert.equal(ok(again).remoteId, id);
  assert.equal(ok(again).created, false);
  assert.deepEqual(h.kinds, ["search", "update"]);
  const holders = pd.store.tables.person.bySeq.filter((r) =>
    !r.isDeleted && r.custom[setup.property] === ext
  );
  assert.equal(holders.length, 1, "exactly one remote record");
  assert.equal(holders[0].data.name, "Alan M. Turing");

  // Uncertain, but the earlier attempt never reached Pipedrive: search, then create.
  h.reset();
  const ext2 = crypto.randomUUID();
  const [fresh] = await h.writer.write("contacts", [{
    kind: "create",
    ref: "c2",
    remoteType: "persons",
    externalId: ext2,
    uncertain: true,
    properties: { name: "Kurt Gödel" },
  }]);
  assert.equal(ok(fresh).created, true);
  assert.deepEqual(h.kinds, ["search", "create"]);
  assert.equal(
    pd.store.tables.person.bySeq.filter((r) => r.custom[setup.property] === ext2).length,
    1,
  );
});

test(
  "item errors are typed: validation message, gone, deletes of missing records are ok",
  async (pd, h) => {
    for (const t of ["persons", "deals"]) assert.ok((await h.writer.ensureExternalId(t)).ok);
    const live = pd.store.tables.person.bySeq.filter((r) => !r.isDeleted);
    const gone = live[0].id, kept = live[1].id, toDelete = live[2].id;
    await admin(pd.url, "DELETE", `/__admin/records/person/${gone}`);
    h.reset();
    const res = byRef(
      await h.writer.write("contacts", [
        {
          kind: "create",
          ref: "bad-email",
          remoteType: "persons",
          externalId: crypto.randomUUID(),
          properties: { name: "No Mail", emails: [{ value: "not-an-email", primary: true }] },
        },
        { kind: "update", ref: "gone", remoteType: "persons", remoteId: gone, properties: {} },
        {
          kind: "update",
          ref: "kept",
          remoteType: "persons",
          remoteId: kept,
          properties: { job_title: "Engineer" },
        },
        { kind: "delete", ref: "del", remoteType: "persons", remoteId: toDelete },
        { kind: "delete", ref: "del-again", remoteType: "persons", remoteId: gone },
        { kind: "delete", ref: "del-never", remoteType: "persons", remoteId: "987654" },
        { kind: "update", ref: "bad-id", remoteType: "persons", remoteId: "x1", properties: {} },
      ]),
    );
    assert.equal(res.size, 7);
    assert.equal(failed(res.get("bad-id")).action, "dead_letter");
    const badEmail = failed(res.get("bad-email"));
    assert.equal(badEmail.action, "fix_data");
    assert.equal(badEmail.status, 400);
    assert.match(badEmail.message, /emails\[0\]\.value: Invalid email address/);
    assert.equal(failed(res.get("gone")).action, "gone");
    assert.equal((await record(pd, "person", kept)).job_title, "Engineer");
    for (const ref of ["del", "del-again", "del-never"]) ok(res.get(ref));
    assert.equal((await record(pd, "person", toDelete)).is_deleted, true);
    assert.equal(h.calls(), 6, "one call per op sent (none for a malformed id)");

    const [noTitle] = await h.writer.write("deals", [{
      kind: "create",
      ref: "deal",
      remoteType: "deals",
      externalId: crypto.randomUUID(),
      properties: { value: "10" },
    }]);
    assert.equal(failed(noTitle).action, "fix_data");
    assert.match(failed(noTitle).message, /title is required/);
  },
);

test(
  "a 429 on one record's call fails that item only; one passing 429 is retried",
  async (pd, h) => {
    const ids = pd.store.tables.organization.bySeq.filter((r) => !r.isDeleted).slice(0, 3)
      .map((r) => r.id);
    const ops = (tag: string): WriteOp[] =>
      ids.map((id) => ({
        kind: "update" as const,
        ref: `${tag}-${id}`,
        remoteType: "organizations",
        remoteId: id,
        properties: { name: `Org ${id} ${tag}` },
      }));
    // One 429 answer: the call helper retries it after Retry-After.
    await admin(pd.url, "PUT", "/__admin/request-faults", {
      rules: [{
        method: "PATCH",
        path: `/api/v2/organizations/${ids[1]}`,
        status: 429,
        times: 1,
        retryAfterSeconds: 0,
      }],
    });
    const once = await h.writer.write("companies", ops("a"));
    assert.ok(once.every((r) => r.ok), JSON.stringify(once));
    assert.equal(h.calls(), 4, "three ops and one retry");

    // Every answer for the middle record is a 429: that item is `retry`, the others are written.
    h.reset();
    await admin(pd.url, "PUT", "/__admin/request-faults", {
      rules: [{
        method: "PATCH",
        path: `/api/v2/organizations/${ids[1]}`,
        status: 429,
        times: 100,
        retryAfterSeconds: 0,
      }],
    });
    const res = byRef(await h.writer.write("companies", ops("b")));
    const stuck = failed(res.get(`b-${ids[1]}`));
    assert.equal(stuck.action, "retry");
    assert.equal(stuck.status, 429);
    assert.equal(stuck.retryAfterMs, 0);
    for (const id of [ids[0], ids[2]]) {
      ok(res.get(`b-${id}`));
      assert.equal((await record(pd, "organization", id)).name, `Org ${id} b`);
    }
    assert.equal((await record(pd, "organization", ids[1])).name, `Org ${ids[1]} a`);

    // A 5xx that outlasts the retries: retry as well.
    await admin(pd.url, "PUT", "/__admin/request-faults", {
      rules: [{
        method: "PATCH",
        path: `/api/v2/organizations/${ids[0]}`,
        status: 503,
        times: 100,
        retryAfterSeconds: 0,
      }],
    });
    const [five] = await h.writer.write("companies", ops("c").slice(0, 1));
    assert.equal(failed(five).action, "retry");
    assert.equal(failed(five).status, 503);
  },
);

test("rejected credentials throw for the whole write", async (pd, h) => {
  await admin(pd.url, "POST", "/__admin/tokens/revoke", { kind: "all" });
  const id = pd.store.tables.deal.bySeq[0].id;
  await assert.rejects(
    h.writer.write("deals", [{
      kind: "update",
      ref: "x",
      remoteType: "deals",
      remoteId: id,
      properties: { title: "T" },
    }]),
    (e: unknown) => e instanceof ProviderError && e.action === "revoked",
  );
});

test("N ops are N calls with bounded concurrency, paced by beforeRequest", async (pd, h) => {
  const ids = pd.store.tables.deal.bySeq.filter((r) => !r.isDeleted).slice(0, 12).map((r) => r.id);
  let open = 0, maxOpen = 0;
  const kinds: string[] = [];
  const adapter = createPipedriveAdapter({
    baseUrl: pd.url,
    credentials: { apiToken: pd.credentials.PIPEDRIVE_API_TOKEN },
    beforeRequest: async (kind) => {
      kinds.push(kind);
      open++;
      maxOpen = Math.max(maxOpen, open);
      await new Promise((r) => setTimeout(r, 5));
      open--;
    },
    onTokens: () => Promise.resolve(),
    countCall: () => {},
    log: () => {},
  });
  const res = await adapter.writer!.write(
    "deals",
    ids.map((id, i) => ({
      kind: "update" as const,
      ref: `r${i}`,
      remoteType: "deals",
      remoteId: id,
      properties: { probability: String(i) },
    })),
  );
  assert.equal(res.length, ids.length);
  assert.ok(res.every((r) => r.ok));
  assert.deepEqual(kinds, ids.map(() => "update"));
  assert.ok(maxOpen > 1 && maxOpen <= 4, `at most 4 calls at once, saw ${maxOpen}`);
  assert.equal(adapter.writer!.maxBatch, 1);
  assert.equal(adapter.writer!.chunk, 100);
  assert.equal(h.calls(), 0);
});

test("two writers creating crm_sync_id at once settle on one key", async (pd) => {
  const [a, b] = await Promise.all([
    harness(pd).writer.ensureExternalId("deals"),
    harness(pd).writer.ensureExternalId("deals"),
  ]);
  assert.ok(a.ok && b.ok);
  assert.equal(a.property, b.property);
  const first = pd.store.fields.find((f) => f.entity === "deal" && f.name === "crm_sync_id");
  assert.equal(a.property, first?.key);
});

test("a paused budget stops the write: the rest are retry results, never sent", async (pd) => {
  const ids = pd.store.tables.deal.bySeq.filter((r) => !r.isDeleted).slice(0, 10).map((r) => r.id);
  const before = ids.map((id) => pd.store.get("deal", id)!.modifiedAt);
  let asked = 0, calls = 0;
  const until = new Date(Date.now() + 30_000).toISOString();
  const adapter = createPipedriveAdapter({
    baseUrl: pd.url,
    credentials: { apiToken: pd.credentials.PIPEDRIVE_API_TOKEN },
    beforeRequest: () => {
      asked++;
      return Promise.reject(new BudgetPausedError("daily budget spent", until, "daily"));
    },
    onTokens: () => Promise.resolve(),
    countCall: () => {
      calls++;
    },
    log: () => {},
  });
  const res = await adapter.writer!.write(
    "deals",
    ids.map((id, i) => ({
      kind: "update" as const,
      ref: `r${i}`,
      remoteType: "deals",
      remoteId: id,
      properties: { title: "never sent" },
    })),
  );
  assert.equal(res.length, 10);
  for (const r of res) {
    const f = failed(r);
    assert.equal(f.action, "retry");
    assert.ok(f.retryAfterMs! > 25_000 && f.retryAfterMs! <= 30_000, String(f.retryAfterMs));
  }
  assert.equal(calls, 0);
  assert.ok(asked <= 4, `only the calls already started asked the budget (${asked})`);
  assert.deepEqual(ids.map((id) => pd.store.get("deal", id)!.modifiedAt), before);
});
