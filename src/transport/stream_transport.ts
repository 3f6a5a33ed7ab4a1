/**
 * The unix-socket and TCP transports: one connected `node:net` socket carrying
 * length-prefixed messages, with the same semantics as the shared-memory
 * `ShmChannel`.
 *
 * Each message is a 4-byte little-endian length followed by that many bytes.
 * `node:net` is used because it behaves the same under Deno and Bun, so no
 * runtime adapter is needed here.
 *
 * @module
 */

import type { Socket } from "node:net";
import { clearTimeout, setTimeout } from "node:timers";
import { ChannelClosedError, MessageTooLargeError } from "./errors.ts";
import {
  messageBytesMaxDefault,
  messageBytesMaxLimit,
  receiveAll,
  type Transport,
  type TransportStats,
} from "./transport.ts";

/** Options for {@link StreamTransport}. */
export interface StreamTransportOptions {
  /** Which kind of socket this is; TCP sockets get Nagle's algorithm turned off. */
  kind: "unix" | "tcp";
  /** Largest message accepted in either direction. Default 64 MiB, as for shm; at most 1 GiB. */
  messageBytesMax?: number;
  /** What to call the connection in error messages, such as a socket path or host:port. */
  address?: string;
}

/** Bytes of the length prefix in front of every message. */
export const frameHeaderBytes = 4;

/**
 * Bytes of received messages that may wait for `receive()` before the socket
 * stops reading: past it the kernel buffers fill and the sender's `send()`
 * waits, so a reader that falls behind back-pressures a fast writer instead of
 * growing memory. Default 4 MiB.
 */
export const receiveQueueBytesMax = 4 * 1024 * 1024;

/**
 * Messages up to this size are copied behind their header and written with one
 * call; larger ones are written as they are, after a separate header, because
 * copying them would cost more than a second write.
 */
const frameCopyBytesMax = 16 * 1024;

/**
 * How long a closed transport waits for the peer to close its end before it
 * drops the connection. Default 2 s.
 */
export const closeLingerMs = 2000;

/** Past this many taken entries (and half the queue) the receive queue drops its dead head. */
const queueCompactEntries = 1024;

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

interface PendingSend extends Pending<void> {
  bytes: Uint8Array;
}

function validateMessageBytesMax(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > messageBytesMaxLimit) {
    throw new RangeError(`messageBytesMax must be an integer from 1 to ${messageBytesMaxLimit}, got ${value}`);
  }
  return value;
}

