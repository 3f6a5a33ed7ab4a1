/**
 * One way to open any transport: the host calls {@link listenTransport} and
 * passes the listener's `address` and `secret` to the plugin, which calls
 * {@link connectTransport} with them.
 *
 * Every listener accepts exactly one connection and then stops listening, so
 * nothing stays reachable or on disk: a shm segment is unlinked when the peer
 * attaches, a unix socket file and its private directory are removed when the
 * peer connects, a TCP port is released.
 *
 * @module
 */

import { mkdtemp, rm } from "node:fs/promises";
import { rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChannelClosedError, ConnectError } from "./errors.ts";
import { ShmChannel } from "./shm_channel.ts";
import { connectDoorbell, type DoorbellListener, listenDoorbell } from "./_doorbell.ts";

/** How a parked shm side is woken (see {@link TransportOptions.wake}). */
type WakePath = "doorbell" | "futex" | "block";
import { StreamTransport } from "./stream_transport.ts";
import { messageBytesMaxLimit, type Transport, type TransportKind, type TransportListener } from "./transport.ts";

/** Options for {@link listenTransport} and {@link connectTransport}. */
export interface TransportOptions {
  /** Largest message accepted in either direction. Default 64 MiB; at most 1 GiB. */
  messageBytesMax?: number;
  /** Bytes per shm ring; see `ShmChannelOptions.ringBytes`. Ignored by unix and tcp. */
  ringBytes?: number;
  /**
   * shm listener: how a parked side is woken. "doorbell" (see {@link wakeDefault}: "futex") also listens on
   * a unix socket the plugin may connect as its doorbell (the listener's `doorbell`); "futex" only uses the
   * native waiter thread. Either way a plugin without a doorbell is woken through the futex. "block" is
   * "futex" plus the blocking park (ShmChannelOptions.blockMicros): the host's channel blocks up to
   * {@link hostBlockMicros} while it awaits an answer, and the listener's `blockMicros`
   * ({@link pluginBlockMicros}) is for the plugin, to block that long once it answered everything.
   */
  wake?: "doorbell" | "futex" | "block";
  /** shm connect: the plugin channel's ShmChannelOptions.blockMicros (the listener's `blockMicros`). Default 0. */
  blockMicros?: number;
  /** shm connect: the listener's `doorbell` (socket path and hex key), to be woken through it while parked. */
  doorbell?: { path: string; key: string };
  /** shm connect: called when the doorbell cannot be set up; the channel then parks on the futex. */
  onDoorbellUnavailable?: (error: Error) => void;
  /** shm: see `ShmChannelOptions.livenessCheckMs`. Ignored by unix and tcp. */
  livenessCheckMs?: number;
}

/**
 * Default {@link TransportOptions.wake}: "futex". Measured on a quiet machine (bench/RESULTS.md, "doorbell or
 * futex"): the doorbell wakes a parked plugin about 3× sooner (echo call 2 ms after the last: p50 93–106 µs
 * against 245–307 µs, Deno, Bun and Node hosts) and equals a unix socket, but 64 busy plugins under one host
 * complete half the calls (11–13 k/s against 22–27 k/s) and the idle host uses more CPU: every wake-up of 64
 * channels then goes through the host's one event loop. So the doorbell is for hosts with few, mostly idle
 * plugins, chosen with `wake: "doorbell"`; the default keeps the throughput. `wake: "block"` (issue 12, loaded
 * machine, same runs): each wake-up becomes one futex hop into the sleeping JS thread (host→plugin 65 → 35 µs,
 * plugin→host 86 → 32 µs p50), parked echo call 199–218 → 157–164 µs (unix socket 175), and 64 busy plugins keep
 * their calls/s (23–30 k against 18–28 k); it stays opt-in because a blocked side holds its own timers and I/O back
 * (a plugin up to {@link pluginBlockMicros} once per idle spell, the host up to {@link hostBlockMicros} per answer).
 */
export const wakeDefault: "doorbell" | "futex" | "block" = "futex";

/**
 * With `wake: "block"`: how long the host's channel blocks its thread while it awaits a plugin's answer, in µs.
 * A parked plugin woken in one hop answers well within it (bench/wake_bench.ts, `wake.cross`); a slower answer
 * costs the host's event loop this long once, then the channel parks as usual.
 */
