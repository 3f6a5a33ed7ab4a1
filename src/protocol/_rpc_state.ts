/**
 * The state RpcPeer keeps per call and per stream, and small helpers of its
 * call path; private to the protocol folder.
 *
 * @module
 */

import type { setTimeout } from "node:timers";
import type { HandlerContext, RpcPeer } from "./rpc.ts";

export interface PendingCall {
  resolve(value: unknown): void;
  reject(error: Error): void;
  cleanup(): void;
}

/** Told when a call settles (see RpcPeer.call); the host's metrics and tracing implement it. */
export interface CallObserver {
  /** Called once, just before the call's promise settles: `state` is what the caller passed, `error` set on failure. */
  settled(method: string, state: unknown, error?: Error): void;
}

/**
 * A pending call with an observer: one object per call, no closure and no
 * second promise (a `.then` around the call cost the echo call ~0.6 µs, 13 %).
 */
export class ObservedCall implements PendingCall {
  constructor(
    readonly settle: (value: unknown) => void,
    readonly fail: (error: Error) => void,
    readonly cleanup: () => void,
    readonly observer: CallObserver,
    readonly method: string,
    readonly state: unknown,
  ) {}

  resolve(value: unknown): void {
    this.observer.settled(this.method, this.state);
    this.settle(value);
  }

  reject(error: Error): void {
    this.observer.settled(this.method, this.state, error);
    this.fail(error);
  }
}

/** One direction-pair of a stream: what arrived, and credit to send. */
export class StreamState {
  readonly inbox: unknown[] = [];
  readonly waiters: { resolve(): void }[] = [];
  readonly creditWaiters: { resolve(): void; reject(e: Error): void }[] = [];
  ended = false;
  error: Error | undefined;
  creditOut: number;
  consumedSinceGrant = 0;
  readonly abort = new AbortController();

  constructor(readonly id: number, readonly opener: boolean, window: number) {
    this.creditOut = window;
  }

  notify(): void {
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  fail(error: Error): void {
    if (this.ended && this.error) return;
    this.ended = true;
    this.error = error;
    this.notify();
    for (const w of this.creditWaiters.splice(0)) w.reject(error);
    this.abort.abort(error);
  }
}

/**
 * A request this side is serving, and the context its handler gets. The
 * AbortController is made only when the handler reads `signal` (most never do:
 * it is the costliest object of a call) or when the call is aborted first.
 */
export class ServedCall implements HandlerContext {
  #controller: AbortController | undefined;
  aborted = false;
  timer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly peer: RpcPeer, readonly traceparent: string | undefined) {}

  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    // A handler that reads `signal` later finds it aborted with the reason.
    (this.#controller ??= new AbortController()).abort(reason);
  }
}

/** Serializes an error for an ERROR frame. */
export function errorPayload(error: unknown): { code: string; message: string; stack: string } {
  const e = error instanceof Error ? error : new Error(String(error));
  const raw = (e as unknown as { code?: unknown }).code;
  const code = typeof raw === "string" ? raw : "handler_error";
  return { code, message: e.message, stack: e.stack ?? "" };
}

export function reportListenerError(error: unknown, event: string): void {
  console.error(`plugin-shm: an event listener for "${event}" threw; the connection stays up:`, error);
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}
