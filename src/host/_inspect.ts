/**
 * Plugins under their runtime's inspector: which flag starts it (Deno and
 * Node: V8's inspector, Chrome DevTools Protocol; Bun: WebKit's, for
 * JavaScriptCore), on which loopback port, and where a debugger connects.
 *
 * An inspector is an unauthenticated remote-control port: whoever connects
 * runs code in the plugin with the plugin's grants. So it listens on
 * 127.0.0.1 only, on a port the sandbox lets the plugin bind and nothing
 * else (sandbox_plan.ts), and only when asked: `load(name, {inspect})` for a
 * human with a debugger, or the host option `blameStalls` (see _blame.ts).
 * Bun's WebSocket path is a per-launch secret (Bun checks it and serves no
 * target list); Deno and Node put a random id in theirs but list it at
 * `/json/list` to anyone who can reach the port.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { connect, createServer } from "node:net";
import { clearTimeout, setTimeout } from "node:timers";
import { InspectError } from "./errors.ts";
import type { Manifest } from "./manifest.ts";
import type { InspectorEndpoint } from "./types.ts";

/** The address every inspector listens on: loopback only. */
export const inspectorHost = "127.0.0.1";
/** How long the host waits for a started inspector to list its target. */
export const inspectorTargetTimeoutMsDefault = 5_000;
/** Lowest port a user may ask for: below it binding needs privileges the sandbox never grants. */
export const inspectPortMin = 1024;

/** What `load(name, {inspect})` accepts: true (a free port) or a port to use. */
export type InspectRequest = boolean | { port?: number };

/** Where a debugger attaches to one inspected instance (the payload of the host's "inspect" event). */
export interface InspectEvent {
  /** The plugin's name. */
  plugin: string;
  /** The instance (ids are unique within this host process, from 1). */
  instance: number;
  /** The instance's process id (the sandbox launcher's, as the host sees it). */
  pid: number | undefined;
  /** The plugin's runtime: Deno and Node speak the Chrome DevTools Protocol, Bun WebKit's inspector protocol. */
  runtime: Manifest["runtime"];
  /** The loopback port the inspector listens on. */
  port: number;
  /** The inspector's WebSocket URL (VS Code's "attach", or any CDP client). */
  webSocketUrl: string;
  /**
   * A URL to open: Chrome DevTools (`devtools://…`, paste into Chrome's address bar) for Deno and Node,
   * Bun's web debugger (https://debug.bun.sh) for Bun.
   */
  devtoolsUrl: string;
  /** Milliseconds since the epoch. */
  at: number;
}

/** The runtime flag that starts the inspector at `endpoint` (or, on demand, only sets its port). */
export function inspectFlag(runtime: Manifest["runtime"], endpoint: InspectorEndpoint): string {
  if (endpoint.onDemand && runtime === "node") return `--inspect-port=${endpoint.host}:${endpoint.port}`;
  const path = runtime === "bun" && endpoint.path ? `/${endpoint.path}` : "";
  return `--inspect=${endpoint.host}:${endpoint.port}${path}`;
}

/** A fresh per-launch secret for Bun's WebSocket path (Deno and Node choose their own). */
export function inspectorSecret(): string {
  return randomBytes(16).toString("hex");
}

/** Checks a requested port; throws an InspectError for one that cannot be. */
export function checkInspectPort(plugin: string, port: unknown): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < inspectPortMin || port > 65535) {
    throw new InspectError(
      "bad_port",
      `Cannot inspect plugin "${plugin}" on port ${JSON.stringify(port)}: give an integer from ${inspectPortMin} ` +
        `to 65535, or inspect: true (serve --inspect NAME without a port) for a free one`,
    );
  }
  return port;
}

/**
 * A loopback port for an inspector: `requested` if nobody listens there (else an InspectError
 * `port_in_use`), otherwise one the kernel says is free. The port is released again before the
 * plugin binds it; another process could take it in between, and then the plugin's runtime reports it.
 */
export async function reserveInspectPort(plugin: string, requested?: number): Promise<number> {
  try {
    return await listenOnce(requested ?? 0);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "EADDRINUSE" || code === "EACCES") {
      throw new InspectError(
        "port_in_use",
        `Cannot inspect plugin "${plugin}" on ${inspectorHost}:${requested}: ${
          code === "EADDRINUSE" ? "another process listens there" : "the port is not allowed"
        }; pick another port, or inspect: true (serve --inspect NAME without a port) for a free one`,
        { cause: error },
      );
    }
    throw error;
  }
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ port, host: inspectorHost, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === "object" && address ? address.port : port;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * The inspector's WebSocket and DevTools URLs once it listens. Deno and Node list their
 * target at `/json/list` (polled until it answers or `timeoutMs`); Bun's is the secret path
 * the host chose.
 */
export async function inspectorTarget(
  runtime: Manifest["runtime"],
  endpoint: InspectorEndpoint,
  timeoutMs: number = inspectorTargetTimeoutMsDefault,
): Promise<{ webSocketUrl: string; devtoolsUrl: string }> {
  const where = `${endpoint.host}:${endpoint.port}`;
  if (runtime === "bun") {
    return {
      webSocketUrl: `ws://${where}/${endpoint.path}`,
      devtoolsUrl: `https://debug.bun.sh/#${where}/${endpoint.path}`,
    };
  }
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`http://${where}/json/list`, { signal: AbortSignal.timeout(1000) });
      const targets = await response.json() as { webSocketDebuggerUrl?: string; devtoolsFrontendUrl?: string }[];
      const target = targets.find((t) => t.webSocketDebuggerUrl);
      if (target) {
        const webSocketUrl = target.webSocketDebuggerUrl!;
        const devtoolsUrl = target.devtoolsFrontendUrl ??
          `devtools://devtools/bundled/js_app.html?experiments=true&v8only=true&ws=${webSocketUrl.slice(5)}`;
        return { webSocketUrl, devtoolsUrl };
      }
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new InspectError(
    "unreachable",
    `The ${runtime} inspector of the plugin did not answer at http://${where}/json/list within ${timeoutMs} ms` +
      `${last ? ` (${(last as Error).message})` : ""}; check the plugin's stderr (a sandbox that does not let ` +
      `it bind the port, or a port taken meanwhile)`,
  );
}

/** Whether something accepts TCP connections at `endpoint` now (refused, or no answer within 1 s: false). */
export function portAnswers(endpoint: InspectorEndpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(endpoint.port, endpoint.host);
    const done = (answers: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answers);
    };
    const timer = setTimeout(() => done(false), 1000);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Races `promise` against `timeoutMs`; rejects with `what` on timeout. */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${timeoutMs} ms`)), timeoutMs);
  });
  promise.catch(() => {});
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
