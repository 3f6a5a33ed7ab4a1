/**
 * A file-descriptor doorbell (issue 12): while a channel side is parked, its
 * peer rings this instead of the futex, and the runtime's own poller wakes
 * the event loop in one hop, with no waiter thread and no cross-thread
 * callback in between.
 *
 * The doorbell is one connected unix socket per channel, read and written
 * with the runtime's own socket API (Deno.connect / Deno.listen, Bun.connect /
 * Bun.listen, node:net under Node): under Deno and Bun node:net is a
 * compatibility layer whose stream machinery costs tens of µs per 'data'
 * (bench/RESULTS.md, "wake-up designs side by side"), as much as the hop saved.
 *
 * How a host and a plugin set one up (docs/protocol.md, "Doorbell"): the host
 * listens on a socket in a private (0700) directory and passes its path and a
 * random key in the launch variables; the plugin connects and writes the key;
 * the host answers one byte and stops listening (the directory is removed).
 * A connection that does not present the key within {@link doorbellAuthTimeoutMs}
 * is closed and changes nothing. After that every byte either way is a ring.
 *
 * @module
 */

import { randomBytes, timingSafeEqual } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import process from "node:process";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConnectError } from "./errors.ts";

/** One side's end of a bidirectional doorbell (e.g. one end of a connected unix socket). */
export interface Doorbell {
  /** Rings the peer's end. Called only while the peer is parked, so a busy channel makes no syscall. */
  ring(): void;
  /**
   * Calls `onRing` on the event loop whenever the peer rang this end, and `onEnd` once if the peer's end
   * went away (it closed or its process died). Called once, by the channel.
   */
  listen(onRing: () => void, onEnd?: () => void): void;
  /** Releases the descriptor. The channel that was given the doorbell calls it on close. Idempotent. */
  close(): void;
}

/** Bytes of the key a plugin presents on the doorbell socket (random, from the launch variables). */
export const doorbellKeyBytes = 32;
/** How long the host keeps a doorbell connection that has not presented the key; then it closes it. */
export const doorbellAuthTimeoutMs = 5_000;
/** How long a plugin waits for the host's answer to its key before it parks on the futex instead. */
export const doorbellAckTimeoutMs = 5_000;
/**
 * Longest unix socket path the kernel accepts: `sun_path` holds 108 bytes on
 * Linux (104 on macOS) including the terminating NUL.
 */
const socketPathBytesMax = 103;
/**
 * Connections the host keeps at once while they have not presented the key. A newer one makes the host close
 * the oldest: a plugin writes its key as soon as it connected, so strangers that connect and say nothing
 * cannot crowd it out, however many they open.
 */
const pendingConnectionsMax = 8;

/** A single byte per ring: its content carries nothing, its arrival is the message. */
const ding = new Uint8Array([1]);

/** A connected stream socket through the runtime's own API. */
interface ByteSocket {
  /** Writes without waiting; a failed write is dropped (the end is reported through onEnd). */
  write(bytes: Uint8Array): void;
  /** Where chunks and the end go from now on; chunks that arrived while nobody listened are delivered then. */
  setHandlers(onData: (chunk: Uint8Array) => void, onEnd: () => void): void;
  /** Holds chunks and the end until the next setHandlers (a socket between two owners). */
  hold(): void;
  /** Closes the socket. Idempotent; onEnd is not called for a close from this side. */
  close(): void;
}

/** A unix socket listener through the runtime's own API. */
interface ByteServer {
  close(): void;
}

/** The runtime's unix sockets. Every socket and listener is unref'd: none keeps the event loop alive. */
interface SocketApi {
  listen(path: string, onConnection: (socket: ByteSocket) => void): Promise<ByteServer>;
  connect(path: string): Promise<ByteSocket>;
}

/**
 * Delivery shared by every runtime's socket: chunks are held until handlers
 * are set, and the end is reported once, never after a local close.
 */
class Delivery {
  #onData: ((chunk: Uint8Array) => void) | undefined;
  #onEnd: (() => void) | undefined;
  #held: Uint8Array[] = [];
  #ended = false;
  closed = false;

