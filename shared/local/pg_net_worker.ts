// Executes the requests queued by the pg_net stand-in (shared/local/extensions/pg_net--*.sql)
// and records them in net._http_response, as pg_net's C worker does.
// Woken by NOTIFY on channel 'pg_net' (sent only when the enqueuing transaction commits) and,
// as a fallback, by a poll. Claims with DELETE ... FOR UPDATE SKIP LOCKED so several workers
// could share a queue. Responses older than the TTL (`pg_net.ttl`, default 6 hours as in
// pg_net) are purged.
import postgres from "postgres";

export interface WorkerOptions {
  dbUrl: string;
  batchSize?: number;
  pollMs?: number;
  ttl?: string;
  log?: (msg: string) => void;
}

interface QueuedRequest {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string> | null;
  body: Uint8Array | null;
  timeout_milliseconds: number;
}

interface ResponseRow {
  id: string;
  status_code: number | null;
  content_type: string | null;
  headers: Record<string, string> | null;
  content: string | null;
  timed_out: boolean;
  error_msg: string | null;
}

/** Performs one request the way pg_net reports it: errors become rows, never exceptions. */
export async function execute(req: QueuedRequest): Promise<ResponseRow> {
  const row: ResponseRow = {
    id: req.id,
    status_code: null,
    content_type: null,
    headers: null,
    content: null,
    timed_out: false,
    error_msg: null,
  };
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), req.timeout_milliseconds);
  try {
    const res = await fetch(req.url, {
      method: req.method.toUpperCase(),
      headers: req.headers ?? {},
      body: req.body ?? undefined,
      signal: controller.signal,
    });
    const content = await res.text();
    row.status_code = res.status;
    row.content_type = res.headers.get("content-type");
    row.headers = Object.fromEntries(res.headers.entries());
    row.content = content;
  } catch (e) {
    if (controller.signal.aborted) {
      row.timed_out = true;
      row.error_msg = `Timeout of ${req.timeout_milliseconds} ms reached`;
    } else {
      row.error_msg = describeFetchError(e);
    }
  } finally {
    clearTimeout(timer);
  }
  return row;
}

function describeFetchError(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (/connection refused|ECONNREFUSED/i.test(msg)) return `Couldn't connect to server: ${msg}`;
  if (/dns|lookup|getaddrinfo|Name or service not known/i.test(msg)) {
    return `Couldn't resolve host name: ${msg}`;
  }
  return msg;
}

export function startWorker(opts: WorkerOptions) {
  const log = opts.log ?? ((m: string) => console.error(`[pg_net] ${m}`));
  const batchSize = opts.batchSize ?? 200;
  const sql = postgres(opts.dbUrl, {
    max: 4,
    onnotice: () => {},
    connection: { application_name: "pg_net worker" },
  });
  let stopping = false;
  let running: Promise<void> | null = null;
  let again = false;
  const inflight = new Set<Promise<void>>();

  async function drain(): Promise<void> {
    while (!stopping) {
      const batch = await sql<QueuedRequest[]>`
        delete from net.http_request_queue
        where id in (
          select id from net.http_request_queue
          order by id
          limit ${batchSize}
          for update skip locked
        )
        returning id::text, method, url, headers, body, timeout_milliseconds`;
      if (batch.length === 0) return;
      for (const req of batch) {
        const p = execute(req)
          .then((row) =>
            sql`insert into net._http_response
                  (id, status_code, content_type, headers, content, timed_out, error_msg)
                values (${row.id}::bigint, ${row.status_code}, ${row.content_type},
                        ${row.headers ? sql.json(row.headers) : null}, ${row.content},
                        ${row.timed_out}, ${row.error_msg})`
          )
          .then(() => {}, (e) => log(`could not record response ${req.id}: ${e.message}`))
          .finally(() => inflight.delete(p));
        inflight.add(p);
      }
    }
  }

  function wake() {
    if (running) {
      again = true;
      return;
    }
    running = drain()
      .catch((e) => log(`drain failed: ${e.message}`))
      .finally(() => {
        running = null;
        if (again && !stopping) {
          again = false;
          wake();
        }
      });
  }

  async function purge() {
    const ttl = opts.ttl ??
      (await sql`select coalesce(current_setting('pg_net.ttl', true), '6 hours') as ttl`)[0].ttl;
    await sql`delete from net._http_response where created < now() - ${ttl}::interval`;
  }

  const ready = sql.listen("pg_net", () => wake(), () => wake());
  const poll = setInterval(wake, opts.pollMs ?? 1000);
  const purgeTimer = setInterval(
    () => purge().catch((e) => log(`purge failed: ${e.message}`)),
    60_000,
  );

  return {
    ready: ready.then(() => purge()).then(() => wake()),
    wake,
    purge,
    async stop() {
      stopping = true;
      clearInterval(poll);
      clearInterval(purgeTimer);
      await running;
      await Promise.allSettled([...inflight]);
      await sql.end({ timeout: 5 });
    },
  };
}

if (import.meta.main) {
  const dbUrl = Deno.env.get("SUPABASE_DB_URL");
  if (!dbUrl) throw new Error("SUPABASE_DB_URL is required");
  const worker = startWorker({ dbUrl });
  await worker.ready;
  console.error("[pg_net] worker ready");
  const stop = async () => {
    await worker.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}
