/**
 * What a running `serve` (and the demo, once its story is told) does: prints
 * lifecycle changes and plugin output to stderr, keeps recent lines for
 * `logs`, answers the control socket, and stops every plugin gracefully on
 * SIGINT, SIGTERM or `cli.ts stop`.
 *
 * @module
 */

import process from "node:process";
import { PluginNotFoundError } from "../errors.ts";
import type { LogEntry } from "../host/process.ts";
import type { InspectEvent, PluginHost, PluginInfo, StateEvent } from "../host/host.ts";
import { didYouMean } from "../host/suggest.ts";
import { checkInspectPort } from "../host/_inspect.ts";
import { ControlError, type ControlRequest, type ControlServer, listenControl } from "./_control.ts";
import type { Output } from "./_output.ts";
import { stripAnsi } from "./_output.ts";

/** Lines kept for `cli.ts logs`. */
export const logLinesKeptMax = 1000;
/** Lines `cli.ts logs` shows without --lines. */
export const logLinesDefault = 50;

/** One line of a serve's log: plugin output, a lifecycle change or a plugin event. */
export interface LogRecord {
  at: string;
  plugin: string;
  stream: "stdout" | "stderr" | "lifecycle" | "event";
  line: string;
}

/** The serve's log: printed to stderr, kept for `logs`, streamed to followers. */
export class ServeLog {
  readonly #kept: LogRecord[] = [];
  readonly #followers = new Set<(record: LogRecord) => void>();
  readonly #out: Output;
  /** When false, lines are kept but not printed (the demo prints its own story). */
  echo = true;

  constructor(out: Output) {
    this.#out = out;
  }

  /** Wire into a host: pass as the `logger` option. */
  readonly logger = (entry: LogEntry): void => {
    this.add({ at: new Date().toISOString(), plugin: entry.plugin, stream: entry.stream, line: stripAnsi(entry.line) });
  };

  /** Subscribe with host.onState(log.onState). */
  readonly onState = (event: StateEvent): void => {
    const instance = event.instance ? ` #${event.instance}` : "";
    this.add({
      at: new Date(event.at).toISOString(),
      plugin: event.plugin,
      stream: "lifecycle",
      line: `${event.state}${instance}: ${stripAnsi(event.reason)}`,
    });
  };

  /** Subscribe with host.onEvent(log.onEvent). */
  readonly onEvent = (event: { plugin: string; name: string; data: unknown }): void => {
    this.add({
      at: new Date().toISOString(),
      plugin: event.plugin,
      stream: "event",
      line: `${event.name} ${JSON.stringify(event.data) ?? ""}`,
    });
  };

