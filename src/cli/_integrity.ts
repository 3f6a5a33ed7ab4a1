/**
 * The CLI's security side: the `lock`, `sign` and `audit` commands, the flags
 * `serve` and `call` take to check plugins before they run (lock, signatures,
 * sandbox) and to keep an audit log, and the trust column of `ls`. The
 * work itself is in src/security/; this file turns flags into its options.
 *
 * @module
 */

import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import type { ActionRecord } from "../admin/app.ts";
import type { Manifest } from "../host/manifest.ts";
import { AuditLog, recordHostEvents } from "../security/audit.ts";
import {
  auditCheckpointCommand,
  auditTailCommand,
  auditVerifyCommand,
  lockCommand,
  signCommand,
  trustColumn,
} from "../security/commands.ts";
import { type Lock, lockFileName, readLock } from "../security/lock.ts";
import type { PluginHost } from "../host/host.ts";
import type { PluginHostOptions } from "../host/options.ts";
import type { SandboxMode } from "../host/sandbox.ts";
import { type CompiledTrust, compileTrust, readTrustPolicy } from "../security/signature.ts";
import { type CheckMode, createVerifier, type IntegrityVerifier } from "../security/verifier.ts";
import { type CommandSpec, type FlagSpec, UsageError } from "./_args.ts";
import type { Output } from "./_output.ts";

const checkModes = ["require", "warn", "off"] as const;
/** What `audit checkpoint` prints (parseCheckpoint in src/security/commands.ts reads it). */
const checkpointPattern = /^\d+:[0-9a-f]{64}$/;
const sandboxModes = ["required", "best-effort", "off"] as const;

/** The flags `serve` and `call` take for checking plugins and recording what happens. */
export const securityFlags: Record<string, FlagSpec> = {
  integrity: {
    type: "string",
    value: "mode",
    choices: checkModes,
    description: "check each plugin's files against the lock before it runs (default off; require with --lock)",
  },
  lock: {
    type: "string",
    value: "file",
    description: `the lock to check against (default <first dir>/${lockFileName})`,
  },
  signatures: {
    type: "string",
    value: "mode",
    choices: checkModes,
    description: "check each plugin's plugin.sigstore.json against --trust (default off; require with --trust)",
  },
  trust: { type: "string", value: "file", description: "trust policy JSON: keys, identities, trustedRoot, deny" },
  audit: {
    type: "string",
    value: "file",
    description: "append a hash-chained record of every check and lifecycle event",
  },
  "audit-required": {
    type: "boolean",
    description: "refuse new loads while the --audit log cannot be written (full disk, unwritable file)",
  },
  sandbox: {
    type: "string",
    value: "mode",
    choices: sandboxModes,
    description: "OS sandbox for every plugin: required, best-effort or off (docs/security.md)",
  },
};

/** What the security flags add to a host: options before it is made, subscriptions after, cleanup at the end. */
export interface SecuritySetup {
  options: Partial<PluginHostOptions>;
  /** Subscribes the audit log to the host's events. */
  attach(host: PluginHost): void;
  /** Records an operator action of the admin API in the audit log (actor "admin"); undefined without --audit. */
  onAdminAction?: (record: ActionRecord) => void;
  /** Flushes and closes the audit log. */
  close(): Promise<void>;
}

function mode(value: unknown, given: boolean): CheckMode {
  return (value as CheckMode | undefined) ?? (given ? "require" : "off");
}