function hexPrefix(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, frameHeaderBytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A {@link Transport} over a connected unix or TCP socket, which it owns from
 * construction on.
 *
 * `send()` resolves once the socket has handed the message to the operating
 * system, so the caller may reuse its buffer and a slow reader slows the
 * writer down. `receive()` resolves messages in order; a length prefix over
 * `messageBytesMax` closes the stream as "corrupt".
 *
 * @example
 * ```ts
 * import { createConnection, createServer, type Socket } from "node:net";
 * import { StreamTransport } from "./stream_transport.ts";
 *
 * const server = createServer();
 * const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
 * await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
 * const { port } = server.address() as { port: number };
 * const socket = createConnection({ host: "127.0.0.1", port });
 * await new Promise((resolve) => socket.once("connect", resolve));
 * const client = new StreamTransport(socket, { kind: "tcp" });
 * const host = new StreamTransport(await accepted, { kind: "tcp" });
 * server.close();
 *
 * await client.send(new TextEncoder().encode("hi"));
 * console.log(new TextDecoder().decode(await host.receive()));
 * client.close();
 * host.close();
 * ```
 */
export class StreamTransport implements Transport, AsyncIterable<Uint8Array>, Disposable {
  /** "unix" or "tcp". */
  readonly kind: "unix" | "tcp";
  /** Largest message this side sends or accepts. */
  readonly messageBytesMax: number;

  readonly #socket: Socket;
  readonly #label: string;
  readonly #receivers: Pending<Uint8Array>[] = [];
  /** Sends not yet given to the socket because it asked us to wait for 'drain'. */
  readonly #queuedSends: PendingSend[] = [];
  /** Sends given to the socket whose write callback has not run yet. */
  readonly #writingSends = new Set<PendingSend>();
  #ready: Uint8Array[] = [];
  #readyHead = 0;
  #readyBytes = 0;
  #paused = false;
  // Counters for stats(): plain increments.
  #messagesSent = 0;
  #bytesSent = 0;
  #messagesReceived = 0;
  #bytesReceived = 0;
  #needDrain = false;
  /** The length prefix being read, when it arrived split across chunks. */
  readonly #header = new Uint8Array(frameHeaderBytes);
  #headerFilled = 0;
  /** The message being read, when it is longer than what has arrived. */
  #body: Uint8Array | undefined;
  #bodyFilled = 0;
  /** Why the connection ended; queued messages stay receivable until drained. */
  #ended: ChannelClosedError | undefined;
  /** Why this side is finished; every call fails with it. */
  #closed: ChannelClosedError | undefined;

  /** Wraps a connected socket; {@link connectTransport} and {@link listenTransport} make these for you. */
  constructor(socket: Socket, options: StreamTransportOptions) {
    if (options.kind !== "unix" && options.kind !== "tcp") {
      throw new TypeError(`kind must be "unix" or "tcp", got ${JSON.stringify(options.kind)}`);
    }
    this.kind = options.kind;
    this.messageBytesMax = validateMessageBytesMax(options.messageBytesMax ?? messageBytesMaxDefault);
    this.#label = `${this.kind} transport${options.address ? ` ${options.address}` : ""}`;
    this.#socket = socket;
    // Small request/response messages must not wait ~40 ms for an ACK.
    if (this.kind === "tcp") socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    socket.on("drain", () => this.#onDrain());
    socket.on("end", () => this.#onEnd());
    socket.on("error", (error: Error) => this.#onBroken(error));
    socket.on("close", () => this.#onBroken(undefined));
  }

  /**
   * True once this side is closed, or once the connection is over and every
   * message it carried has been received.
   */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Sends one message; resolves once the socket has written it to the operating system. */
  send(bytes: Uint8Array): Promise<void> {
    const refusal = this.#closed ?? this.#ended;
    if (refusal) return Promise.reject(refusal);
    if (bytes.length > this.messageBytesMax) {
      return Promise.reject(new MessageTooLargeError(bytes.length, this.messageBytesMax));
    }
    this.#messagesSent++;
    this.#bytesSent += bytes.length;
    return new Promise((resolve, reject) => {
      const pending: PendingSend = { bytes, resolve, reject };
      if (this.#needDrain || this.#queuedSends.length > 0) this.#queuedSends.push(pending);
      else this.#write(pending);
    });
  }

  /** Counters for metrics: messages and bytes each way (sockets have no rings or wake-ups: zeros). */
  stats(): TransportStats {
    return {
      messagesSent: this.#messagesSent,
      messagesReceived: this.#messagesReceived,
      bytesSent: this.#bytesSent,
      bytesReceived: this.#bytesReceived,
      wakeupsSent: 0,
      wakeupsReceived: 0,
      sendRingUsedBytes: 0,
      receiveRingUsedBytes: 0,
      ringBytes: 0,
    };
  }

  /** The next message. Concurrent calls resolve in call order. */
  receive(): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.#readyHead < this.#ready.length) return Promise.resolve(this.#take());
    if (this.#ended) return Promise.reject(this.#finish(this.#ended));
    return new Promise((resolve, reject) => this.#receivers.push({ resolve, reject }));
  }

  /** Messages until the peer closes; throws if it dies or sends garbage. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return receiveAll(this);
  }

  /**
   * Closes this side. What `send()` already resolved still reaches the peer,
   * which then sees "peer-closed". Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#finish(new ChannelClosedError("local", `The ${this.#label} was closed by this side`));
    this.#ready = [];
    this.#readyHead = 0;
    this.#readyBytes = 0;
    this.#body = undefined;
    if (this.#ended) return; // The socket is already destroyed.
    // end() rather than destroy(): it sends what is buffered, then FIN. Reading
    // on (and discarding) until the peer closes too matters because closing a
    // socket with unread data makes the kernel reset the connection: the peer
    // would lose our last messages and report "peer-died".
    const socket = this.#socket;
    socket.end();
    socket.resume();
    const linger = setTimeout(() => socket.destroy(), closeLingerMs);
    linger.unref();
    socket.once("close", () => clearTimeout(linger));
  }

  /** Same as {@link close}: for `using transport = ...`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #write(pending: PendingSend): void {
    this.#writingSends.add(pending);
    const done = (error?: Error | null) => this.#onWritten(pending, error);
    const { bytes } = pending;
    const small = bytes.length <= frameCopyBytesMax;
    const head = new Uint8Array(frameHeaderBytes + (small ? bytes.length : 0));
    new DataView(head.buffer).setUint32(0, bytes.length, true);
    let ok: boolean;
    if (small) {
      head.set(bytes, frameHeaderBytes);
      ok = this.#socket.write(head, done);
    } else {
      this.#socket.write(head);
      ok = this.#socket.write(bytes, done);
    }
    if (!ok) this.#needDrain = true;
  }

  #onWritten(pending: PendingSend, error: Error | null | undefined): void {
    // After close or a broken connection the set was emptied and the promise
    // already rejected; a late callback has nothing left to settle.
    if (!this.#writingSends.delete(pending)) return;
    if (error) {
      this.#onBroken(error);
      pending.reject(this.#closed ?? this.#ended ?? error);
      return;
    }
    pending.resolve();
  }

  #onDrain(): void {
    this.#needDrain = false;
    while (!this.#needDrain && this.#queuedSends.length > 0 && !this.#closed && !this.#ended) {
      this.#write(this.#queuedSends.shift()!);
    }
  }

  #onData(chunk: Uint8Array): void {
    if (this.#closed || this.#ended) return;
    let offset = 0;
    while (offset < chunk.length && !this.#ended) {
      offset = this.#body ? this.#fillBody(chunk, offset) : this.#readFrameStart(chunk, offset);
    }
    this.#deliver();
    if (!this.#paused && !this.#ended && this.#readyBytes >= receiveQueueBytesMax) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  /** Reads a length prefix and as much of its message as `chunk` holds; returns the new offset. */
  #readFrameStart(chunk: Uint8Array, offset: number): number {
    let header: Uint8Array;
    if (this.#headerFilled === 0 && chunk.length - offset >= frameHeaderBytes) {
      header = chunk.subarray(offset, offset + frameHeaderBytes);
      offset += frameHeaderBytes;
    } else {
      // The prefix straddles chunks: collect it a few bytes at a time.
      const take = Math.min(frameHeaderBytes - this.#headerFilled, chunk.length - offset);
      this.#header.set(chunk.subarray(offset, offset + take), this.#headerFilled);
      this.#headerFilled += take;
      offset += take;
      if (this.#headerFilled < frameHeaderBytes) return offset;
      this.#headerFilled = 0;
      header = this.#header;
    }
    const length = (header[0] | (header[1] << 8) | (header[2] << 16) | (header[3] << 24)) >>> 0;
    if (length > this.messageBytesMax) {
      this.#corrupt(length, header);
      return chunk.length;
    }
    const available = chunk.length - offset;
    if (length <= available) {
      // A view, not a copy: the chunk is ours, and most messages fit in one.
      this.#enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset + offset, length));
      return offset + length;
    }
    this.#body = new Uint8Array(length);
    this.#body.set(chunk.subarray(offset));
    this.#bodyFilled = available;
    return chunk.length;
  }

  /** Copies the next part of a message that spans chunks; returns the new offset. */
  #fillBody(chunk: Uint8Array, offset: number): number {
    const body = this.#body!;
    const take = Math.min(body.length - this.#bodyFilled, chunk.length - offset);
    body.set(chunk.subarray(offset, offset + take), this.#bodyFilled);
    this.#bodyFilled += take;
    if (this.#bodyFilled === body.length) {
      this.#body = undefined;
      this.#bodyFilled = 0;
      this.#enqueue(body);
    }
    return offset + take;
  }

  #enqueue(message: Uint8Array): void {
    this.#messagesReceived++;
    this.#bytesReceived += message.length;
    this.#ready.push(message);
    this.#readyBytes += message.length;
  }

  #take(): Uint8Array {
    const message = this.#ready[this.#readyHead++];
    this.#readyBytes -= message.length;
    if (this.#readyHead === this.#ready.length) {
      this.#ready = [];
      this.#readyHead = 0;
    } else if (this.#readyHead >= queueCompactEntries && this.#readyHead * 2 >= this.#ready.length) {
      this.#ready = this.#ready.slice(this.#readyHead);
      this.#readyHead = 0;
    }
    if (this.#paused && this.#readyBytes < receiveQueueBytesMax) {
      this.#paused = false;
      this.#socket.resume();
    }
    if (this.#ended && this.#readyHead === this.#ready.length) this.#finish(this.#ended);
    return message;
  }

  #deliver(): void {
    while (this.#receivers.length > 0 && this.#readyHead < this.#ready.length) {
      this.#receivers.shift()!.resolve(this.#take());
    }
    if (this.#ended && this.#readyHead === this.#ready.length) this.#finish(this.#ended);
  }

  #corrupt(length: number, header: Uint8Array): void {
    const prefix = hexPrefix(header);
    this.#endConnection(
      new ChannelClosedError(
        "corrupt",
        `The ${this.#label} closed: the peer announced a ${length}-byte message (length prefix ${prefix}), ` +
          `over messageBytesMax (${this.messageBytesMax}); it is not speaking plugin-shm framing, ` +
          `or it was configured with a larger messageBytesMax than this side`,
      ),
    );
    this.#socket.destroy();
  }

  #onEnd(): void {
    if (this.#closed || this.#ended) return;
    if (this.#body || this.#headerFilled > 0) {
      const got = this.#body ? `${this.#bodyFilled} of ${this.#body.length} bytes` : `${this.#headerFilled} of 4 bytes`;
      this.#endConnection(
        new ChannelClosedError(
          "peer-died",
          `The ${this.#label} ended in the middle of a message (got ${got}); ` +
            `the peer probably died; restart it and open a new transport`,
        ),
      );
    } else {
      this.#endConnection(new ChannelClosedError("peer-closed", `The peer closed the ${this.#label}`));
    }
    this.#socket.destroy();
  }

  /** The socket failed or closed without an orderly end from the peer. */
  #onBroken(error: Error | undefined): void {
    if (this.#closed || this.#ended) return;
    const why = error ? (error as { code?: string }).code ?? error.message : "closed without an orderly end";
    this.#endConnection(
      new ChannelClosedError(
        "peer-died",
        `The ${this.#label} broke (${why}); the peer probably died; restart it and open a new transport`,
      ),
    );
    this.#socket.destroy();
  }

  /** The connection is over: no more sends; receives drain what arrived, then fail with `error`. */
  #endConnection(error: ChannelClosedError): void {
    this.#ended = error;
    this.#body = undefined;
    this.#rejectSends(error);
    this.#deliver();
  }

  /** Finishes this side with `error`: pending and later calls fail with it. */
  #finish(error: ChannelClosedError): ChannelClosedError {
    if (this.#closed) return this.#closed;
    this.#closed = error;
    for (const r of this.#receivers.splice(0)) r.reject(error);
    this.#rejectSends(error);
    return error;
  }

  #rejectSends(error: ChannelClosedError): void {
    const sends = [...this.#queuedSends.splice(0), ...this.#writingSends];
    this.#writingSends.clear();
    for (const s of sends) s.reject(error);
  }
}
