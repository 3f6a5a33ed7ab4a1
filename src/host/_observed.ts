/**
 * The host's call observers: the metrics' `begin`/`end` and a tracing span
 * around each call the host routes, told by the RPC peer when the call
 * settles. One observer object per plugin (per call only when traced), so an
 * instrumented call costs no second promise and no closure.
 *
 * @module
 */

import type { CallObserver } from "../protocol/rpc.ts";
import type { CallInstrumentation, CallSpan } from "./types.ts";

/** Ends the instrumentation's measurement of a call to `plugin`. */
export class InstrumentedCalls implements CallObserver {
  constructor(readonly plugin: string, readonly instrumentation: CallInstrumentation) {}

  settled(method: string, state: unknown, error?: Error): void {
    this.instrumentation.end(this.plugin, method, state, error);
  }
}

/** A traced call's state: the instrumentation's (if any) and its client span. */
export class TracedCall implements CallObserver {
  constructor(
    readonly plugin: string,
    readonly instrumentation: CallInstrumentation | undefined,
    readonly measure: unknown,
    readonly span: CallSpan,
  ) {}

  settled(method: string, _state: unknown, error?: Error): void {
    this.instrumentation?.end(this.plugin, method, this.measure, error);
    this.span.end(error);
  }
}
