/**
 * Assertions for the emulator tests (only npm packages are available offline
 * here, so no @std/assert; deep equality comes from `node:util`).
 */
import { inspect, isDeepStrictEqual } from "node:util";

export class AssertionError extends Error {
  override name = "AssertionError";
}

function fail(msg: string | undefined, detail: string): never {
  throw new AssertionError(msg ? `${msg}: ${detail}` : detail);
}

export function assert(cond: unknown, msg?: string): asserts cond {
  if (!cond) fail(msg, "expected a truthy value");
}

export function assertFalse(cond: unknown, msg?: string): void {
  if (cond) fail(msg, "expected a falsy value");
}

export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (!isDeepStrictEqual(actual, expected)) {
    fail(
      msg,
      `values differ\n  actual:   ${inspect(actual, { depth: 6 })}\n  expected: ${
        inspect(expected, { depth: 6 })
      }`,
    );
  }
}

export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  if (isDeepStrictEqual(actual, expected)) {
    fail(msg, `expected values to differ: ${inspect(actual)}`);
  }
}

export function assertMatch(actual: string, re: RegExp, msg?: string): void {
  if (!re.test(actual)) fail(msg, `${JSON.stringify(actual)} does not match ${re}`);
}

export function assertGreater(a: number, b: number, msg?: string): void {
  if (!(a > b)) fail(msg, `expected ${a} > ${b}`);
}

export function assertAtLeast(a: number, b: number, msg?: string): void {
  if (!(a >= b)) fail(msg, `expected ${a} >= ${b}`);
}

/** Await a rejection and return the error for further checks. */
export async function assertRejects(
  fn: () => PromiseLike<unknown>,
  msg?: string,
): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  fail(msg, "expected the promise to reject");
}
