// The part of cli-progress 3.12.0 (which ships no types) that ./backfill_view.ts uses.
export interface BarParams {
  progress: number;
  value: number;
  total: number;
}

export type FormatFn<P> = (options: Options<P>, params: BarParams, payload: P) => string;

export interface Options<P> {
  stream?: { write(chunk: string): unknown; isTTY?: boolean; columns?: number };
  format?: string | FormatFn<P>;
  barsize?: number;
  barCompleteChar?: string;
  barIncompleteChar?: string;
  gracefulExit?: boolean;
  hideCursor?: boolean;
  linewrap?: boolean;
  clearOnComplete?: boolean;
  throttleTime?: number;
}

export interface Bar<P> {
  setTotal(total: number): void;
  update(value: number, payload?: P): void;
}

export class MultiBar<P> {
  constructor(options: Options<P>);
  create(total: number, start: number, payload?: P): Bar<P>;
  update(): void;
  log(s: string): void;
  stop(): void;
}

declare const cliProgress: {
  MultiBar: typeof MultiBar;
  Format: { Formatter<P>(options: Options<P>, params: BarParams, payload: P): string };
};
export default cliProgress;
