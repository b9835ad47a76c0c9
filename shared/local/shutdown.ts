// Ctrl-C for the stack's commands (scripts/stack.ts): the first SIGINT, SIGTERM or SIGHUP stops
// every service of the stack and waits for them before the process exits; a second SIGINT
// forces (SIGKILL, Postgres `immediate`). Why each part:
// - The services run in their own sessions (./processes.ts), so a terminal's SIGINT reaches
//   only this process (and npm and the shell in front of it): stopping them is our job, and
//   the process must outlive every other signal of the shutdown.
// - SIGHUP: a tmux pane or terminal closed around us (npm being the pane's command) must stop
//   the stack too, not kill this process half-way through and leave the rest running.
// - Writes to a terminal that is gone fail (EIO): messages are best effort, and a view whose
//   output fails while stopping must not end the process before the services are down.
// - A signal during start-up aborts it between steps (UpOptions.signal); the stop waits for
//   that step to end, so nothing is started after the services were stopped.

export interface ShutdownHooks {
  /** Graceful stop of every service (stack.ts `down`). */
  stop(): Promise<void>;
  /** Forced stop (stack.ts `kill`). */
  kill(): Promise<void>;
  say?: (msg: string) => void;
  exit?: (code: number) => void;
}

export interface Shutdown {
  /** Aborted by the first signal: pass it to `up`. */
  readonly signal: AbortSignal;
  readonly stopping: boolean;
  /** Work the stop must wait for before stopping services (the start-up in progress). */
  track<T>(p: Promise<T>): Promise<T>;
  /** Never settles: await it where the command would otherwise end while stopping. */
  readonly done: Promise<never>;
  /** Stop as if signalled (e.g. the command's own end); resolves when exit was called. */
  begin(reason: string): Promise<void>;
  dispose(): void;
}

export function say(msg: string): void {
  try {
    console.error(msg);
  } catch { /* the terminal is gone */ }
}

export function handleShutdown(h: ShutdownHooks): Shutdown {
  const log = h.say ?? say;
  const exit = h.exit ?? ((code: number) => Deno.exit(code));
  const ac = new AbortController();
  let busy: Promise<unknown> = Promise.resolve();
  let stopping: Promise<void> | null = null;
  let forcing = false;

  const begin = (reason: string) =>
    stopping ??= (async () => {
      ac.abort(new Error(`stopping (${reason})`));
      log(`\nstopping the stack (${reason}); Ctrl-C again to force`);
      await busy.catch(() => {});
      try {
        await h.stop();
        // A second Ctrl-C meanwhile: the forced stop ends the process once it is done.
        if (forcing) return;
        log("stack stopped");
        exit(0);
      } catch (e) {
        if (forcing) return;
        log(`stop failed: ${(e as Error).message}; forcing`);
        forcing = true;
        await h.kill().catch(() => {});
        exit(1);
      }
    })();

  const force = async () => {
    if (forcing) return;
    forcing = true;
    log("\nforcing: killing every process of the stack");
    await h.kill().catch((e) => log(`kill failed: ${(e as Error).message}`));
    // The graceful stop may still have a step in flight (a pg_ctl it started): with every
    // service killed it ends at once; exiting before it would leave that child behind.
    await Promise.race([stopping, new Promise((r) => setTimeout(r, 3000))]).catch(() => {});
    exit(130);
  };

  const onInt = () => void (stopping ? force() : begin("Ctrl-C"));
  const onTerm = () => void begin("SIGTERM");
  const onHup = () => void begin("the terminal closed");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGHUP", onHup);

  return {
    signal: ac.signal,
    get stopping() {
      return stopping !== null;
    },
    track<T>(p: Promise<T>): Promise<T> {
      busy = p;
      return p;
    },
    done: new Promise<never>(() => {}),
    begin,
    dispose() {
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGTERM", onTerm);
      Deno.removeSignalListener("SIGHUP", onHup);
    },
  };
}
