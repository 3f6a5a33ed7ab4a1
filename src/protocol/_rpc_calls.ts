/**
 * The calling side of an RpcPeer: requests this side makes, their deadlines
 * and cancellation, and the RESPONSE or ERROR that settles each. Private to
 * the protocol folder.
 *
 * @module
 */

import { clearTimeout, setTimeout } from "node:timers";
import { CancelledError, DeadlineExceededError, ProtocolError, RemoteError } from "./errors.ts";
import { flagOpener, FrameKind } from "./frame.ts";
import { validateError, validateValue } from "./_payload.ts";
import type { FrameLink } from "./_rpc_link.ts";
import { type CallObserver, ObservedCall, type PendingCall } from "./_rpc_state.ts";
import type { CallOptions } from "./rpc.ts";

/** The requests in flight that one RpcPeer made. */
export class OutgoingCalls {
  readonly #pending = new Map<number, PendingCall>();

  constructor(readonly link: FrameLink) {}

  /** Requests in flight. */
  get size(): number {
    return this.#pending.size;
  }

  /** See RpcPeer.call. */
  call(
    method: string,
    args: unknown[],
    options: CallOptions,
    observer: CallObserver | undefined,
    state: unknown,
  ): Promise<unknown> {
    const link = this.link;
    if (link.closed) return failCall(link.closed, method, observer, state);
    if (options.signal?.aborted) {
      return failCall(new CancelledError(`Call to ${method} was cancelled before it started`), method, observer, state);
    }
    const request = options.traceparent === undefined
      ? [method, args, options.deadlineMs ?? null]
      : [method, args, options.deadlineMs ?? null, options.traceparent];
    const id = link.allocateId();
    const frame = link.encode(FrameKind.request, id, request, flagOpener);
    // Only this call fails (an argument too large to send, say); the connection stays up.
    if (frame instanceof Error) return failCall(frame, method, observer, state);
    // A module-level executor: no closure and no context per call, only the promise and its resolving functions.
    const promise = new Promise(captureResolvers);
    const cleanup = options.signal === undefined && options.deadlineMs === undefined
      ? noop
      : this.#arm(id, method, options);
    this.#pending.set(
      id,
      observer
        ? new ObservedCall(capturedResolve, capturedReject, cleanup, observer, method, state)
        : { resolve: capturedResolve, reject: capturedReject, cleanup },
    );
    link.write(frame);
    return promise;
  }

  /** Sets the call's deadline timer and abort listener; returns what disarms them. */
  #arm(id: number, method: string, options: CallOptions): () => void {
    const { signal, deadlineMs } = options;
    if (!signal && deadlineMs === undefined) return noop;
    const remoteName = this.link.remoteName;
    const giveUp = (error: Error) => {
      const call = this.#pending.get(id);
      if (!call) return;
      this.#pending.delete(id);
      cleanup();
      this.link.send(FrameKind.cancel, id, null, flagOpener);
      call.reject(error);
    };
    const onAbort = () => giveUp(new CancelledError(`Call to ${remoteName}.${method} was cancelled`));
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = deadlineMs === undefined ? undefined : setTimeout(
      () =>
        giveUp(
          new DeadlineExceededError(`Call to ${remoteName}.${method} exceeded its ${deadlineMs} ms deadline`),
        ),
      deadlineMs,
    );
    const cleanup = () => {
      signal?.removeEventListener("abort", onAbort);
      if (timer) clearTimeout(timer);
    };
    return cleanup;
  }

  onResponse(id: number, bytes: Uint8Array): void {
    // Validated before the call leaves the table: a malformed RESPONSE closes the
    // endpoint, and close() must still find the call to reject it (else it hangs).
    const value = validateValue("RESPONSE", this.link.decode(bytes));
    const call = this.#pending.get(id);
    if (!call) return; // Cancelled or timed out here already.
    this.#pending.delete(id);
    call.cleanup();
    call.resolve(value);
  }

  onError(id: number, bytes: Uint8Array): void {
    const payload = validateError(this.link.decode(bytes));
    const remoteName = this.link.remoteName;
    const error = new RemoteError(remoteName, payload.code, payload.message, payload.stack);
    if (id === 0) throw new ProtocolError(`${remoteName} reported a connection error: ${error.message}`);
    const call = this.#pending.get(id);
    if (!call) return;
    this.#pending.delete(id);
    call.cleanup();
    call.reject(error);
  }

  /** Rejects every call in flight with `error` (the peer closed). */
  failAll(error: Error): void {
    for (const [id, call] of this.#pending) {
      this.#pending.delete(id);
      call.cleanup();
      call.reject(error);
    }
  }
}

function noop(): void {}

// What captureResolvers last saw: read right after `new Promise(captureResolvers)`, which calls it synchronously.
let capturedResolve: (value: unknown) => void = noop;
let capturedReject: (error: Error) => void = noop;

function captureResolvers(resolve: (value: unknown) => void, reject: (error: Error) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/** A call that fails before it is sent, its observer told first. */
function failCall(error: Error, method: string, observer: CallObserver | undefined, state: unknown): Promise<never> {
  observer?.settled(method, state, error);
  return Promise.reject(error);
}
