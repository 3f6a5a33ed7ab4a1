/**
 * The symmetric RPC endpoint both host and plugin run after the handshake:
 * requests with ids, deadlines and cancellation, errors that carry the remote
 * stack, events both ways, heartbeats, and streams with credit-based flow
 * control. The same class serves a plugin's methods and a host's functions.
 *
 * @module
 */

import { clearInterval, clearTimeout, setInterval, setTimeout } from "node:timers";
import { CancelledError, DeadlineExceededError, ProtocolError, RemoteError } from "./errors.ts";
import { ChannelClosedError, MessageTooLargeError } from "../transport/errors.ts";
import { sentAtOnce, type Transport } from "../transport/transport.ts";
import {
  compressFrame,
  decodeHeader,
  decodePayload,
  type EncodedFrame,
  encodeFrameInPlace,
  flagOpener,
  frameHeaderBytes,
  FrameKind,
  type FrameKindValue,
} from "./frame.ts";
import {
  type CallObserver,
  errorPayload,
  isThenable,
  ObservedCall,
  type PendingCall,
  reportListenerError,
  ServedCall,
  StreamState,
} from "./_rpc_state.ts";
import {
  validateEmpty,
  validateError,
  validateEvent,
  validatePing,
  validateRequest,
  validateStreamCredit,
  validateStreamEnd,
  validateStreamOpen,
  validateValue,
} from "./_payload.ts";

export type { CallObserver } from "./_rpc_state.ts";

/**
 * A remote side's methods as a caller sees them: every call is async.
 * `host.client<typeof kv.methods>("kv")` has this type.
 */