  set(onData: (chunk: Uint8Array) => void, onEnd: () => void): void {
    this.#onData = onData;
    this.#onEnd = onEnd;
    for (const chunk of this.#held.splice(0)) onData(chunk);
    if (this.#ended && !this.closed) onEnd();
  }

  hold(): void {
    this.#onData = undefined;
    this.#onEnd = undefined;
  }

  data(chunk: Uint8Array): void {
    if (this.closed) return;
    if (this.#onData) this.#onData(chunk);
    else this.#held.push(chunk.slice());
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (!this.closed) this.#onEnd?.();
  }
}

// ------------------------------------------------------------------ node:net (Node)

function nodeSocket(socket: net.Socket): ByteSocket {
  const delivery = new Delivery();
  socket.unref();
  socket.on("data", (chunk: Uint8Array) => delivery.data(chunk));
  socket.on("end", () => delivery.end());
  socket.on("close", () => delivery.end());
  // A reset (the peer died) ends the socket; the 'close' that follows reports it.
  socket.on("error", () => {});
  return {
    write: (bytes) => void socket.write(bytes),
    setHandlers: (onData, onEnd) => delivery.set(onData, onEnd),
    hold: () => delivery.hold(),
    close() {
      delivery.closed = true;
      socket.destroy();
    },
  };
}

const nodeApi: SocketApi = {
  listen(path, onConnection) {
    const server = net.createServer((socket) => onConnection(nodeSocket(socket)));
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        server.on("error", () => {});
        server.unref();
        resolve({ close: () => void server.close() });
      });
    });
  },
  connect(path) {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path);
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(nodeSocket(socket));
      });
    });
  },
};

// ------------------------------------------------------------------ Deno

interface DenoConn {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
  unref(): void;
}
interface DenoListener {
  accept(): Promise<DenoConn>;
  close(): void;
  unref(): void;
}
interface DenoSockets {
  listen(options: { transport: "unix"; path: string }): DenoListener;
  connect(options: { transport: "unix"; path: string }): Promise<DenoConn>;
}

/** Bytes per read: rings are single bytes, a few may coalesce. */
const denoReadBytes = 256;

function denoSocket(conn: DenoConn): ByteSocket {
  const delivery = new Delivery();
  conn.unref();
  // One read in flight at a time, in a loop: Deno has no 'data' event. The
  // buffer is reused; Delivery copies what it has to hold.
  void (async () => {
    const buffer = new Uint8Array(denoReadBytes);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        delivery.data(buffer.subarray(0, n));
      }
    } catch {
      // Closed here (BadResource, Interrupted) or reset by the peer: the end either way.
    }
    delivery.end();
  })();
  return {
    write: (bytes) => void conn.write(bytes).catch(() => {}),
    setHandlers: (onData, onEnd) => delivery.set(onData, onEnd),
    hold: () => delivery.hold(),
    close() {
      if (delivery.closed) return;
      delivery.closed = true;
      try {
        conn.close();
      } catch {
        // Already closed by the runtime.
      }
    },
  };
}

function denoApi(deno: DenoSockets): SocketApi {
  return {
    listen(path, onConnection) {
      const listener = deno.listen({ transport: "unix", path });
      listener.unref();
      let closed = false;
      void (async () => {
        for (;;) {
          let conn: DenoConn;
          try {
            conn = await listener.accept();
          } catch {
            return; // Closed.
          }
          if (closed) {
            conn.close();
            return;
          }
          onConnection(denoSocket(conn));
        }
      })();
      return Promise.resolve({
        close() {
          if (closed) return;
          closed = true;
          listener.close();
        },
      });
    },
    async connect(path) {
      return denoSocket(await deno.connect({ transport: "unix", path }));
    },
  };
}

// ------------------------------------------------------------------ Bun