  add(record: LogRecord): void {
    this.#kept.push(record);
    if (this.#kept.length > logLinesKeptMax) this.#kept.shift();
    for (const follower of this.#followers) follower(record);
    if (!this.echo) return;
    if (record.stream === "stdout" || record.stream === "stderr") {
      this.#out.plugin(record.plugin, record.stream, record.line);
    } else {
      const paint = /^(crashed|failed|unresponsive|rolled-back|killed)/.test(record.line)
        ? this.#out.red
        : this.#out.dim;
      this.#out.info(`${this.#out.dim(record.at)} ${record.plugin}: ${paint(record.line)}`);
    }
  }

  /** Subscribe with host.on("inspect", log.onInspect): where to attach a debugger, for the terminal and `logs`. */
  readonly onInspect = (event: InspectEvent): void => {
    this.add({
      at: new Date(event.at).toISOString(),
      plugin: event.plugin,
      stream: "lifecycle",
      line: inspectLine(event),
    });
  };

  recent(plugin: string | undefined, lines: number): LogRecord[] {
    return this.#kept.filter((r) => !plugin || r.plugin === plugin).slice(-lines);
  }

  follow(listener: (record: LogRecord) => void): () => void {
    this.#followers.add(listener);
    return () => this.#followers.delete(listener);
  }
}

/** One line saying where to attach a debugger to an inspected instance. */
export function inspectLine(event: InspectEvent): string {
  const instance = event.instance ? ` #${event.instance}` : "";
  const open = event.runtime === "bun"
    ? `open ${event.devtoolsUrl} (Bun's debugger; VS Code: the Bun extension attaches to ${event.webSocketUrl})`
    : `open ${event.devtoolsUrl} in Chrome (or chrome://inspect → Configure → ${
      event.webSocketUrl.slice(5).split("/")[0]
    }); ` +
      `VS Code: attach (type "node") to port ${event.port}; WebSocket ${event.webSocketUrl}`;
  return `inspect${instance}: ${event.runtime} inspector on 127.0.0.1:${event.port}: ${open}`;
}

/**
 * `serve --inspect NAME[:PORT]` values, by plugin name. A bad port is an InspectError (`bad_port`);
 * the same plugin twice is a UsageError-like CLI failure reported by the caller.
 */
export function parseInspectFlags(values: readonly string[]): Map<string, { port?: number }> {
  const targets = new Map<string, { port?: number }>();
  for (const value of values) {
    const colon = value.lastIndexOf(":");
    const name = colon > 0 ? value.slice(0, colon) : value;
    const port = colon > 0 ? value.slice(colon + 1) : undefined;
    targets.set(
      name,
      port === undefined ? {} : { port: checkInspectPort(name, /^\d+$/.test(port) ? Number(port) : port) },
    );
  }
  return targets;
}

/** Every `--inspect` name must be a plugin this serve found: a typo fails before anything starts. */
export function checkInspectTargets(targets: ReadonlyMap<string, unknown>, found: readonly string[]): void {
  for (const name of targets.keys()) {
    if (found.includes(name)) continue;
    throw new PluginNotFoundError(
      `--inspect ${name}: no plugin "${name}" in the served directories${didYouMean(name, [...found])}; ` +
        `found: ${found.join(", ") || "none"}`,
    );
  }
}

/** A plugin's picture for `status`, without the history. */
export function summary(info: PluginInfo): Record<string, unknown> {
  const { history, ...rest } = info;
  return { ...rest, last: history.at(-1) ?? null };
}

function known(host: PluginHost, name: string | undefined): string {
  if (!name) throw new ControlError("protocol", "name a plugin");
  const names = host.list().map((p) => p.name);
  if (!names.includes(name)) {
    throw new PluginNotFoundError(
      `no plugin "${name}" in this serve${didYouMean(name, names)}; loaded: ${names.join(", ") || "none"}`,
    );
  }
  return name;
}

/**
 * A serving host: answers the control socket and waits for a signal or
 * `stop`, then closes the socket and the host.
 */
export class Serve {
  readonly #host: PluginHost;
  readonly #log: ServeLog;
  readonly #out: Output;
  #control: ControlServer | undefined;
  #stop!: (why: string) => void;
  readonly #stopped = new Promise<string>((resolve) => (this.#stop = resolve));

  constructor(host: PluginHost, log: ServeLog, out: Output) {
    this.#host = host;
    this.#log = log;
    this.#out = out;
  }

  /** Listens on the control socket; throws ControlError if another serve holds it. */
  async openControl(path: string): Promise<void> {
    this.#control = await listenControl(path, (request, stream) => this.#handle(request, stream));
  }

  /** Serves until SIGINT, SIGTERM or `stop`; returns the exit code. */
  async run(): Promise<number> {
    const control = this.#control;
    if (control) {
      this.#out.info(this.#out.dim(`control socket ${control.path} (cli.ts status|logs|reload|restart|stop)`));
    }
    const onInt = () => this.#stop("SIGINT received");
    const onTerm = () => this.#stop("SIGTERM received");
    process.once("SIGINT", onInt);
    process.once("SIGTERM", onTerm);
    const why = await this.#stopped;
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
    this.#out.info(`${why}: stopping every plugin`);
    await this.close();
    return 0;
  }

  /** Closes the control socket and the host. Idempotent. */
  async close(): Promise<void> {
    await this.#control?.close();
    this.#control = undefined;
    await this.#host.close();
  }

  async #handle(
    request: ControlRequest,
    stream: { log(entry: unknown): void; onClose(fn: () => void): void },
  ): Promise<unknown> {
    const host = this.#host;
    switch (request.command) {
      case "status":
        return host.list().map(summary);
      case "reload":
        return summary(await host.reload(known(host, request.plugin)));
      case "restart":
        return summary(await host.restart(known(host, request.plugin)));
      case "stop":
        if (request.plugin) {
          await host.unload(known(host, request.plugin));
          return { stopped: request.plugin };
        }
        setTimeout(() => this.#stop("stop requested through the control socket"), 10);
        return { stopped: "serve" };
      case "logs": {
        if (request.plugin) known(host, request.plugin);
        const lines = Math.max(1, Math.min(logLinesKeptMax, Number(request.lines ?? logLinesDefault) || 1));
        for (const record of this.#log.recent(request.plugin, lines)) stream.log(record);
        if (!request.follow) return null;
        return await new Promise<never>(() => {
          const unfollow = this.#log.follow((r) => (!request.plugin || r.plugin === request.plugin) && stream.log(r));
          stream.onClose(unfollow);
        });
      }
      default:
        throw new ControlError("protocol", `unknown command "${String(request.command)}"`);
    }
  }
}