/** Turns `--integrity --lock --signatures --trust --audit --sandbox` into host options. */
export function securitySetup(values: Record<string, unknown>, dirs: string[]): SecuritySetup {
  const integrity = mode(values.integrity, values.lock !== undefined);
  const signatures = mode(values.signatures, values.trust !== undefined);
  if (signatures !== "off" && values.trust === undefined) {
    throw new UsageError("--signatures needs --trust <policy.json>: who may sign plugins");
  }
  const lockFile = values.lock !== undefined ? resolve(values.lock as string) : resolve(dirs[0] ?? ".", lockFileName);
  if (integrity !== "off" && !existsSync(lockFile)) {
    throw new UsageError(`--integrity ${integrity}: ${lockFile} does not exist; write it with "cli.ts lock <dir>"`);
  }
  if (values["audit-required"] && values.audit === undefined) {
    throw new UsageError("--audit-required needs --audit <file>: the log that must stay writable");
  }
  const audit = values.audit !== undefined
    ? AuditLog.open(resolve(values.audit as string), { stopLoadsOnFailure: Boolean(values["audit-required"]) })
    : undefined;
  const options: Partial<PluginHostOptions> = {};
  if (values.sandbox !== undefined) options.sandbox = values.sandbox as SandboxMode;
  let verifier: IntegrityVerifier | undefined;
  if (integrity !== "off" || signatures !== "off" || audit) {
    verifier = options.verifier = createVerifier({
      integrity,
      signatures,
      lockFile: integrity !== "off" ? lockFile : undefined,
      trust: signatures !== "off" ? readTrustPolicy(resolve(values.trust as string)) : undefined,
      audit,
      onWarning: (message) => process.stderr.write(`warning: ${message}\n`),
    });
  }
  const detach: (() => void)[] = [];
  return {
    options,
    onAdminAction: audit
      ? ({ action, plugin, ...details }) => {
        if (!audit.closed) audit.append({ actor: "admin", plugin, action, details });
      }
      : undefined,
    attach(host) {
      // The verifier writes its own refusals (with the check that failed), so the bus's are left out.
      if (audit) detach.push(recordHostEvents(host, audit, { actor: "host", except: ["refused"] }));
      // Each private copy goes as soon as nothing runs from it (unload, failure, reload), not only at exit.
      if (verifier) detach.push(verifier.watch(host));
    },
    async close() {
      for (const off of detach.splice(0)) off();
      verifier?.close(); // The private copies the plugins ran from.
      await audit?.close();
    },
  };
}

/** What `ls` needs to show a trust column: the lock and the trust policy, if any. */
export interface TrustContext {
  lock?: Lock;
  trust?: CompiledTrust;
}

/** The lock (`--lock`, or `<first dir>/plugin-shm.lock` if it exists) and the trust policy (`--trust`) for `ls`. */
export function trustContext(values: Record<string, unknown>, dirs: string[]): TrustContext | undefined {
  const lockFile = values.lock !== undefined ? resolve(values.lock as string) : join(dirs[0] ?? ".", lockFileName);
  const lock = existsSync(lockFile) ? readLock(lockFile) : undefined;
  const trustFile = values.trust as string | undefined;
  const trust = trustFile ? compileTrust(readTrustPolicy(resolve(trustFile)), trustFile) : undefined;
  if (values.lock !== undefined && !lock) throw new UsageError(`--lock ${lockFile} does not exist`);
  return lock || trust ? { lock, trust } : undefined;
}

/** The trust cell of one plugin for `ls`. */
export function trustCell(manifest: Manifest, context: TrustContext): string {
  return trustColumn(manifest, context).text;
}

/** A security command: its spec for the command table and what it runs. */
export interface SecurityCommand extends CommandSpec {
  run(out: Output, positionals: string[], values: Record<string, unknown>): Promise<number> | number;
}

