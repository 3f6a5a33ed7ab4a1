/**
 * A minimal client of a runtime's inspector: the WebSocket handshake and
 * framing of RFC 6455 (client side: text frames out, masked; text, binary,
 * continuation, ping and close in) and request/response matching of the
 * Chrome DevTools Protocol (V8: Deno, Node) or WebKit's inspector protocol
 * (JavaScriptCore: Bun), which share the `{id, method, params}` envelope.
 *
 * Written over node:net rather than the global WebSocket because Node 20
 * has none without a flag, and a host must work the same under Deno, Bun and
 * Node; it talks only to loopback inspectors the host itself started.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash, randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { clearTimeout, setTimeout } from "node:timers";

/** Largest inspector message accepted (a CPU profile of a big plugin is a few MiB). */
export const cdpMessageBytesMax = 64 * 1024 * 1024;
/** Longest the WebSocket handshake may take. */
export const cdpConnectTimeoutMsDefault = 5_000;

/** What an inspector answered with an error, or why the session failed. */
export class CdpError extends Error {
  override name = "CdpError";
}

/** One inspector session over a WebSocket. */
export class CdpSession {
  readonly #socket: Socket;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly #listeners = new Map<string, Set<(params: unknown) => void>>();
  #buffer: Buffer = Buffer.alloc(0);
  #fragments: Buffer[] = [];
  #closed: Error | undefined;
  /** Settles when the socket closes. */
  readonly closed: Promise<void>;

  private constructor(socket: Socket, rest: Buffer) {
    this.#socket = socket;
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (error) => this.#fail(new CdpError(`inspector connection failed: ${error.message}`)));
    socket.on("close", () => this.#fail(new CdpError("inspector connection closed")));
    if (rest.length) this.#onData(rest);
  }

  /** Opens a session to a `ws://host:port/path` inspector URL. */
  static open(url: string, timeoutMs: number = cdpConnectTimeoutMsDefault): Promise<CdpSession> {
    const parsed = new URL(url);
    if (parsed.protocol !== "ws:") throw new TypeError(`Not a ws:// inspector URL: ${url}`);
    const key = randomBytes(16).toString("base64");
    const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
    return new Promise((resolve, reject) => {
      const socket = connect(Number(parsed.port), parsed.hostname);
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new CdpError(`inspector at ${url} did not answer the WebSocket handshake within ${timeoutMs} ms`));
      }, timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new CdpError(`cannot connect to the inspector at ${url}: ${error.message}`));
      };
      socket.once("error", fail);
      socket.once("connect", () => {
        socket.write(
          `GET ${parsed.pathname}${parsed.search} HTTP/1.1\r\nHost: ${parsed.host}\r\nUpgrade: websocket\r\n` +
            `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        socket.off("data", onData);
        socket.off("error", fail);
        clearTimeout(timer);
        const lines = head.subarray(0, end).toString("latin1").split("\r\n");
        const status = lines[0];
        const acceptLine = lines.find((l) => /^sec-websocket-accept:/i.test(l));
        if (!/^HTTP\/1\.1 101/.test(status) || acceptLine?.split(":")[1].trim() !== accept) {
          socket.destroy();
          reject(new CdpError(`inspector at ${url} refused the WebSocket upgrade: ${status}`));
          return;
        }
        resolve(new CdpSession(socket, head.subarray(end + 4)));
      };
      socket.on("data", onData);
    });
  }

  /** Sends a command; resolves with its result, rejects with its error. */
  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#write(0x1, Buffer.from(JSON.stringify({ id, method, params })));
    });
  }

  /** Calls `listener` with the params of every `method` event; returns an unsubscribe function. */
  on(method: string, listener: (params: unknown) => void): () => void {
    let set = this.#listeners.get(method);
    if (!set) this.#listeners.set(method, set = new Set());
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Resolves with the params of the next `method` event. */
  next(method: string): Promise<unknown> {
    return new Promise((resolve) => {
      const off = this.on(method, (params) => (off(), resolve(params)));
    });
  }

  /** Closes the session (the inspected program goes on). Idempotent. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#write(0x8, Buffer.alloc(0));
      this.#socket.end();
    }
    this.#fail(new CdpError("inspector session closed"));
    const timer = setTimeout(() => this.#socket.destroy(), 1000);
    await this.closed;
    clearTimeout(timer);
  }

  #write(opcode: number, payload: Buffer): void {
    const length = payload.length;
    const header = length < 126 ? Buffer.alloc(2) : length < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    if (length < 126) header[1] = 0x80 | length;
    else if (length < 65536) {
      header[1] = 0x80 | 126;
      header.writeUInt16BE(length, 2);
    } else {
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(length), 2);
    }
    const mask = randomBytes(4);
    const masked = Buffer.alloc(length);
    for (let i = 0; i < length; i++) masked[i] = payload[i] ^ mask[i & 3];
    this.#socket.write(Buffer.concat([header, mask, masked]));
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length ? Buffer.concat([this.#buffer, chunk]) : chunk;
    for (;;) {
      const frame = this.#parseFrame();
      if (!frame) return;
      this.#onFrame(frame.fin, frame.opcode, frame.payload);
    }
  }

  #parseFrame(): { fin: boolean; opcode: number; payload: Buffer } | undefined {
    const b = this.#buffer;
    if (b.length < 2) return undefined;
    let length = b[1] & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (b.length < 4) return undefined;
      length = b.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (b.length < 10) return undefined;
      length = Number(b.readBigUInt64BE(2));
      offset = 10;
    }
    if (length > cdpMessageBytesMax) {
      this.#fail(new CdpError(`inspector message of ${length} bytes exceeds ${cdpMessageBytesMax}`));
      this.#socket.destroy();
      return undefined;
    }
    const masked = (b[1] & 0x80) !== 0;
    const start = offset + (masked ? 4 : 0);
    if (b.length < start + length) return undefined;
    let payload = b.subarray(start, start + length);
    if (masked) {
      const mask = b.subarray(offset, offset + 4);
      payload = Buffer.from(payload.map((byte, i) => byte ^ mask[i & 3]));
    }
    this.#buffer = b.subarray(start + length);
    return { fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, payload };
  }

  #onFrame(fin: boolean, opcode: number, payload: Buffer): void {
    if (opcode === 0x9) return this.#write(0xa, payload);
    if (opcode === 0x8) {
      this.#socket.end();
      return this.#fail(new CdpError("the inspector closed the session"));
    }
    if (opcode !== 0x0 && opcode !== 0x1 && opcode !== 0x2) return;
    this.#fragments.push(payload);
    if (!fin) return;
    const text = Buffer.concat(this.#fragments).toString("utf8");
    this.#fragments = [];
    let message: { id?: number; method?: string; params?: unknown; result?: unknown; error?: { message?: string } };
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.id !== undefined) {
      const pending = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.error) pending?.reject(new CdpError(message.error.message ?? JSON.stringify(message.error)));
      else pending?.resolve(message.result);
    } else if (message.method) {
      for (const listener of this.#listeners.get(message.method) ?? []) listener(message.params);
    }
  }

  #fail(error: Error): void {
    this.#closed ??= error;
    for (const pending of this.#pending.values()) pending.reject(this.#closed);
    this.#pending.clear();
  }
}