export const hostBlockMicros = 1_000;

/**
 * With `wake: "block"`: how long a plugin that answered every request blocks for the next one, in µs. Calls
 * that come within it wake the plugin in one futex hop; the plugin's own timers and I/O (it has no request in
 * hand) wait up to this long once per idle spell.
 */
export const pluginBlockMicros = 10_000;

/** The only address a TCP listener binds: plugins run on the same machine. */
export const tcpListenHost = "127.0.0.1";

/**
 * Longest unix socket path the kernel accepts: `sun_path` holds 108 bytes on
 * Linux (104 on macOS) including the terminating NUL.
 */
export const socketPathBytesMax = 103;

/** Longest wait `accept()` takes: timers fire at once past 2^31 - 1 ms (about 24.8 days). */
export const acceptTimeoutMsMax = 2 ** 31 - 1;

const socketFileName = "plugin.sock";

/**
 * Opens a listener for one plugin connection.
 *
 * @example
 * ```ts
 * import { connectTransport, listenTransport } from "./factory.ts";
 * const listener = await listenTransport("unix");
 * const plugin = await connectTransport("unix", listener.address, listener.secret);
 * const host = await listener.accept(5000);
 * await plugin.send(new TextEncoder().encode("hello"));
 * console.log(new TextDecoder().decode(await host.receive()));
 * plugin.close();
 * host.close();
 * ```
 */
export async function listenTransport(kind: TransportKind, options: TransportOptions = {}): Promise<TransportListener> {
  checkKind(kind);
  if (kind === "shm") return await ShmListener.open(options);
  // Validates the options before anything is created on disk or on the network.
  checkMessageBytesMax(options);
  return await SocketListener.open(kind, options);
}

/**
 * Connects to a listener made by {@link listenTransport}, given its `address`
 * and `secret` (the shm token; unix and tcp have none and ignore it).
 *
 * @example
 * ```ts
 * import { connectTransport, listenTransport } from "./factory.ts";
 * const listener = await listenTransport("tcp");
 * console.log(listener.address); // 127.0.0.1:<port>
 * const plugin = await connectTransport("tcp", listener.address, listener.secret);
 * const host = await listener.accept(5000);
 * await host.send(new Uint8Array([1, 2, 3]));
 * console.log(await plugin.receive());
 * plugin.close();
 * host.close();
 * ```
 */
export async function connectTransport(
  kind: TransportKind,
  address: string,
  secret: string,
  options: TransportOptions = {},
): Promise<Transport> {
  checkKind(kind);
  if (kind === "shm") return await attachShm(address, secret, options);
  checkMessageBytesMax(options);
  const socket = await connectSocket(kind, address);
  return new StreamTransport(socket, { kind, messageBytesMax: options.messageBytesMax, address });
}

function checkKind(kind: TransportKind): void {
  if (kind !== "shm" && kind !== "unix" && kind !== "tcp") {
    throw new TypeError(`kind must be "shm", "unix" or "tcp", got ${JSON.stringify(kind)}`);
  }
}

/** The same rule ShmChannel and StreamTransport apply, checked before a socket exists to leak. */
function checkMessageBytesMax(options: TransportOptions): void {
  const value = options.messageBytesMax;
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < 1 || value > messageBytesMaxLimit) {
    throw new RangeError(`messageBytesMax must be an integer from 1 to ${messageBytesMaxLimit}, got ${value}`);
  }
}

function checkTimeout(timeoutMs: number): void {
  if (!(timeoutMs >= 0 && timeoutMs <= acceptTimeoutMsMax)) {
    throw new RangeError(`timeoutMs must be from 0 to ${acceptTimeoutMsMax} ms, got ${timeoutMs}`);
  }
}

function timeoutError(kind: string, address: string, timeoutMs: number): Error {
  return new DOMException(
    `No plugin connected to the ${kind} listener ${address} within ${timeoutMs} ms; ` +
      `check that the plugin started and was given this address`,
    "TimeoutError",
  );
}

function checkWake(wake: WakePath | undefined): WakePath {
  if (wake === undefined) return wakeDefault;
  if (wake !== "doorbell" && wake !== "futex" && wake !== "block") {
    throw new TypeError(`wake must be "doorbell", "futex" or "block", got ${JSON.stringify(wake)}`);
  }
  return wake;
}