/** `lock`, `sign` and `audit`, in the shape of cli.ts's command table. */
export const securityCommands: Record<"lock" | "sign" | "audit", SecurityCommand> = {
  lock: {
    name: "lock",
    summary: "Write plugin-shm.lock: each plugin's name, version and the SHA-256 of every file it has.",
    synopsis: "[dir…]",
    positionalsMin: 0,
    positionalsMax: Infinity,
    flags: {
      out: { type: "string", value: "file", description: `where to write (default <first dir>/${lockFileName})` },
    },
    details: `Each dir is a plugin directory or holds plugin directories. An existing lock is updated: the
plugins found are (re)hashed, others kept. Serve with --integrity require to refuse any plugin whose
files differ, before any of its code runs (docs/integrity.md).`,
    run(out, positionals, values) {
      const { file, plugins } = lockCommand(positionals, { lockFile: values.out as string | undefined });
      for (const p of plugins) out.result(`${p.name.padEnd(16)} ${p.version.padEnd(10)} ${p.digest}`);
      out.info(`wrote ${file} (${plugins.length} plugin(s))`);
      return 0;
    },
  },
  sign: {
    name: "sign",
    summary: "Sign a plugin's tree digest with a cosign key: writes plugin.sigstore.json (Sigstore bundle v0.3).",
    synopsis: "<plugin-dir>",
    positionalsMin: 1,
    positionalsMax: 1,
    flags: {
      key: { type: "string", value: "file", description: "cosign private key (cosign generate-key-pair)" },
      out: { type: "string", value: "file", description: "where to write (default <plugin-dir>/plugin.sigstore.json)" },
    },
    details: `The key's password comes from COSIGN_PASSWORD, as with cosign. The bundle verifies with
"cosign verify-blob --new-bundle-format" and with serve --signatures require --trust <policy>.`,
    run(out, positionals, values) {
      if (values.key === undefined) throw new UsageError("sign needs --key <cosign private key>");
      const result = signCommand(resolve(positionals[0]), {
        key: resolve(values.key as string),
        password: process.env.COSIGN_PASSWORD ?? "",
        out: values.out as string | undefined,
      });
      out.result(`signed ${result.digest} with key ${result.keyId}`);
      out.info(`wrote ${result.bundleFile}`);
      return 0;
    },
  },
  audit: {
    name: "audit",
    summary: "Check, pin or read an audit log: verify (the hash chain), checkpoint, tail.",
    synopsis: "<verify|checkpoint|tail> <file>",
    positionalsMin: 2,
    positionalsMax: 2,
    flags: {
      checkpoint: { type: "string", value: "seq:hash", description: "verify: also require this earlier checkpoint" },
      lines: { type: "string", short: "n", value: "count", description: "tail: how many records (default 20)" },
      follow: { type: "boolean", short: "f", description: "tail: keep printing new records until Ctrl-C" },
    },
    details: `verify exits 1 naming the first record that was changed, removed or reordered.
checkpoint prints <seq>:<hash> of the last record: keep it elsewhere, then verify --checkpoint
proves the log was not rewritten up to it.`,
    async run(out, positionals, values) {
      const [action, file] = [positionals[0], resolve(positionals[1])];
      if (values.checkpoint !== undefined && !checkpointPattern.test(values.checkpoint as string)) {
        throw new UsageError(
          `--checkpoint must be <seq>:<64 hex digits> as printed by "audit checkpoint", got "${values.checkpoint}"`,
        );
      }
      if (action === "verify") {
        out.result(auditVerifyCommand(file, { checkpoint: values.checkpoint as string | undefined }));
      } else if (action === "checkpoint") {
        out.result(auditCheckpointCommand(file));
      } else if (action === "tail") {
        const count = values.lines === undefined ? undefined : Number(values.lines);
        if (count !== undefined && (!Number.isInteger(count) || count < 1)) {
          throw new UsageError(`--lines must be a positive whole number, got "${values.lines}"`);
        }
        const stop = new AbortController();
        const onSigint = () => stop.abort();
        process.once("SIGINT", onSigint);
        try {
          await auditTailCommand(file, {
            count,
            follow: Boolean(values.follow),
            signal: stop.signal,
            write: (line) => out.result(line),
          });
        } finally {
          process.off("SIGINT", onSigint);
        }
      } else {
        throw new UsageError(`unknown audit action "${action}": verify, checkpoint or tail`);
      }
      return 0;
    },
  },
};
