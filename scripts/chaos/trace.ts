// CRM_CHAOS_TRACE=<file>: a run's timeline for a post-mortem, appended one line per event: each
// op as the harness starts it, and each request the sandbox answers (the engine's API calls and
// the harness's admin calls), with the times it came in and was answered, method, path, status
// and the start of both bodies. It showed the write that lost the Pipedrive company fixture's
// edit (a PATCH of `org_id: null`) and the reads around it. Webhooks the sandbox sends are not
// in it (`/__admin/webhooks/deliveries` has them). Lines of concurrent requests are appended
// whole (one append each) in the order they were answered.
import type { Emulator } from "../../shared/emulators/common/emulator.ts";

const REQUEST_CHARS = 400;
const ANSWER_CHARS = 1500;

/** The trace file, or null when tracing is off. */
export function traceFile(): string | null {
  return Deno.env.get("CRM_CHAOS_TRACE") || null;
}

async function line(file: string, text: string): Promise<void> {
  await Deno.writeTextFile(file, text.replaceAll("\n", " ") + "\n", { append: true });
}

/** Records every request `emulator` answers (its handler is wrapped in place). */
export function traceSandbox(emulator: Emulator, file: string): void {
  const handle = emulator.handle.bind(emulator);
  emulator.handle = async (req: Request): Promise<Response> => {
    const at = new Date().toISOString();
    const sent = req.method === "GET" ? "" : await req.clone().text().catch(() => "");
    const res = await handle(req);
    const answer = await res.clone().text().catch(() => "");
    const u = new URL(req.url);
    await line(
      file,
      `${at} ${new Date().toISOString()} ${req.method} ${u.pathname}${u.search} ${res.status} ` +
        `REQ ${sent.slice(0, REQUEST_CHARS)} RES ${answer.slice(0, ANSWER_CHARS)}`,
    );
    return res;
  };
}

/** Records an op as the harness starts it. */
export async function traceOp(file: string, i: number, op: unknown): Promise<void> {
  await line(file, `${new Date().toISOString()} OP #${i} ${JSON.stringify(op)}`);
}