/**
 * Attaches to the host's segment and, given a doorbell address, connects the doorbell. A doorbell that
 * cannot be set up (the host went away, a sandbox refused the path) leaves the channel on the futex.
 */
async function attachShm(address: string, secret: string, options: TransportOptions): Promise<ShmChannel> {
  const channel = ShmChannel.attach(address, secret, {
    messageBytesMax: options.messageBytesMax,
    livenessCheckMs: options.livenessCheckMs,
    blockMicros: options.blockMicros,
  });
  if (!options.doorbell) return channel;
  try {
    // The host held its end first: it rings as soon as this side says so (useDoorbell's first ring).
    channel.useDoorbell(await connectDoorbell(options.doorbell), true);
  } catch (error) {
    if (!(error instanceof ConnectError || error instanceof TypeError)) {
      channel.close();
      throw error;
    }
    options.onDoorbellUnavailable?.(error);
  }
  return channel;
}

/**
 * Listens on a shm segment: the segment is the listener and, once attached, the transport. With a
 * doorbell it also listens on the doorbell's socket until the plugin connected it or the listener closes.
 */
class ShmListener implements TransportListener {
  readonly kind = "shm";
  readonly address: string;
  readonly secret: string;
  readonly doorbell: { readonly path: string; readonly key: string } | undefined;
  readonly blockMicros: number | undefined;
  readonly #channel: ShmChannel;
  readonly #bell: DoorbellListener | undefined;
  #state: "listening" | "accepting" | "accepted" | "closed" = "listening";

  private constructor(channel: ShmChannel, bell: DoorbellListener | undefined, blockMicros: number | undefined) {
    this.#channel = channel;
    this.blockMicros = blockMicros;
    this.#bell = bell;
    this.address = channel.name;
    this.secret = channel.token;
    this.doorbell = bell?.address;
    // The host's channel holds its end first: it parks on the futex until the plugin's first ring.
    bell?.onAccepted((doorbell) => channel.useDoorbell(doorbell, false));
  }

  static async open(options: TransportOptions): Promise<ShmListener> {
    const wake = checkWake(options.wake);
    const channel = ShmChannel.create({
      ringBytes: options.ringBytes,
      messageBytesMax: options.messageBytesMax,
      livenessCheckMs: options.livenessCheckMs,
      blockMicros: wake === "block" ? hostBlockMicros : 0,
    });
    let bell: DoorbellListener | undefined;
    if (wake === "doorbell") {
      try {
        bell = await listenDoorbell();
      } catch (error) {
        // The futex path needs no socket: a host that cannot make one (TMPDIR too long or not writable)
        // still serves, only without the faster wake-up. Anything else is a bug and surfaces.
        if (!(error instanceof RangeError || (error as { code?: string }).code !== undefined)) {
          channel.close();
          throw error;
        }
      }
    }
    return new ShmListener(channel, bell, wake === "block" ? pluginBlockMicros : undefined);
  }

