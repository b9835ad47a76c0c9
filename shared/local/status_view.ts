// The foreground view of `npm start`, every two seconds until Ctrl-C: on a terminal one screen
// redrawn in place (./status_render.ts renderScreen, sized to the terminal, 80×24 at least);
// through a pipe or into a log one line per change (factLines / changedLines), never a redraw.
// It ends quietly once `signal` is aborted (the stack is stopping): a failed read then is the
// services going away, not something to show.
import postgres from "postgres";
import type { StackConfig } from "./config.ts";
import { servicePids } from "./stack.ts";
import { readStatus } from "./status_data.ts";
import { changedLines, factLines, type RenderOptions, renderScreen } from "./status_render.ts";

const CLEAR = "\x1b[2J\x1b[H";
const EVERY_MS = 2000;

export interface StatusViewOptions {
  notes?: string[];
  tryIt?: string[];
  signal?: AbortSignal;
  /** Where it writes (stdout); `tty` decides redraw or lines. */
  write?: (text: string) => Promise<unknown>;
  tty?: boolean;
  size?: () => { columns: number; rows: number };
}

function terminalSize(): { columns: number; rows: number } {
  try {
    return Deno.consoleSize();
  } catch {
    return { columns: 80, rows: 24 };
  }
}

export async function runStatusView(
  cfg: StackConfig,
  env: Record<string, string>,
  o: StatusViewOptions = {},
): Promise<void> {
  const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {} });
  const tty = o.tty ?? Deno.stdout.isTerminal();
  const encoder = new TextEncoder();
  const write = o.write ?? ((s: string) => Deno.stdout.write(encoder.encode(s)));
  const size = o.size ?? terminalSize;
  let facts = new Map<string, string>();
  let failing = false;
  try {
    while (!o.signal?.aborted) {
      const services = Object.fromEntries(
        Object.entries(servicePids(cfg)).map(([k, pid]) => [k, pid !== null]),
      );
      const opts: RenderOptions = { notes: o.notes, tryIt: o.tryIt, services };
      try {
        const model = await readStatus(sql);
        if (o.signal?.aborted) break;
        failing = false;
        if (tty) {
          const { columns, rows } = size();
          const screen = renderScreen(model, {
            ...opts,
            width: Math.max(80, columns),
            height: Math.max(24, rows) - 1,
          });
          await write(CLEAR + screen.join("\n") + "\n");
        } else {
          const next = factLines(model, opts);
          const lines = changedLines(facts, next, model.at);
          facts = next;
          if (lines.length) await write(lines.join("\n") + "\n");
        }
      } catch (e) {
        if (o.signal?.aborted) break;
        // Once per outage through a pipe; on a terminal the screen says it until it recovers.
        if (tty || !failing) {
          await write(`${tty ? CLEAR : ""}status unavailable: ${(e as Error).message}\n`);
        }
        failing = true;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, EVERY_MS);
        o.signal?.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
    }
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}