interface BunSocket {
  write(bytes: Uint8Array): number;
  end(): void;
  terminate?(): void;
  unref(): void;
}
interface BunHandlers {
  open?(socket: BunSocket): void;
  data(socket: BunSocket, chunk: Uint8Array): void;
  close(socket: BunSocket): void;
  error?(socket: BunSocket, error: Error): void;
  end?(socket: BunSocket): void;
}
interface BunSockets {
  listen(options: { unix: string; socket: BunHandlers }): { stop(closeActive?: boolean): void; unref(): void };
  connect(options: { unix: string; socket: BunHandlers }): Promise<BunSocket>;
}

function bunSocket(socket: BunSocket, delivery: Delivery): ByteSocket {
  socket.unref();
  return {
    write: (bytes) => void socket.write(bytes),
    setHandlers: (onData, onEnd) => delivery.set(onData, onEnd),
    hold: () => delivery.hold(),
    close() {
      if (delivery.closed) return;
      delivery.closed = true;
      socket.end();
    },
  };
}

function bunApi(bun: BunSockets): SocketApi {
  return {
    listen(path, onConnection) {
      const deliveries = new WeakMap<BunSocket, Delivery>();
      const server = bun.listen({
        unix: path,
        socket: {
          open(socket) {
            const delivery = new Delivery();
            deliveries.set(socket, delivery);
            onConnection(bunSocket(socket, delivery));
          },
          // Bun reuses the chunk's memory after the handler returns: Delivery copies what it holds.
          data: (socket, chunk) => deliveries.get(socket)?.data(chunk),
          close: (socket) => deliveries.get(socket)?.end(),
          end: (socket) => deliveries.get(socket)?.end(),
          error: (socket) => deliveries.get(socket)?.end(),
        },
      });
      server.unref();
      return Promise.resolve({ close: () => server.stop(false) });
    },
    async connect(path) {
      const delivery = new Delivery();
      const socket = await bun.connect({
        unix: path,
        socket: {
          data: (_socket, chunk) => delivery.data(chunk),
          close: () => delivery.end(),
          end: () => delivery.end(),
          error: () => delivery.end(),
        },
      });
      return bunSocket(socket, delivery);
    },
  };
}

/** The unix sockets of the runtime running this code. */
function socketApi(): SocketApi {
  const g = globalThis as Record<string, unknown>;
  if (g.Bun) return bunApi(g.Bun as BunSockets);
  if (g.Deno) return denoApi(g.Deno as DenoSockets);
  return nodeApi;
}

// ------------------------------------------------------------------ doorbells

/**
 * Each listener's private directory is `<tmpdir>/plugin-shm-bell-<pid>-XXXXXX`: the pid says whose it is, so
 * leak checks can tell, and a directory left by a host that was killed (SIGKILL leaves no chance to remove
 * it) can be recognised as stale and removed by the next host.
 */
export const directoryPrefix = "plugin-shm-bell-";
let swept = false;
/** Directories of listeners not closed yet: removed at exit if their owner never closed them. */
const openDirectories = new Set<string>();
let exitHookInstalled = false;

function trackDirectory(directory: string): void {
  openDirectories.add(directory);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A process that exits with a listener open (a CLI that exits mid-load, a doc example) must not leave it.
  process.on("exit", () => {
    for (const dir of openDirectories) rmSync(dir, { recursive: true, force: true });
  });
}

/** Once per process: removes doorbell directories of processes that no longer exist. Best effort. */
function sweepStaleDirectories(): void {
  if (swept) return;
  swept = true;
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((name) => name.startsWith(directoryPrefix));
  } catch {
    return;
  }
  for (const name of entries) {
    const pid = Number(name.slice(directoryPrefix.length).split("-")[0]);
    if (!Number.isInteger(pid) || pid <= 0 || processExists(pid)) continue;
    try {
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    } catch {
      // Another user's, or gone meanwhile: not ours to insist on.
    }
  }
}

/** True unless the process is certainly gone (signal 0: ESRCH). A process of another user counts as existing. */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code !== "ESRCH";
  }
}

/** A timer that does not keep the event loop alive (a stranger's idle connection must not keep a host up). */
function unrefTimer(timer: ReturnType<typeof setTimeout>): ReturnType<typeof setTimeout> {
  const deno = (globalThis as { Deno?: { unrefTimer(id: number): void } }).Deno;
  if (typeof timer === "number") deno?.unrefTimer(timer);
  else (timer as { unref?(): void }).unref?.();
  return timer;
}