  async accept(timeoutMs: number): Promise<Transport> {
    checkTimeout(timeoutMs);
    if (this.#state !== "listening") throw acceptStateError(this.#state);
    this.#state = "accepting";
    try {
      await this.#channel.waitForPeer(timeoutMs);
    } catch (error) {
      this.close();
      throw error;
    }
    this.#state = "accepted";
    return this.#channel;
  }

  /** Before accept: closes the channel. After: stops listening for a doorbell (a connected one stays). */
  close(): void {
    this.#bell?.close();
    if (this.#state === "accepted" || this.#state === "closed") return;
    this.#state = "closed";
    this.#channel.close();
  }
}

function acceptStateError(state: "accepting" | "accepted" | "closed"): Error {
  return state === "closed"
    ? new TypeError("accept() on a closed listener; open a new one with listenTransport()")
    : new TypeError("accept() was already called; a listener accepts exactly one connection");
}

/** Listens on a unix socket or TCP port for exactly one connection. */
class SocketListener implements TransportListener {
  readonly kind: "unix" | "tcp";
  readonly address: string;
  readonly secret = "";
  readonly #server: Server;
  readonly #directory: string | undefined;
  readonly #messageBytesMax: number | undefined;
  #state: "listening" | "accepting" | "accepted" | "closed" = "listening";
  #listening = true;
  #connection: StreamTransport | undefined;
  #waiter: { resolve(transport: StreamTransport): void; reject(error: Error): void } | undefined;

  private constructor(
    kind: "unix" | "tcp",
    server: Server,
    address: string,
    directory: string | undefined,
    options: TransportOptions,
  ) {
    this.kind = kind;
    this.#server = server;
    this.address = address;
    this.#directory = directory;
    this.#messageBytesMax = options.messageBytesMax;
    server.on("connection", (socket: Socket) => this.#onConnection(socket));
    // Once listening, errors can only concern connections not yet accepted; they are dropped.
    server.on("error", () => {});
  }

  static async open(kind: "unix" | "tcp", options: TransportOptions): Promise<SocketListener> {
    const server = createServer();
    if (kind === "tcp") {
      await listen(server, { host: tcpListenHost, port: 0 });
      const { port } = server.address() as { port: number };
      return new SocketListener(kind, server, `${tcpListenHost}:${port}`, undefined, options);
    }
    // A private directory keeps other users from connecting, and from
    // replacing the socket file before the plugin connects.
    const directory = await mkdtemp(join(tmpdir(), "plugin-shm-"));
    const path = join(directory, socketFileName);
    try {
      if (new TextEncoder().encode(path).length > socketPathBytesMax) {
        throw new RangeError(
          `The unix socket path ${path} is longer than ${socketPathBytesMax} bytes; set TMPDIR to a shorter directory`,
        );
      }
      await listen(server, { path });
    } catch (error) {
      await rm(directory, { recursive: true, force: true });
      throw error;
    }
    return new SocketListener(kind, server, path, directory, options);
  }

  async accept(timeoutMs: number): Promise<Transport> {
    checkTimeout(timeoutMs);
    if (this.#state !== "listening") throw acceptStateError(this.#state);
    if (this.#connection) return this.#handOver(this.#connection);
    this.#state = "accepting";
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        this.close();
        reject(timeoutError(this.kind, this.address, timeoutMs));
      }, timeoutMs);
      this.#waiter = {
        resolve: (transport) => (clearTimeout(timer), resolve(this.#handOver(transport))),
        reject: (error) => (clearTimeout(timer), reject(error)),
      };
    });
  }

  close(): void {
    if (this.#state === "accepted" || this.#state === "closed") return;
    this.#state = "closed";
    this.#stopListening();
    this.#connection?.close();
    this.#connection = undefined;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(
      new ChannelClosedError("local", `The ${this.kind} listener ${this.address} was closed while accept() waited`),
    );
  }

  #onConnection(socket: Socket): void {
    if (this.#connection || this.#state === "accepted" || this.#state === "closed") {
      socket.destroy();
      return;
    }
    // Wrapped at once so its errors are handled even before accept().
    this.#connection = new StreamTransport(socket, {
      kind: this.kind,
      messageBytesMax: this.#messageBytesMax,
      address: this.address,
    });
    this.#stopListening();
    this.#waiter?.resolve(this.#connection);
  }

  #handOver(transport: StreamTransport): StreamTransport {
    this.#state = "accepted";
    this.#connection = undefined;
    this.#waiter = undefined;
    return transport;
  }

  #stopListening(): void {
    if (!this.#listening) return;
    this.#listening = false;
    this.#server.close();
    // Synchronous, so the socket file is gone by the time close() or
    // accept() returns, and a process that exits right after leaves nothing.
    if (this.#directory) rmSync(this.#directory, { recursive: true, force: true });
  }
}

function listen(server: Server, where: { host: string; port: number } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    server.listen(where, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

function connectSocket(kind: "unix" | "tcp", address: string): Promise<Socket> {
  const where = kind === "unix" ? { path: address } : parseHostPort(address);
  return new Promise((resolve, reject) => {
    const socket = createConnection(where);
    const onError = (error: Error & { code?: string }) => {
      socket.destroy();
      reject(
        new ConnectError(
          `Cannot connect to the ${kind} listener ${address}: ${error.code ?? error.message}; ` +
            `check that the host is listening and passed this address`,
          { cause: error },
        ),
      );
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("error", onError);
      resolve(socket);
    });
  });
}

function parseHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`A tcp address must look like "127.0.0.1:8080", got ${JSON.stringify(address)}`);
  }
  return { host, port };
}
