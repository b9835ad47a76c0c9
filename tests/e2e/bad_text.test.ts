// A CRM record with a NUL or a lone UTF-16 surrogate in a text field (anyone who can submit a
// public CRM form can plant one) arrives cleaned, with a warning naming it, and does not stall
// the stream: other edits of the same object in the same run still arrive, and so do later ones.
import assert from "node:assert/strict";
import { type ProviderName, PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import { admin, triggerSync, withConnection } from "./_harness.ts";

const BAD_FIRST = "Ro\u0000bert";
const BAD_LAST = "Tables\ud800 😀";

/** The sandbox's admin object name, and bodies for a create and a first-name edit. */
const CRM: Record<ProviderName, {
  object: string;
  create: Record<string, unknown>;
  edit: (first: string) => Record<string, unknown>;
}> = {
  hubspot: {
    object: "contacts",
    create: {
      properties: { firstname: BAD_FIRST, lastname: BAD_LAST, email: "bobby@tables.example" },
    },
    edit: (first) => ({ properties: { firstname: first } }),
  },
  salesforce: {
    object: "Contact",
    create: { FirstName: BAD_FIRST, LastName: BAD_LAST, Email: "bobby@tables.example" },
    edit: (first) => ({ FirstName: first }),
  },
  pipedrive: {
    object: "person",
    create: {
      name: `${BAD_FIRST} ${BAD_LAST}`,
      first_name: BAD_FIRST,
      last_name: BAD_LAST,
      emails: [{ value: "bobby@tables.example", primary: true, label: "work" }],
    },
    edit: (first) => ({ first_name: first }),
  },
};

for (const provider of PROVIDERS) {
  Deno.test({
    name:
      `e2e ${provider}: NUL and lone surrogates arrive cleaned with a warning, the stream moves on`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await withConnection(
        provider,
        { seed: 61, records: 30, unlimited: true },
        async ({ sb, sql, conn }) => {
          await triggerSync(sql, "contacts", conn);
          const [other] = await sql`select remote_id from crm.contacts
                                    where connection_id = ${conn} and deleted_at is null
                                      and kind = 'contact' order by remote_id limit 1`;
          const c = CRM[provider];
          const created = await admin(sb.url, "POST", `/records/${c.object}`, c.create);
          const badId = String(created.id ?? created.Id);
          await admin(sb.url, "PATCH", `/records/${c.object}/${other.remote_id}`, c.edit("Edited"));

          const answer = await triggerSync(sql, "contacts", conn);
          const run = answer.runs.find((r) => r.object === "contacts")!;
          assert.equal(run.status, "success", JSON.stringify(run));
          assert.equal(run.failed, 0);
          const [bad] = await sql`select first_name, last_name from crm.contacts
                                  where connection_id = ${conn} and remote_id = ${badId}`;
          assert.deepEqual({ ...bad }, { first_name: "Robert", last_name: "Tables\ufffd 😀" });
          const [edited] = await sql`select first_name from crm.contacts
                                     where connection_id = ${conn}
                                       and remote_id = ${other.remote_id}`;
          assert.equal(edited.first_name, "Edited", "the other edit of the run arrived");

          const [log] = await sql`select details from crm.sync_log
                                  where id = ${Number(run.run_id)}`;
          const samples = (log.details.warning_samples as Array<Record<string, string>>)
            .filter((w) => w.remote_id === badId);
          assert.deepEqual(samples.map((w) => w.column).sort(), ["first_name", "last_name"]);
          assert.ok(samples.every((w) => /Postgres cannot store/.test(w.message)));

          // Later edits of the object keep arriving.
          await admin(sb.url, "PATCH", `/records/${c.object}/${other.remote_id}`, c.edit("Again"));
          const next = await triggerSync(sql, "contacts", conn);
          assert.equal(next.runs.find((r) => r.object === "contacts")!.status, "success");
          const [again] = await sql`select first_name from crm.contacts
                                    where connection_id = ${conn}
                                      and remote_id = ${other.remote_id}`;
          assert.equal(again.first_name, "Again");
        },
      );
    },
  });
}
