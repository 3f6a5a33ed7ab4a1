/**
 * The commands that talk to a running `serve` over its control socket:
 * status, reload, restart, stop and logs.
 *
 * @module
 */

import { resolve } from "node:path";
import process from "node:process";
import { UsageError } from "./_args.ts";
import { controlRequest, defaultSocketPath } from "./_control.ts";
import type { Output } from "./_output.ts";
import type { LogRecord } from "./_serve.ts";

/** The control socket a command names with --socket, or the default one. */
export function socketOf(values: Record<string, unknown>): string {
  return resolve((values.socket as string | undefined) ?? defaultSocketPath());
}

function printLog(out: Output, entry: unknown): void {
  const r = entry as LogRecord;
  const tag = r.stream === "stdout" || r.stream === "stderr" ? `[${r.plugin}]` : `${r.plugin}:`;
  out.result(`${r.at} ${tag} ${r.line}`);
}

/** `cli.ts status|logs|reload|restart|stop`. */
export async function remote(
  out: Output,
  command: "status" | "logs" | "reload" | "restart" | "stop",
  positionals: string[],
  values: Record<string, unknown>,
): Promise<number> {
  const socket = socketOf(values);
  if (command === "status") {
    const plugins = (await controlRequest(socket, { command })) as Record<string, unknown>[];
    if (values.json) out.result(JSON.stringify(plugins, null, 2));
    else if (plugins.length === 0) out.info("the serve has no plugins");
    for (const p of values.json ? [] : plugins) {
      const last = p.last as { state: string; reason: string } | null;
      out.result(
        `${String(p.name).padEnd(16)} ${String(p.state).padEnd(10)} pids=${(p.pids as number[]).join(",") || "-"} ` +
          `crashes=${p.crashes}${last ? `  last: ${last.state} — ${last.reason}` : ""}`,
      );
    }
    return 0;
  }
  if (command === "logs") {
    const lines = values.lines === undefined ? undefined : Number(values.lines);
    if (lines !== undefined && (!Number.isInteger(lines) || lines < 1)) {
      throw new UsageError(`--lines must be a positive whole number, got "${values.lines}"`, "logs");
    }
    const follow = Boolean(values.follow);
    const done = controlRequest(socket, { command, plugin: positionals[0], lines, follow }, (e) => printLog(out, e));
    if (follow) {
      // Ends on Ctrl-C, or when the serve stops.
      await Promise.race([done.catch(() => {}), new Promise((r) => process.once("SIGINT", r))]);
      return 0;
    }
    await done;
    return 0;
  }
  const result = await controlRequest(socket, {
    command: command as "reload" | "restart" | "stop",
    plugin: positionals[0],
  });
  const r = result as { name?: string; state?: string; stopped?: string; last?: { reason: string } };
  if (command === "stop") out.result(r.stopped === "serve" ? "serve stopping" : `stopped ${r.stopped}`);
  else out.result(`${r.name} ${r.state}${r.last ? ` — ${r.last.reason}` : ""}`);
  return 0;
}
