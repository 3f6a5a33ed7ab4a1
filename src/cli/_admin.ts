/**
 * `--admin [host:port]` of `cli.ts serve` and `cli.ts demo`: the Hono admin
 * API and dashboard beside the serving host, with the host's call metrics and
 * its plugins' output kept for it. Loopback by default; another address needs
 * `--admin-cert` and `--admin-key`. The token comes from
 * PLUGIN_SHM_ADMIN_TOKEN, else from (or generated into) a 0600 file whose path
 * is printed.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { type AdminAppOptions, createAdminApp } from "../admin/app.ts";
import { type AdminServer, isLoopback, serveAdmin } from "../admin/serve.ts";
import { type AdminToken, adminTokenEnv, resolveAdminToken } from "../admin/token.ts";
import { TrustTracker } from "../admin/trust.ts";
import type { LogEntry } from "../host/process.ts";
import type { PluginHost } from "../host/host.ts";
import type { PluginHostOptions } from "../host/options.ts";
import type { PluginVerifier } from "../host/types.ts";
import { LogStore } from "../observe/logs.ts";
import { PluginMetrics } from "../observe/metrics.ts";
import type { FlagSpec } from "./_args.ts";
import { UsageError } from "./_args.ts";
import type { Output } from "./_output.ts";

/** Where `--admin` without an address listens: loopback, a free port (printed). */
export const adminListenDefault = "127.0.0.1:0";

/** The admin flags, for a command's `flags`. */
export const adminFlags = {
  admin: {
    type: "string",
    value: "host:port",
    description: `serve the admin API and dashboard (address optional, default ${adminListenDefault} = a free port)`,
  },
  "admin-cert": { type: "string", value: "file", description: "TLS certificate (PEM), needed off loopback" },
  "admin-key": { type: "string", value: "file", description: "TLS private key (PEM), needed off loopback" },
  "admin-token-file": {
    type: "string",
    value: "file",
    description: `admin token file (0600; generated if missing) when ${adminTokenEnv} is unset`,
  },
  "admin-public-metrics": { type: "boolean", description: "serve GET /metrics without the token" },
} as const satisfies Record<string, FlagSpec>;

const addressPattern = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$|^\d{1,5}$/;

/**
 * Gives `--admin` its optional value: node:util's parseArgs knows only flags
 * that always or never take one. `--admin` followed by an address becomes
 * `--admin=<address>`; alone (or before a flag or a directory) it becomes
 * `--admin=` (the default address).
 */
export function expandAdminFlag(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (argv[i] !== "--admin") {
      out.push(argv[i]);
      continue;
    }
    const next = argv[i + 1];
    if (next !== undefined && addressPattern.test(next)) {
      out.push(`--admin=${next}`);
      i++;
    } else {
      out.push("--admin=");
    }
  }
  return out;
}

/** `host:port`, `:port`, `port` or "" as hostname and port; throws UsageError otherwise. */
export function parseListen(text: string, command: string): { hostname: string; port: number } {
  const value = text || adminListenDefault;
  if (!addressPattern.test(value)) {
    throw new UsageError(`--admin takes host:port (e.g. 127.0.0.1:8787), got "${text}"`, command);
  }
  const colon = value.lastIndexOf(":");
  const hostname = colon < 0 ? "127.0.0.1" : value.slice(0, colon).replace(/^\[|\]$/g, "") || "127.0.0.1";
  const port = Number(colon < 0 ? value : value.slice(colon + 1));
  if (port > 65_535) throw new UsageError(`--admin port must be 0-65535, got ${port}`, command);
  return { hostname, port };
}

/** The admin side of a serve: metrics and kept logs from the start, the server once the host exists. */
export class ServeAdmin {
  readonly metrics: PluginMetrics = new PluginMetrics();
  /** The verifier's verdict per plugin, for the dashboard's trust column. */
  readonly trust: TrustTracker = new TrustTracker();
  readonly logs: LogStore;
  readonly #values: Record<string, unknown>;
  readonly #command: string;
  readonly #out: Output;
  #server: AdminServer | undefined;

  /** Null unless `--admin` was given. Checks the flags before anything starts. */
  static fromFlags(values: Record<string, unknown>, command: string, out: Output): ServeAdmin | null {
    if (values.admin === undefined) {
      for (const flag of ["admin-cert", "admin-key", "admin-token-file", "admin-public-metrics"]) {
        if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --admin`, command);
      }
      return null;
    }
    const { hostname } = parseListen(String(values.admin), command);
    if ((values["admin-cert"] === undefined) !== (values["admin-key"] === undefined)) {
      throw new UsageError("--admin-cert and --admin-key go together", command);
    }
    if (!isLoopback(hostname) && values["admin-cert"] === undefined) {
      throw new UsageError(
        `--admin ${hostname} is reachable from other machines, and the token would cross the network in clear; ` +
          "pass --admin-cert <file> --admin-key <file>, or listen on 127.0.0.1",
        command,
      );
    }
    return new ServeAdmin(values, command, out);
  }

  private constructor(values: Record<string, unknown>, command: string, out: Output) {
    this.#values = values;
    this.#command = command;
    this.#out = out;
    this.logs = new LogStore();
  }

  /**
   * Host options that feed the admin: call instrumentation for the metrics,
   * and a logger that keeps each line for the logs routes, then passes it to
   * `logger`.
   */
  hostOptions(
    logger: (entry: LogEntry) => void,
    verifier?: PluginVerifier,
  ): Pick<PluginHostOptions, "instrumentation" | "logger" | "verifier"> {
    const keep = this.logs.logger;
    return {
      // The dashboard's trust column shows what the verifier said about each plugin.
      ...(verifier ? { verifier: this.trust.wrap(verifier) } : {}),
      instrumentation: this.metrics.instrumentation,
      logger: (entry) => {
        keep(entry);
        logger(entry);
      },
    };
  }

  /** Serves the admin app for `host`; prints its URL and where the token is. `onAction` sees each operator action. */
  async start(host: PluginHost, onAction?: AdminAppOptions["onAction"]): Promise<{ url: string; token: AdminToken }> {
    const values = this.#values;
    const { hostname, port } = parseListen(String(values.admin), this.#command);
    const token = resolveAdminToken({
      file: values["admin-token-file"] === undefined ? undefined : resolve(String(values["admin-token-file"])),
    });
    const tls = values["admin-cert"] === undefined ? undefined : {
      cert: readFileSync(resolve(String(values["admin-cert"])), "utf8"),
      key: readFileSync(resolve(String(values["admin-key"])), "utf8"),
    };
    this.metrics.observe(host);
    const app = createAdminApp(host, {
      token: token.token,
      metrics: this.metrics,
      logs: this.logs,
      publicMetrics: Boolean(values["admin-public-metrics"]),
      trust: (name) => this.trust.summary(name),
      onAction,
    });
    this.#server = await serveAdmin(app, { hostname, port, tls });
    const where = token.source === "env" ? `from ${adminTokenEnv}` : `in ${token.file}`;
    this.#out.info(`admin API and dashboard at ${this.#server.url} (token ${where})`);
    return { url: this.#server.url, token };
  }

  /** Stops the server and the metrics' sampling. Idempotent. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.metrics.close();
    await server?.close();
  }
}