export type PluginClient<M extends object> = {
  [K in keyof M]: M[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/** Per-call options. */
export interface CallOptions {
  /** Cancels the call; the remote handler's `signal` aborts too. */
  signal?: AbortSignal;
  /** Milliseconds the call may take; both sides give up after it. */
  deadlineMs?: number;
  /** The caller's W3C trace context, sent with the request (set by a tracing layer, not per call by hand). */
  traceparent?: string;
}

/** What a handler gets besides its arguments. */
export interface HandlerContext {
  /** Aborts when the caller cancels or the deadline passes. */
  readonly signal: AbortSignal;
  /** The endpoint, to call back into the other side or emit events. */
  readonly peer: RpcPeer;
  /** The caller's W3C trace context, if its request carried one. */
  readonly traceparent?: string;
}

/** A request handler: positional arguments in, a MessagePack-able value out. */
export type Handler = (args: unknown[], context: HandlerContext) => unknown;

/** A stream handler: an input stream and arguments in, an output stream out. */
export type StreamHandler = (
  input: AsyncIterable<unknown>,
  args: unknown[],
  context: HandlerContext,
) => AsyncIterable<unknown>;

/** Counters of an {@link RpcPeer}'s stream items (STREAM_DATA frames), for metrics. */
export interface StreamStats {
  /** STREAM_DATA frames sent, over all streams. */
  itemsSent: number;
  /** STREAM_DATA frames received, over all streams. */
  itemsReceived: number;
  /** Bytes of the STREAM_DATA frames sent (header and payload). */
  bytesSent: number;
  /** Bytes of the STREAM_DATA frames received (header and payload). */
  bytesReceived: number;
}

/** Options for {@link RpcPeer}. */
export interface RpcPeerOptions {
  /** The other side's name, for error messages ("host" or the plugin's name). */
  remoteName: string;
  /** Methods the other side may call, by name. Default: none (every call gets `method_not_found`). */
  handlers?: Record<string, Handler>;
  /** Stream methods the other side may open, by name. Default: none. */
  streamHandlers?: Record<string, StreamHandler>;
  /** Receives every EVENT frame the other side sends. Default: events are dropped. */
  onEvent?: (name: string, data: unknown) => void;
  /**
   * How often to check that the other side is alive; 0 disables. Default
   * 1000. Each check sends a PING, unless the transport shows the other
   * side's heartbeat word moving ({@link beatIntervalMs}): then only every
   * {@link pingEveryChecks}th check does, to measure the round trip.
   */
  heartbeatIntervalMs?: number;
  /**
   * Whether this endpoint runs its own heartbeat timer. Default true. An owner
   * of many endpoints (the host) passes false and calls
   * {@link RpcPeer.checkLiveness} on all of them from one timer: one wake-up a
   * heartbeat instead of one per plugin (64 idle plugins: 65 → 1 a second).
   */
  heartbeatTimer?: boolean;
  /**
   * Bump the transport's heartbeat word (Transport.beat, shm only) every this
   * many ms, so the other side sees this event loop alive without a PING and
   * a PONG, two wake-ups of each side. 0 (default): no beat. A plugin uses the
   * host's heartbeat interval from WELCOME.
   */
  beatIntervalMs?: number;
  /** The protocol version the handshake settled on; kept so every layer above can ask. */
  protocolVersion?: number;
  /**
   * Called when `onEvent` throws: a listener's failure is reported here and
   * never closes the connection. Default: written to stderr.
   */
  onListenerError?: (error: unknown, event: string) => void;
  /** Items a stream reader accepts before it must grant more credit. Default 32. */
  streamCreditWindow?: number;
  /**
   * Turns the error that ended the connection into the one pending calls get,
   * e.g. a host waits for the plugin's exit status to report a crash.
   */
  explainLoss?: (error: Error) => Promise<Error>;
  /** Called with the round trip of each of this side's PINGs, in ms, when its PONG arrives. */
  onHeartbeat?: (rttMs: number) => void;
  /**
   * Compression the handshake agreed on (WELCOME's `compression`): payloads of
   * at least `thresholdBytes` go out compressed when that makes them smaller,
   * and compressed frames are accepted. Default: none (a compressed frame is a
   * protocol error).
   */
  compression?: { algorithm: "deflate"; thresholdBytes: number };
}

/** Default {@link RpcPeerOptions.heartbeatIntervalMs}. */
export const heartbeatIntervalMsDefault = 1000;
/**
 * While the other side's heartbeat word moves, one liveness check in this many
 * sends a PING, for the round trip metric (64 idle plugins: PING/PONG every
 * second cost 2.7-3.4 % of a core in all, no pings 0.8 %).
 */
export const pingEveryChecks = 10;
/** Default {@link RpcPeerOptions.streamCreditWindow}. */
export const streamCreditWindowDefault = 32;
/** Largest request or stream id before ids wrap to 1. */
const idMax = 0xffff_fffe;
/**
 * Endpoints made so far: each starts its PING count at a different phase, so a host that checks all its plugins
 * from one timer pings a tenth of them at each check, not all of them at every tenth.
 */
let endpointsMade = 0;
/** Frames {@link RpcPeer.run} dispatches per await of the transport when they are already there. */
const drainFramesMax = 64;

/**
 * An RPC endpoint over a {@link Transport}. Call {@link RpcPeer.run} once to
 * start reading; it settles when the transport closes.
 *
 * @example
 * ```ts
 * import { RpcPeer } from "./rpc.ts";
 * import { ShmChannel } from "../transport/shm_channel.ts";
 * const a = ShmChannel.create();
 * const b = ShmChannel.attach(a.name, a.token);
 * const server = new RpcPeer(b, { remoteName: "host", handlers: { add: ([x, y]) => (x as number) + (y as number) } });
 * const client = new RpcPeer(a, { remoteName: "math" });
 * server.run();
 * client.run();
 * console.log(await client.call("add", [1, 2]));
 * client.close();
 * server.close();
 * ```
 */
export class RpcPeer {
  /** The other side's name, for error messages ("host" or the plugin's name). */
  readonly remoteName: string;
  readonly #transport: Transport;
  readonly #handlers: Record<string, Handler>;
  readonly #streamHandlers: Record<string, StreamHandler>;
  readonly #onEvent: ((name: string, data: unknown) => void) | undefined;
  readonly #window: number;
  readonly #explainLoss: ((error: Error) => Promise<Error>) | undefined;
  readonly #calls = new Map<number, PendingCall>();
  readonly #served = new Map<number, ServedCall>();
  readonly #opened = new Map<number, StreamState>();
  readonly #accepted = new Map<number, StreamState>();
  #nextId = 1;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #beat: ReturnType<typeof setInterval> | undefined;
  /** The other side's heartbeat word at the last check, and checks since the last PING. */
  #peerBeatSeen = 0;
  #checksSincePing = endpointsMade++ % pingEveryChecks;
  #closed: Error | undefined;
  /** Frames received, and the count when lastFrameAt last looked (frames are counted, not timed, on the call path). */
  #framesReceived = 0;
  #framesSeen = 0;
  #lastSignAt = performance.now();

  /**
   * performance.now() of the last sign of life from the other side: a frame,
   * or (shm) its heartbeat word moving. Frames are timed when this is read,
   * not when they arrive (a clock read per frame cost ~6 % of a pipelined
   * call in Deno), so a frame counts as up to one read interval late: a
   * watchdog reading it every interval under-counts silence by at most that.
   */
  get lastFrameAt(): number {
    if (this.#framesReceived !== this.#framesSeen) {
      this.#framesSeen = this.#framesReceived;
      this.#lastSignAt = performance.now();
    }
    return this.#lastSignAt;
  }
  // STREAM_DATA frames each way, for streamStats(): plain increments.
  #streamItemsSent = 0;
  #streamBytesSent = 0;
  #streamItemsReceived = 0;
  #streamBytesReceived = 0;

  /** STREAM_DATA items and their frame bytes (header and MessagePack payload) both ways, over all streams. */
  streamStats(): StreamStats {
    return {
      itemsSent: this.#streamItemsSent,
      itemsReceived: this.#streamItemsReceived,
      bytesSent: this.#streamBytesSent,
      bytesReceived: this.#streamBytesReceived,
    };
  }
  /** True once the remote said GOODBYE (it is draining). */
  remoteDraining = false;
  /** True once this side said GOODBYE: new requests from the remote are refused with `draining`. */
  localDraining = false;
  /** The negotiated protocol version (0 when the endpoint was made without a handshake). */
  readonly protocolVersion: number;
  /** The PING interval this endpoint uses, in ms (0: no heartbeat). */
  readonly heartbeatIntervalMs: number;
  readonly #onListenerError: (error: unknown, event: string) => void;
  readonly #onHeartbeat: ((rttMs: number) => void) | undefined;
  /** Smallest payload sent compressed; Infinity when compression is off. */
  readonly #compressFrom: number;
  /** Largest payload a compressed frame may inflate to; 0 when compression is off. */
  readonly #inflatedBytesMax: number;

  /** Wraps `transport`; call {@link run} to start reading frames. */
  constructor(transport: Transport, options: RpcPeerOptions) {
    this.#transport = transport;
    this.remoteName = options.remoteName;
    this.#handlers = options.handlers ?? {};
    this.#streamHandlers = options.streamHandlers ?? {};
    this.#onEvent = options.onEvent;
    this.#window = options.streamCreditWindow ?? streamCreditWindowDefault;
    this.#explainLoss = options.explainLoss;
    const interval = options.heartbeatIntervalMs ?? heartbeatIntervalMsDefault;
    this.heartbeatIntervalMs = interval;
    this.protocolVersion = options.protocolVersion ?? 0;
    this.#onListenerError = options.onListenerError ?? reportListenerError;
    this.#onHeartbeat = options.onHeartbeat;
    this.#compressFrom = options.compression ? options.compression.thresholdBytes : Infinity;
    this.#inflatedBytesMax = options.compression ? transport.messageBytesMax : 0;
    if (interval > 0 && options.heartbeatTimer !== false) {
      this.#heartbeat = setInterval(this.#check, interval);
      this.#heartbeat.unref();
    }
    const beatMs = options.beatIntervalMs ?? 0;
    if (beatMs > 0 && transport.beat) {
      transport.beat(); // At once, so the other side stops pinging from its first check.
      this.#beat = setInterval(() => transport.beat!(), beatMs);
      this.#beat.unref();
    }
  }

  /**
   * One liveness check: a moving heartbeat word counts as a sign of life
   * (lastFrameAt); a PING goes out when the word never moved (a peer without
   * one) or for every pingEveryChecks-th check (the round trip metric).
   */
  readonly #check = (): void => {
    const beat = this.#transport.peerBeat?.() ?? 0;
    if (beat !== this.#peerBeatSeen) {
      this.#peerBeatSeen = beat;
      this.#lastSignAt = performance.now();
    }
    if (beat !== 0 && ++this.#checksSincePing < pingEveryChecks) return;
    this.#checksSincePing = 0;
    // The sender's monotonic clock in ms: the PONG brings it back for the round trip.
    this.#send(FrameKind.ping, 0, performance.now());
  };

  /**
   * One liveness check now (what the heartbeat timer does every interval), for
   * an owner that passed `heartbeatTimer: false`. Nothing once closed or with
   * heartbeats off.
   */
  checkLiveness(): void {
    if (this.heartbeatIntervalMs > 0 && !this.#closed) this.#check();
  }

  /** Requests in flight that this side made. */
  get pendingCalls(): number {
    return this.#calls.size;
  }

  /** Requests from the other side that this side is serving now. */
  get servingCalls(): number {
    return this.#served.size;
  }

  /** The error the endpoint closed with, if closed. */
  get closedWith(): Error | undefined {
    return this.#closed;
  }

  /** Reads frames until the transport closes, then fails everything pending. */
  async run(): Promise<void> {
    const transport = this.#transport;
    try {
      for (;;) {
        this.#dispatch(await transport.receive());
        if (!transport.tryReceive) continue;
        // The rest of a burst is dispatched here, without a promise and an await per frame (pipelined calls in Deno:
        // see the commit that added this for the numbers); the bound hands the loop back to the event loop's queue.
        for (let i = 1; i < drainFramesMax; i++) {
          const bytes = transport.tryReceive();
          if (bytes === undefined) break;
          this.#dispatch(bytes);
        }
      }
    } catch (error) {
      const lost = error instanceof ChannelClosedError && error.code !== "local" && this.#explainLoss;
      this.close(lost ? await this.#explainLoss!(error) : error as Error);
    }
  }

  /**
   * Calls `method` on the other side. An `observer` (the host's metrics and
   * tracing) is told with `state` just before the returned promise settles,
   * however it settles, without a second promise around the call.
   */
  call(
    method: string,
    args: unknown[] = [],
    options: CallOptions = {},
    observer?: CallObserver,
    state?: unknown,
  ): Promise<unknown> {
    if (this.#closed) return failCall(this.#closed, method, observer, state);
    if (options.signal?.aborted) {
      return failCall(new CancelledError(`Call to ${method} was cancelled before it started`), method, observer, state);
    }
    const request = options.traceparent === undefined
      ? [method, args, options.deadlineMs ?? null]
      : [method, args, options.deadlineMs ?? null, options.traceparent];
    const id = this.#allocateId();
    const frame = this.#encode(FrameKind.request, id, request, flagOpener);
    // Only this call fails (an argument too large to send, say); the connection stays up.
    if (frame instanceof Error) return failCall(frame, method, observer, state);
    // A module-level executor: no closure and no context per call, only the promise and its resolving functions.
    const promise = new Promise(captureResolvers);
    const cleanup = options.signal === undefined && options.deadlineMs === undefined
      ? noop
      : this.#armCall(id, method, options);
    this.#calls.set(
      id,
      observer
        ? new ObservedCall(capturedResolve, capturedReject, cleanup, observer, method, state)
        : { resolve: capturedResolve, reject: capturedReject, cleanup },
    );
    this.#write(frame);
    return promise;
  }

  #armCall(id: number, method: string, options: CallOptions): () => void {
    const { signal, deadlineMs } = options;
    if (!signal && deadlineMs === undefined) return noop;
    const giveUp = (error: Error) => {
      const call = this.#calls.get(id);
      if (!call) return;
      this.#calls.delete(id);
      cleanup();
      this.#send(FrameKind.cancel, id, null, flagOpener);
      call.reject(error);
    };
    const onAbort = () => giveUp(new CancelledError(`Call to ${this.remoteName}.${method} was cancelled`));
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = deadlineMs === undefined ? undefined : setTimeout(
      () =>
        giveUp(
          new DeadlineExceededError(`Call to ${this.remoteName}.${method} exceeded its ${deadlineMs} ms deadline`),
        ),
      deadlineMs,
    );
    const cleanup = () => {
      signal?.removeEventListener("abort", onAbort);
      if (timer) clearTimeout(timer);
    };
    return cleanup;
  }

  /** Sends an event to the other side. */
  emit(name: string, data?: unknown): Promise<void> {
    return this.#send(FrameKind.event, 0, [name, data ?? null]);
  }

  /**
   * Tells the other side this one is draining: from now on this side refuses
   * new requests with `draining`, and the other side should send none.
   */
  goodbye(): Promise<void> {
    if (this.localDraining) return Promise.resolve();
    this.localDraining = true;
    return this.#send(FrameKind.goodbye, 0, null);
  }

  /**
   * Opens a stream to `method`. Items of `input` flow to the handler; the
   * handler's outputs come back. Breaking out of the loop cancels the stream.
   */
  stream(
    method: string,
    args: unknown[] = [],
    input?: AsyncIterable<unknown>,
    options: CallOptions = {},
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
    const state = new StreamState(this.#allocateId(), true, this.#window);
    if (this.#closed) {
      state.fail(this.#closed);
      return state;
    }
    this.#opened.set(state.id, state);
    options.signal?.addEventListener("abort", () => this.#cancelStream(state), { once: true });
    const open = options.traceparent === undefined
      ? [method, args, input !== undefined]
      : [method, args, input !== undefined, options.traceparent];
    this.#send(FrameKind.streamOpen, state.id, open, flagOpener);
    if (input) this.#pump(state, input, true);
    return state;
  }

  #cancelStream(state: StreamState): void {
    if (state.ended && !this.#opened.has(state.id)) return;
    this.#opened.delete(state.id);
    this.#send(FrameKind.cancel, state.id, null, flagOpener);
    state.fail(new CancelledError(`Stream ${state.id} to ${this.remoteName} was cancelled`));
  }

  /** Sends items of `source` on the stream, waiting for credit; then STREAM_END. */
  async #pump(state: StreamState, source: AsyncIterable<unknown>, asOpener: boolean): Promise<void> {
    const flags = asOpener ? flagOpener : 0;
    try {
      for await (const item of source) {
        if (state.abort.signal.aborted) return;
        await this.#takeCredit(state);
        await this.#send(FrameKind.streamData, state.id, item, flags);
      }
      await this.#send(FrameKind.streamEnd, state.id, null, flags);
    } catch (error) {
      if (state.abort.signal.aborted || this.#closed) return;
      await this.#send(FrameKind.streamEnd, state.id, errorPayload(error), flags);
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
          if (++state.consumedSinceGrant >= this.#window / 2 && !state.ended) {
            this.#send(FrameKind.streamCredit, state.id, state.consumedSinceGrant, flags);
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

  /** Closes the endpoint; every pending call and stream fails with `error`. Idempotent. */
  close(error: Error = new ChannelClosedError("local", `Connection to ${this.remoteName} was closed`)): void {
    if (this.#closed) return;
    this.#closed = error;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (this.#beat) clearInterval(this.#beat);
    for (const [id, call] of this.#calls) {
      this.#calls.delete(id);
      call.cleanup();
      call.reject(error);
    }
    for (const served of this.#served.values()) served.abort(error);
    this.#served.clear();
    for (const state of [...this.#opened.values(), ...this.#accepted.values()]) state.fail(error);
    this.#opened.clear();
    this.#accepted.clear();
    this.#transport.close();
  }

  #allocateId(): number {
    const id = this.#nextId;
    this.#nextId = id >= idMax ? 1 : id + 1;
    return id;
  }

  /**
   * Sends one frame. A frame that cannot be encoded or is over the
   * transport's limit rejects and leaves the connection up; a transport
   * failure closes the endpoint.
   */
  #send(kind: FrameKindValue, id: number, payload: unknown, flags = 0): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const frame = this.#encode(kind, id, payload, flags);
    return frame instanceof Error ? Promise.reject(frame) : this.#write(frame);
  }

  /**
   * One frame, encoded in place (use it before the next encode), or the error that says why it cannot be sent
   * (returned: no throw on the call path).
   */
  #encode(kind: FrameKindValue, id: number, payload: unknown, flags: number): EncodedFrame | Error {
    let frame: EncodedFrame;
    try {
      frame = encodeFrameInPlace(kind, id, payload, flags);
    } catch (error) {
      return new TypeError(`Cannot encode the payload as MessagePack: ${(error as Error).message}`);
    }
    if (frame.end - frame.start - frameHeaderBytes >= this.#compressFrom) {
      try {
        const compressed = compressFrame(frame.bytes.subarray(frame.start, frame.end));
        if (compressed) frame = { bytes: compressed, start: 0, end: compressed.length };
      } catch (error) {
        return new TypeError(`Cannot compress the payload: ${(error as Error).message}`);
      }
    }
    const length = frame.end - frame.start;
    if (length > this.#transport.messageBytesMax) {
      return new MessageTooLargeError(length, this.#transport.messageBytesMax);
    }
    if (kind === FrameKind.streamData) {
      this.#streamItemsSent++;
      this.#streamBytesSent += length;
    }
    return frame;
  }

  /** Hands an encoded frame to the transport; its failure closes the endpoint (one shared handler, no closure per frame). */
  #write(frame: EncodedFrame): Promise<void> {
    const transport = this.#transport;
    const sent = transport.sendRange
      ? transport.sendRange(frame.bytes, frame.start, frame.end)
      : transport.send(frame.bytes.subarray(frame.start, frame.end));
    return sent === sentAtOnce ? sent : sent.catch(this.#lose);
  }

  readonly #lose = (error: Error): void => this.close(error);

  #dispatch(bytes: Uint8Array): void {
    this.#framesReceived++;
    // The header read in place, as decodeHeader does, without an object per frame.
    if (bytes.length < frameHeaderBytes) decodeHeader(bytes); // Throws the ProtocolError that says why.
    const kind = bytes[0];
    const flags = bytes[1];
    const id = (bytes[4] | (bytes[5] << 8) | (bytes[6] << 16) | (bytes[7] << 24)) >>> 0;
    switch (kind) {
      case FrameKind.request:
        return this.#onRequest(id, bytes);
      case FrameKind.response:
        return this.#onResponse(id, bytes);
      case FrameKind.error:
        return this.#onError(id, bytes);
      case FrameKind.cancel:
        validateEmpty(decodePayload(bytes, this.#inflatedBytesMax), "CANCEL");
        return this.#onCancel(id, flags);
      case FrameKind.event:
        return this.#onEventFrame(bytes);
      case FrameKind.ping:
        this.#send(FrameKind.pong, 0, validatePing(decodePayload(bytes, this.#inflatedBytesMax)));
        return;
      case FrameKind.pong: {
        const sent = validatePing(decodePayload(bytes, this.#inflatedBytesMax), "PONG");
        if (this.#onHeartbeat && sent !== null) this.#onHeartbeat(performance.now() - sent);
        return;
      }
      case FrameKind.goodbye:
        validateEmpty(decodePayload(bytes, this.#inflatedBytesMax), "GOODBYE");
        this.remoteDraining = true;
        return;
      case FrameKind.streamOpen:
        return this.#onStreamOpen(id, bytes);
      case FrameKind.streamData:
      case FrameKind.streamEnd:
      case FrameKind.streamCredit:
        return this.#onStreamFrame(kind as FrameKindValue, id, flags, bytes);
      default:
        decodeHeader(bytes); // An unknown kind is named as such.
        throw new ProtocolError(`frame kind ${kind} is not valid after the handshake`);
    }
  }

  #onRequest(id: number, bytes: Uint8Array): void {
    let method: string, args: unknown[], deadlineMs: number | null, traceparent: string | undefined;
    try {
      ({ method, args, deadlineMs, traceparent } = validateRequest(decodePayload(bytes, this.#inflatedBytesMax)));
    } catch (error) {
      this.#send(FrameKind.error, id, { code: "bad_request", message: (error as Error).message, stack: "" });
      return;
    }
    if (this.localDraining) {
      this.#send(FrameKind.error, id, {
        code: "draining",
        message: `${method}: this side is draining (it sent GOODBYE) and takes no new requests; retry elsewhere`,
        stack: "",
      });
      return;
    }
    const handler = this.#handlers[method];
    if (!handler) {
      const known = Object.keys(this.#handlers).join(", ") || "none";
      this.#send(FrameKind.error, id, {
        code: "method_not_found",
        message: `No method "${method}"; available: ${known}`,
        stack: "",
      });
      return;
    }
    this.#serve(id, handler, args, deadlineMs, traceparent);
  }

  #serve(id: number, handler: Handler, args: unknown[], deadlineMs: number | null, traceparent?: string): void {
    const served = new ServedCall(this, traceparent);
    this.#served.set(id, served);
    if (deadlineMs !== null && deadlineMs !== undefined) {
      served.timer = setTimeout(
        () => served.abort(new DeadlineExceededError(`deadline of ${deadlineMs} ms passed`)),
        deadlineMs,
      );
    }
    try {
      const result = handler(args, served);
      if (isThenable(result)) {
        result.then(
          (value) => this.#finish(id, served, FrameKind.response, value),
          (error) => this.#finish(id, served, FrameKind.error, errorPayload(error)),
        );
      } else {
        this.#finish(id, served, FrameKind.response, result);
      }
    } catch (error) {
      this.#finish(id, served, FrameKind.error, errorPayload(error));
    }
  }

  /** Answers a served request, unless it was cancelled: the caller has moved on. */
  #finish(id: number, served: ServedCall, kind: FrameKindValue, payload: unknown): void {
    if (served.timer) clearTimeout(served.timer);
    const current = this.#served.get(id) === served;
    if (current) this.#served.delete(id);
    if (!current || served.aborted || this.#closed) return;
    const frame = this.#encode(kind, id, payload, 0);
    if (frame instanceof Error) {
      this.#send(FrameKind.error, id, { ...errorPayload(frame), code: "result_unsendable" });
      return;
    }
    this.#write(frame);
  }

  #onResponse(id: number, bytes: Uint8Array): void {
    // Validated before the call leaves the table: a malformed RESPONSE closes the
    // endpoint, and close() must still find the call to reject it (else it hangs).
    const value = validateValue("RESPONSE", decodePayload(bytes, this.#inflatedBytesMax));
    const call = this.#calls.get(id);
    if (!call) return; // Cancelled or timed out here already.
    this.#calls.delete(id);
    call.cleanup();
    call.resolve(value);
  }

  #onError(id: number, bytes: Uint8Array): void {
    const payload = validateError(decodePayload(bytes, this.#inflatedBytesMax));
    const error = new RemoteError(this.remoteName, payload.code, payload.message, payload.stack);
    if (id === 0) throw new ProtocolError(`${this.remoteName} reported a connection error: ${error.message}`);
    const call = this.#calls.get(id);
    if (!call) return;
    this.#calls.delete(id);
    call.cleanup();
    call.reject(error);
  }

  #onCancel(id: number, flags: number): void {
    if ((flags & flagOpener) === 0) return;
    const served = this.#served.get(id);
    if (served) {
      this.#served.delete(id);
      served.abort(new CancelledError("the caller cancelled the call"));
      return;
    }
    const stream = this.#accepted.get(id);
    if (stream) {
      this.#accepted.delete(id);
      stream.fail(new CancelledError("the caller cancelled the stream"));
    }
  }

  #onEventFrame(bytes: Uint8Array): void {
    const { name, data } = validateEvent(decodePayload(bytes, this.#inflatedBytesMax));
    try {
      this.#onEvent?.(name, data);
    } catch (error) {
      // A listener's bug is its own: the connection it listens on stays up.
      this.#onListenerError(error, name);
    }
  }

  #onStreamOpen(id: number, bytes: Uint8Array): void {
    let method: string, args: unknown[], hasInput: boolean, traceparent: string | undefined;
    try {
      ({ method, args, hasInput, traceparent } = validateStreamOpen(
        decodePayload(bytes, this.#inflatedBytesMax),
      ));
    } catch (error) {
      this.#send(FrameKind.streamEnd, id, { code: "bad_request", message: (error as Error).message, stack: "" });
      return;
    }
    const state = new StreamState(id, false, this.#window);
    this.#accepted.set(id, state);
    const handler = this.#streamHandlers[method];
    if (!handler) {
      const known = Object.keys(this.#streamHandlers).join(", ") || "none";
      this.#accepted.delete(id);
      this.#send(FrameKind.streamEnd, id, {
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
      output = handler(input, args, { signal: state.abort.signal, peer: this, traceparent });
    } catch (error) {
      output = (async function* () {
        yield* [];
        throw error;
      })();
    }
    this.#pump(state, output, false).finally(() => this.#accepted.delete(id));
  }

  #onStreamFrame(kind: FrameKindValue, id: number, flags: number, bytes: Uint8Array): void {
    const fromOpener = (flags & flagOpener) !== 0;
    // Validated before the lookup: a malformed frame is a protocol breach even for a finished stream.
    const payload = decodePayload(bytes, this.#inflatedBytesMax);
    const credit = kind === FrameKind.streamCredit ? validateStreamCredit(payload) : 0;
    const end = kind === FrameKind.streamEnd ? validateStreamEnd(payload) : null;
    if (kind === FrameKind.streamData) {
      validateValue("STREAM_DATA", payload);
      this.#streamItemsReceived++;
      this.#streamBytesReceived += bytes.length;
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
        state.fail(new RemoteError(this.remoteName, end.code, end.message, end.stack));
      } else {
        state.ended = true;
        state.notify();
      }
      return;
    }
    if (state.inbox.length >= this.#window) {
      // The writer ignored flow control: its buffer would grow without bound here.
      throw new ProtocolError(`${this.remoteName} sent more stream items than its credit of ${this.#window}`);
    }
    state.inbox.push(payload);
    state.notify();
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
