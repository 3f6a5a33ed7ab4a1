/**
 * The symmetric RPC endpoint both host and plugin run after the handshake:
 * requests with ids, deadlines and cancellation, errors that carry the remote
 * stack, events both ways, heartbeats, and streams with credit-based flow
 * control. The same class serves a plugin's methods and a host's functions.
 *
 * This file holds the endpoint itself (reading and dispatching frames,
 * heartbeats, events, closing); its parts live beside it: the calls this side
 * makes (_rpc_calls.ts), the requests it serves (_rpc_serve.ts), streams
 * (_rpc_streams.ts), and the sending half they share (_rpc_link.ts).
 *
 * @module
 */

import { clearInterval, setInterval } from "node:timers";
import { ProtocolError } from "./errors.ts";
import { ChannelClosedError } from "../transport/errors.ts";
import type { Transport } from "../transport/transport.ts";
import { decodeHeader, flagOpener, frameHeaderBytes, FrameKind, type FrameKindValue } from "./frame.ts";
import { type CallObserver, reportListenerError } from "./_rpc_state.ts";
import { validateEmpty, validateEvent, validatePing } from "./_payload.ts";
import { FrameLink } from "./_rpc_link.ts";
import { OutgoingCalls } from "./_rpc_calls.ts";
import { IncomingCalls } from "./_rpc_serve.ts";
import { Streams } from "./_rpc_streams.ts";

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
  readonly #link: FrameLink;
  readonly #calls: OutgoingCalls;
  readonly #served: IncomingCalls;
  readonly #streams: Streams;
  readonly #onEvent: ((name: string, data: unknown) => void) | undefined;
  readonly #explainLoss: ((error: Error) => Promise<Error>) | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #beat: ReturnType<typeof setInterval> | undefined;
  /** The other side's heartbeat word at the last check, and checks since the last PING. */
  #peerBeatSeen = 0;
  #checksSincePing = endpointsMade++ % pingEveryChecks;
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

  /** STREAM_DATA items and their frame bytes (header and MessagePack payload) both ways, over all streams. */
  streamStats(): StreamStats {
    return {
      itemsSent: this.#link.streamItemsSent,
      itemsReceived: this.#streams.itemsReceived,
      bytesSent: this.#link.streamBytesSent,
      bytesReceived: this.#streams.bytesReceived,
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

  /** Wraps `transport`; call {@link run} to start reading frames. */
  constructor(transport: Transport, options: RpcPeerOptions) {
    this.#transport = transport;
    this.remoteName = options.remoteName;
    this.#link = new FrameLink(
      this,
      transport,
      options.compression ? options.compression.thresholdBytes : Infinity,
      options.compression ? transport.messageBytesMax : 0,
      (error) => this.close(error),
    );
    this.#calls = new OutgoingCalls(this.#link);
    this.#served = new IncomingCalls(this.#link, options.handlers ?? {});
    this.#streams = new Streams(
      this.#link,
      options.streamHandlers ?? {},
      options.streamCreditWindow ?? streamCreditWindowDefault,
    );
    this.#onEvent = options.onEvent;
    this.#explainLoss = options.explainLoss;
    const interval = options.heartbeatIntervalMs ?? heartbeatIntervalMsDefault;
    this.heartbeatIntervalMs = interval;
    this.protocolVersion = options.protocolVersion ?? 0;
    this.#onListenerError = options.onListenerError ?? reportListenerError;
    this.#onHeartbeat = options.onHeartbeat;
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
    this.#link.send(FrameKind.ping, 0, performance.now());
  };

  /**
   * One liveness check now (what the heartbeat timer does every interval), for
   * an owner that passed `heartbeatTimer: false`. Nothing once closed or with
   * heartbeats off.
   */
  checkLiveness(): void {
    if (this.heartbeatIntervalMs > 0 && !this.#link.closed) this.#check();
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
    return this.#link.closed;
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
    return this.#calls.call(method, args, options, observer, state);
  }

  /** Sends an event to the other side. */
  emit(name: string, data?: unknown): Promise<void> {
    return this.#link.send(FrameKind.event, 0, [name, data ?? null]);
  }

  /**
   * Tells the other side this one is draining: from now on this side refuses
   * new requests with `draining`, and the other side should send none.
   */
  goodbye(): Promise<void> {
    if (this.localDraining) return Promise.resolve();
    this.localDraining = true;
    return this.#link.send(FrameKind.goodbye, 0, null);
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
    return this.#streams.open(method, args, input, options);
  }

  /** Closes the endpoint; every pending call and stream fails with `error`. Idempotent. */
  close(error: Error = new ChannelClosedError("local", `Connection to ${this.remoteName} was closed`)): void {
    if (this.#link.closed) return;
    this.#link.closed = error;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (this.#beat) clearInterval(this.#beat);
    this.#calls.failAll(error);
    this.#served.abortAll(error);
    this.#streams.failAll(error);
    this.#transport.close();
  }

  #dispatch(bytes: Uint8Array): void {
    this.#framesReceived++;
    // The header read in place, as decodeHeader does, without an object per frame.
    if (bytes.length < frameHeaderBytes) decodeHeader(bytes); // Throws the ProtocolError that says why.
    const kind = bytes[0];
    const flags = bytes[1];
    const id = (bytes[4] | (bytes[5] << 8) | (bytes[6] << 16) | (bytes[7] << 24)) >>> 0;
    switch (kind) {
      case FrameKind.request:
        return this.#served.onRequest(id, bytes);
      case FrameKind.response:
        return this.#calls.onResponse(id, bytes);
      case FrameKind.error:
        return this.#calls.onError(id, bytes);
      case FrameKind.cancel:
        validateEmpty(this.#link.decode(bytes), "CANCEL");
        // Only the side that opened a request or stream may cancel it.
        if ((flags & flagOpener) !== 0 && !this.#served.cancel(id)) this.#streams.cancel(id);
        return;
      case FrameKind.event:
        return this.#onEventFrame(bytes);
      case FrameKind.ping:
        this.#link.send(FrameKind.pong, 0, validatePing(this.#link.decode(bytes)));
        return;
      case FrameKind.pong: {
        const sent = validatePing(this.#link.decode(bytes), "PONG");
        if (this.#onHeartbeat && sent !== null) this.#onHeartbeat(performance.now() - sent);
        return;
      }
      case FrameKind.goodbye:
        validateEmpty(this.#link.decode(bytes), "GOODBYE");
        this.remoteDraining = true;
        return;
      case FrameKind.streamOpen:
        return this.#streams.onStreamOpen(id, bytes);
      case FrameKind.streamData:
      case FrameKind.streamEnd:
      case FrameKind.streamCredit:
        return this.#streams.onStreamFrame(kind as FrameKindValue, id, flags, bytes);
      default:
        decodeHeader(bytes); // An unknown kind is named as such.
        throw new ProtocolError(`frame kind ${kind} is not valid after the handshake`);
    }
  }

  #onEventFrame(bytes: Uint8Array): void {
    const { name, data } = validateEvent(this.#link.decode(bytes));
    try {
      this.#onEvent?.(name, data);
    } catch (error) {
      // A listener's bug is its own: the connection it listens on stays up.
      this.#onListenerError(error, name);
    }
  }
}
