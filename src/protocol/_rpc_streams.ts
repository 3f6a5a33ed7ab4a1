/**
 * The streams of an RpcPeer, both the ones this side opened and the ones it
 * accepted: STREAM_OPEN, items with credit-based flow control, STREAM_END,
 * and cancellation. Private to the protocol folder.
 *
 * @module
 */

import { CancelledError, ProtocolError, RemoteError } from "./errors.ts";
import { flagOpener, FrameKind, type FrameKindValue } from "./frame.ts";
import { validateStreamCredit, validateStreamEnd, validateStreamOpen, validateValue } from "./_payload.ts";
import type { FrameLink } from "./_rpc_link.ts";
import { errorPayload, StreamState } from "./_rpc_state.ts";
import type { CallOptions, StreamHandler } from "./rpc.ts";

/** One RpcPeer's streams, both ways. */
export class Streams {
  readonly #opened = new Map<number, StreamState>();
  readonly #accepted = new Map<number, StreamState>();
  /** STREAM_DATA frames received and their bytes, for RpcPeer.streamStats. */
  itemsReceived = 0;
  bytesReceived = 0;

  constructor(
    readonly link: FrameLink,
    readonly handlers: Record<string, StreamHandler>,
    /** Items a reader accepts before it must grant more credit. */
    readonly window: number,
  ) {}

  /** See RpcPeer.stream. */
  open(
    method: string,
    args: unknown[],
    input: AsyncIterable<unknown> | undefined,
    options: CallOptions,
  ): AsyncIterable<unknown> {
    return {
      [Symbol.asyncIterator]: (): AsyncIterator<unknown> =>
        this.#reader(this.#openStream(method, args, input, options), true),
    };
  }