function byteSocketDoorbell(socket: ByteSocket): Doorbell {
  return {
    ring: () => socket.write(ding),
    listen: (onRing, onEnd) => socket.setHandlers(() => onRing(), onEnd ?? (() => {})),
    close: () => socket.close(),
  };
}

/**
 * A doorbell over one end of a connected node:net stream socket (under every
 * runtime). The socket is unref'd: a parked channel keeps the event loop
 * alive by its own count, an idle one must not. Prefer {@link listenDoorbell}
 * and {@link connectDoorbell}, which use the runtime's own sockets.
 *
 * @example
 * ```ts ignore
 * import net from "node:net";
 * import { socketDoorbell } from "./_doorbell.ts";
 * const doorbell = socketDoorbell(net.connect("/run/example.sock"));
 * doorbell.close();
 * ```
 */
export function socketDoorbell(socket: net.Socket): Doorbell {
  socket.setNoDelay(true);
  return byteSocketDoorbell(nodeSocket(socket));
}

/** What a plugin needs to connect to its host's doorbell (passed in the launch variables). */
export interface DoorbellAddress {
  /** The unix socket's path. */
  path: string;
  /** The key, hex, {@link doorbellKeyBytes} bytes. */
  key: string;
}

/**
 * The host's end of a doorbell being set up: listens on a unix socket in a
 * fresh private directory for the one connection that presents the key.
 */
export class DoorbellListener {
  /** Where the plugin connects, and the key it must present. */
  readonly address: DoorbellAddress;
  readonly #key: Uint8Array;
  readonly #directory: string;
  #server: ByteServer | undefined;
  /** Connections that have not presented the key yet, oldest first, each with what closes it. */
  readonly #pending = new Map<ByteSocket, () => void>();
  #onAccepted: ((doorbell: Doorbell) => void) | undefined;
  #accepted: Doorbell | undefined;
  #closed = false;

  private constructor(directory: string, path: string, key: Uint8Array) {
    this.#directory = directory;
    this.#key = key;
    this.address = { path, key: Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("") };
  }

