/**
 * The local control socket of a running `serve`: a unix socket in a per-user
 * runtime directory (0700, the socket 0600), one JSON object per line each
 * way. A request is `{"command": …, "plugin"?: …, …}`; the answer is
 * `{"ok": true, "result": …}` or `{"ok": false, "error": {name, code,
 * message}}`; `logs --follow` sends `{"log": …}` lines until the client
 * hangs up. The admin API (issue 12) is meant to replace or wrap this.
 *
 * @module
 */

import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";

/** A request line. */
export interface ControlRequest {
  command: "status" | "reload" | "restart" | "stop" | "logs";
  plugin?: string;
  lines?: number;
  follow?: boolean;
}

/** An answer line. */
export type ControlResponse =
  | { ok: true; result: unknown }
  | { ok: false; error: { name: string; code: string; message: string } }
  | { log: unknown };

/** Longest request line the server accepts. */
export const requestBytesMax = 64 * 1024;

/**
 * The control socket failed: no serve is running, the runtime directory is
 * unsafe, another serve holds the socket, or the serve answered with an error.
 */
export class ControlError extends Error {
  override name = "ControlError";
  readonly code: "not_running" | "unsafe_dir" | "in_use" | "protocol" | "remote";
  constructor(code: ControlError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

/** `$XDG_RUNTIME_DIR/plugin-shm/control.sock`, else `<tmp>/plugin-shm-<uid>/control.sock`. */
export function defaultSocketPath(): string {
  const xdg = process.env.XDG_RUNTIME_DIR;
  const dir = xdg ? join(xdg, "plugin-shm") : join(tmpdir(), `plugin-shm-${process.getuid?.() ?? "user"}`);
  return join(dir, "control.sock");
}

/** Creates the socket's directory 0700, and refuses one that others own or may write. */
function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  const uid = process.getuid?.();
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o022) !== 0) {
    throw new ControlError(
      "unsafe_dir",
      `${dir} is not a private directory of this user; remove it or pass --socket <path> in a directory only you can write`,
    );
  }
}

function send(socket: Socket, message: ControlResponse): void {
  if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`);
}

/** Splits a byte stream into JSON lines. */
function lines(socket: Socket, onLine: (line: string) => void, limit = Infinity): void {
  let pending = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    pending += chunk;
    if (pending.length > limit) {
      socket.destroy();
      return;
    }
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line) onLine(line);
    }
  });
}

/** What the serve does with a request: answer once, or stream log lines through `log`. */
export type ControlHandler = (
  request: ControlRequest,
  stream: { log(entry: unknown): void; onClose(fn: () => void): void },
) => Promise<unknown>;

/** A listening control socket. */
export interface ControlServer {
  path: string;
  close(): Promise<void>;
}

/** Listens on `path`; a stale socket from a dead serve is replaced, a live one refused. */
export async function listenControl(path: string, handler: ControlHandler): Promise<ControlServer> {
  ensurePrivateDir(dirname(path));
  if (existsSync(path)) {
    if (await answers(path)) {
      throw new ControlError(
        "in_use",
        `another serve is running with control socket ${path}; stop it with "cli.ts stop" or pass --socket <path>`,
      );
    }
    unlinkSync(path);
  }
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    const closers: (() => void)[] = [];
    socket.on("close", () => closers.forEach((fn) => fn()));
    lines(socket, (line) => {
      let request: ControlRequest;
      try {
        request = JSON.parse(line);
        if (typeof request?.command !== "string") throw new Error("no command");
      } catch {
        send(socket, {
          ok: false,
          error: { name: "ControlError", code: "protocol", message: 'send one JSON object per line: {"command": …}' },
        });
        return;
      }
      const stream = {
        log: (entry: unknown) => send(socket, { log: entry }),
        onClose: (fn: () => void) => closers.push(fn),
      };
      handler(request, stream).then(
        (result) => send(socket, { ok: true, result: result ?? null }),
        (error: Error & { code?: unknown }) =>
          send(socket, {
            ok: false,
            error: { name: error.name, code: String(error.code ?? "error"), message: error.message },
          }),
      );
    }, requestBytesMax);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
        try {
          unlinkSync(path);
        } catch {
          // Already gone.
        }
      }),
  };
}

/** True when something accepts connections at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

/**
 * Sends one request to the serve at `path`; resolves with its result. Log
 * lines (for `logs`) go to `onLog` as they arrive.
 */
export function controlRequest(
  path: string,
  request: ControlRequest,
  onLog?: (entry: unknown) => void,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (!existsSync(path)) {
      reject(
        new ControlError(
          "not_running",
          `no serve is running (no control socket at ${path}); start one with "cli.ts serve"`,
        ),
      );
      return;
    }
    const socket = createConnection(path);
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      fn();
    };
    socket.once("connect", () => socket.write(`${JSON.stringify(request)}\n`));
    socket.once("error", (error: Error & { code?: string }) =>
      finish(() =>
        reject(
          error.code === "ECONNREFUSED" || error.code === "ENOENT"
            ? new ControlError(
              "not_running",
              `no serve answers at ${path} (it probably exited); start one with "cli.ts serve"`,
            )
            : new ControlError("protocol", `control socket ${path}: ${error.message}`),
        )
      ));
    socket.once(
      "close",
      () => finish(() => reject(new ControlError("protocol", `the serve at ${path} hung up without answering`))),
    );
    lines(socket, (line) => {
      let message: ControlResponse;
      try {
        message = JSON.parse(line);
      } catch {
        finish(() => reject(new ControlError("protocol", `the serve at ${path} sent a line that is not JSON`)));
        return;
      }
      if ("log" in message) onLog?.(message.log);
      else if (message.ok) finish(() => resolve(message.result));
      else {finish(() =>
          reject(Object.assign(new ControlError("remote", message.error.message), { remote: message.error }))
        );}
    });
  });
}