  #openStream(
    method: string,
    args: unknown[],
    input: AsyncIterable<unknown> | undefined,
    options: CallOptions,
  ): StreamState {
    const link = this.link;
    const state = new StreamState(link.allocateId(), true, this.window);
    if (link.closed) {
      state.fail(link.closed);
      return state;
    }
    this.#opened.set(state.id, state);
    options.signal?.addEventListener("abort", () => this.#cancelStream(state), { once: true });
    const open = options.traceparent === undefined
      ? [method, args, input !== undefined]
      : [method, args, input !== undefined, options.traceparent];
    link.send(FrameKind.streamOpen, state.id, open, flagOpener);
    if (input) this.#pump(state, input, true);
    return state;
  }

  #cancelStream(state: StreamState): void {
    if (state.ended && !this.#opened.has(state.id)) return;
    this.#opened.delete(state.id);
    this.link.send(FrameKind.cancel, state.id, null, flagOpener);
    state.fail(new CancelledError(`Stream ${state.id} to ${this.link.remoteName} was cancelled`));
  }

  /** Sends items of `source` on the stream, waiting for credit; then STREAM_END. */
  async #pump(state: StreamState, source: AsyncIterable<unknown>, asOpener: boolean): Promise<void> {
    const flags = asOpener ? flagOpener : 0;
    const link = this.link;
    try {
      for await (const item of source) {
        if (state.abort.signal.aborted) return;
        await this.#takeCredit(state);
        await link.send(FrameKind.streamData, state.id, item, flags);
      }
      await link.send(FrameKind.streamEnd, state.id, null, flags);
    } catch (error) {
      if (state.abort.signal.aborted || link.closed) return;
      await link.send(FrameKind.streamEnd, state.id, errorPayload(error), flags);
    }
  }

  #takeCredit(state: StreamState): Promise<void> | void {
    if (state.creditOut > 0) {
      state.creditOut--;
      return;
    }
    return new Promise<void>((resolve, reject) => state.creditWaiters.push({ resolve, reject })).then(() =>
      this.#takeCredit(state)
    );
  }

  /** An iterator over what arrives on `state`; grants credit as it consumes. */
  #reader(state: StreamState, asOpener: boolean): AsyncIterator<unknown> {
    const flags = asOpener ? flagOpener : 0;
    return {
      next: async (): Promise<IteratorResult<unknown>> => {
        while (state.inbox.length === 0 && !state.ended) {
          await new Promise<void>((resolve) => state.waiters.push({ resolve }));
        }
        if (state.inbox.length > 0) {
          const value = state.inbox.shift();
          if (++state.consumedSinceGrant >= this.window / 2 && !state.ended) {
            this.link.send(FrameKind.streamCredit, state.id, state.consumedSinceGrant, flags);
            state.consumedSinceGrant = 0;
          }
          return { value, done: false };
        }
        if (asOpener) this.#opened.delete(state.id);
        if (state.error) throw state.error;
        return { value: undefined, done: true };
      },
      return: (): Promise<IteratorResult<unknown>> => {
        if (asOpener && !state.ended) this.#cancelStream(state);
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  onStreamOpen(id: number, bytes: Uint8Array): void {
    const link = this.link;
    let method: string, args: unknown[], hasInput: boolean, traceparent: string | undefined;
    try {
      ({ method, args, hasInput, traceparent } = validateStreamOpen(link.decode(bytes)));
    } catch (error) {
      link.send(FrameKind.streamEnd, id, { code: "bad_request", message: (error as Error).message, stack: "" });
      return;
    }
    const state = new StreamState(id, false, this.window);
    this.#accepted.set(id, state);
    const handler = this.handlers[method];
    if (!handler) {
      const known = Object.keys(this.handlers).join(", ") || "none";
      this.#accepted.delete(id);
      link.send(FrameKind.streamEnd, id, {
        code: "method_not_found",
        message: `No stream method "${method}"; available: ${known}`,
        stack: "",
      });
      return;
    }
    const input: AsyncIterable<unknown> = hasInput
      ? { [Symbol.asyncIterator]: () => this.#reader(state, false) }
      : { [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve({ value: undefined, done: true }) }) };
    if (!hasInput) state.ended = true;
    let output: AsyncIterable<unknown>;
    try {
      output = handler(input, args, { signal: state.abort.signal, peer: link.peer, traceparent });
    } catch (error) {
      output = (async function* () {
        yield* [];
        throw error;
      })();
    }
    this.#pump(state, output, false).finally(() => this.#accepted.delete(id));
  }

  onStreamFrame(kind: FrameKindValue, id: number, flags: number, bytes: Uint8Array): void {
    const fromOpener = (flags & flagOpener) !== 0;
    const remoteName = this.link.remoteName;
    // Validated before the lookup: a malformed frame is a protocol breach even for a finished stream.
    const payload = this.link.decode(bytes);
    const credit = kind === FrameKind.streamCredit ? validateStreamCredit(payload) : 0;
    const end = kind === FrameKind.streamEnd ? validateStreamEnd(payload) : null;
    if (kind === FrameKind.streamData) {
      validateValue("STREAM_DATA", payload);
      this.itemsReceived++;
      this.bytesReceived += bytes.length;
    }
    const state = fromOpener ? this.#accepted.get(id) : this.#opened.get(id);
    if (!state) return; // Already cancelled or finished here.
    if (kind === FrameKind.streamCredit) {
      state.creditOut += credit;
      for (const w of state.creditWaiters.splice(0)) w.resolve();
      return;
    }
    if (kind === FrameKind.streamEnd) {
      if (end) {
        state.fail(new RemoteError(remoteName, end.code, end.message, end.stack));
      } else {
        state.ended = true;
        state.notify();
      }
      return;
    }
    if (state.inbox.length >= this.window) {
      // The writer ignored flow control: its buffer would grow without bound here.
      throw new ProtocolError(`${remoteName} sent more stream items than its credit of ${this.window}`);
    }
    state.inbox.push(payload);
    state.notify();
  }

  /** The opener cancelled accepted stream `id`: it fails here. */
  cancel(id: number): void {
    const stream = this.#accepted.get(id);
    if (stream) {
      this.#accepted.delete(id);
      stream.fail(new CancelledError("the caller cancelled the stream"));
    }
  }

  /** Fails every stream with `error` (the peer closed). */
  failAll(error: Error): void {
    for (const state of [...this.#opened.values(), ...this.#accepted.values()]) state.fail(error);
    this.#opened.clear();
    this.#accepted.clear();
  }
}