  /**
   * Starts listening. The directory is made with mode 0700 (mkdtemp), so only
   * this user can reach the socket at all; the key keeps out this user's other
   * processes (another plugin, for one).
   */
  static async open(): Promise<DoorbellListener> {
    sweepStaleDirectories();
    const directory = mkdtempSync(join(tmpdir(), `${directoryPrefix}${process.pid}-`));
    trackDirectory(directory);
    const path = join(directory, "doorbell.sock");
    const listener = new DoorbellListener(directory, path, new Uint8Array(randomBytes(doorbellKeyBytes)));
    try {
      if (new TextEncoder().encode(path).length > socketPathBytesMax) {
        throw new RangeError(
          `The doorbell socket path ${path} is longer than ${socketPathBytesMax} bytes; set TMPDIR to a shorter directory`,
        );
      }
      listener.#server = await socketApi().listen(path, (socket) => listener.#onConnection(socket));
    } catch (error) {
      listener.close();
      throw error;
    }
    if (listener.#closed) listener.#server?.close();
    return listener;
  }

  /** Calls `onAccepted` once, with the doorbell of the connection that presented the key. */
  onAccepted(onAccepted: (doorbell: Doorbell) => void): void {
    this.#onAccepted = onAccepted;
    if (this.#accepted) onAccepted(this.#accepted);
  }

  /**
   * Stops listening, removes the socket and its directory, and closes
   * connections that have not presented the key. A doorbell already accepted
   * stays open (its owner closes it). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server?.close();
    this.#server = undefined;
    // Synchronous, so nothing is left on disk by the time close() returns.
    rmSync(this.#directory, { recursive: true, force: true });
    openDirectories.delete(this.#directory);
    for (const drop of [...this.#pending.values()]) drop();
    if (!this.#accepted) this.#onAccepted = undefined;
  }

  #onConnection(socket: ByteSocket): void {
    if (this.#closed || this.#accepted) {
      socket.close();
      return;
    }
    if (this.#pending.size >= pendingConnectionsMax) this.#pending.values().next().value?.();
    const received = new Uint8Array(doorbellKeyBytes);
    let filled = 0;
    const drop = () => {
      clearTimeout(timer);
      this.#pending.delete(socket);
      socket.close();
    };
    this.#pending.set(socket, drop);
    const timer = unrefTimer(setTimeout(drop, doorbellAuthTimeoutMs));
    socket.setHandlers((chunk) => {
      if (!this.#pending.has(socket)) return;
      // Anything past the key before the answer is a protocol error: a plugin waits for the answer.
      if (filled + chunk.length > doorbellKeyBytes) return drop();
      received.set(chunk, filled);
      filled += chunk.length;
      if (filled < doorbellKeyBytes) return;
      if (!timingSafeEqual(received, this.#key) || this.#closed || this.#accepted) return drop();
      clearTimeout(timer);
      this.#pending.delete(socket);
      this.#accept(socket);
    }, drop);
  }

  #accept(socket: ByteSocket): void {
    socket.hold();
    const doorbell = byteSocketDoorbell(socket);
    this.#accepted = doorbell;
    // Nobody else may connect from here on.
    this.close();
    // The answer goes out after the owner took the doorbell (onAccepted), so a plugin that has it may rely on
    // the host listening; a plugin that never hears it parks on the futex.
    const take = this.#onAccepted;
    if (take) take(doorbell);
    socket.write(ding);
  }
}

/**
 * The host's doorbell listener for one channel: {@link DoorbellListener.open}.
 *
 * @example
 * ```ts
 * import { connectDoorbell, type Doorbell, listenDoorbell } from "./_doorbell.ts";
 * const listener = await listenDoorbell();
 * let hostEnd: Doorbell | undefined;
 * listener.onAccepted((end) => hostEnd = end); // e.g. channel.useDoorbell(end, false)
 * const pluginEnd = await connectDoorbell(listener.address); // e.g. channel.useDoorbell(pluginEnd, true)
 * listener.close();
 * pluginEnd.close();
 * hostEnd?.close();
 * ```
 */
export function listenDoorbell(): Promise<DoorbellListener> {
  return DoorbellListener.open();
}

/**
 * The plugin's end: connects to the host's doorbell, presents the key and
 * waits for the host's answer (up to {@link doorbellAckTimeoutMs}). Throws
 * ConnectError when any of that fails; the caller then parks on the futex.
 */
export async function connectDoorbell(address: DoorbellAddress): Promise<Doorbell> {
  const key = Uint8Array.from(address.key.match(/[0-9a-f]{2}/gi) ?? [], (h) => parseInt(h, 16));
  if (key.length !== doorbellKeyBytes || address.key.length !== doorbellKeyBytes * 2) {
    throw new TypeError(`A doorbell key is ${doorbellKeyBytes} bytes in hex, got ${JSON.stringify(address.key)}`);
  }
  let socket: ByteSocket;
  try {
    socket = await socketApi().connect(address.path);
  } catch (error) {
    throw new ConnectError(
      `Cannot connect to the doorbell ${address.path}: ${(error as Error).message}; ` +
        "check that the host is listening and that the sandbox allows the path (the channel falls back to the futex)",
      { cause: error },
    );
  }
  return await new Promise<Doorbell>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      socket.close();
      reject(new ConnectError(`The doorbell ${address.path} ${why}; the channel falls back to the futex`));
    };
    const timer = setTimeout(() => fail(`did not answer within ${doorbellAckTimeoutMs} ms`), doorbellAckTimeoutMs);
    socket.setHandlers(() => {
      clearTimeout(timer);
      // The answer is one byte; the host rings nothing before this side has announced itself. Whatever comes
      // next (the end, if the host goes away) waits for the channel's handlers.
      socket.hold();
      resolve(byteSocketDoorbell(socket));
    }, () => fail("refused the key (the connection was closed)"));
    socket.write(key);
  });
}
