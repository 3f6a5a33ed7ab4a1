/**
 * The security commands as functions, for `cli.ts`: `lock`, `sign`, `audit
 * verify | checkpoint | tail`, and the trust column of `ls`. Each returns
 * data or lines to print and throws the domain's typed error.
 *
 * @example
 * ```ts ignore
 * import { lockCommand } from "./commands.ts";
 * const { file, plugins } = lockCommand(["examples/plugins"]);
 * console.log(`wrote ${file}: ${plugins.map((p) => p.name).join(", ")}`);
 * ```
 *
 * @module
 */

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadManifest, type Manifest, manifestFile } from "../host/manifest.ts";
import { type AuditCheckpoint, AuditError, type AuditRecord, followAudit, tailAudit, verifyAudit } from "./audit.ts";
import {
  hashTree,
  IntegrityError,
  type Lock,
  type LockEntry,
  lockEntryFor,
  lockFileName,
  readLock,
  writeLock,
} from "./lock.ts";
import {
  claimedSigner,
  type CompiledTrust,
  describeSigner,
  SignatureError,
  type SignResult,
  signTree,
  verifyPluginSignature,
} from "./signature.ts";

/** Plugin directories under `dirs`: each is a plugin directory or holds plugin directories. */
export function findPluginDirs(dirs: string[]): string[] {
  const out: string[] = [];
  for (const d of dirs.map((x) => resolve(x))) {
    if (existsSync(join(d, manifestFile))) out.push(d);
    else if (existsSync(d) && statSync(d).isDirectory()) {
      for (const name of readdirSync(d).sort()) {
        if (existsSync(join(d, name, manifestFile))) out.push(join(d, name));
      }
    }
  }
  return out;
}

/**
 * `cli.ts lock [dir…]`: writes (or updates) the lock for every plugin under
 * `dirs`. The lock goes to `options.lockFile`, default `<first dir>/plugin-shm.lock`.
 */
export function lockCommand(
  dirs: string[],
  options: { lockFile?: string } = {},
): { file: string; plugins: LockEntry[] } {
  const roots = dirs.length > 0 ? dirs : ["."];
  const file = resolve(options.lockFile ?? join(roots[0], lockFileName));
  const lock: Lock = existsSync(file) ? readLock(file) : { version: 1, plugins: {} };
  const lockDir = resolve(file, "..");
  for (const d of roots.map((x) => resolve(x))) {
    if (!existsSync(d) || !statSync(d).isDirectory()) {
      throw new IntegrityError(
        "no_plugins",
        d,
        `${d} is not a directory; pass plugin directories or ones that hold them`,
      );
    }
  }
  const found = findPluginDirs(roots);
  if (found.length === 0) {
    throw new IntegrityError(
      "no_plugins",
      resolve(roots[0]),
      `no plugin (a directory with ${manifestFile}) in ${roots.map((r) => resolve(r)).join(", ")}; nothing to lock`,
    );
  }
  const plugins: LockEntry[] = [];
  for (const dir of found) {
    const m = loadManifest(dir);
    const entry = lockEntryFor(dir, lockDir, m.name, m.version);
    lock.plugins[m.name] = entry;
    plugins.push(entry);
  }
  writeLock(file, lock);
  return { file, plugins };
}

/** `cli.ts sign <plugin-dir> --key <cosign private key>`; password from `COSIGN_PASSWORD` unless given. */
export function signCommand(dir: string, options: { key: string; password?: string; out?: string }): SignResult {
  let keyPem: string;
  try {
    keyPem = readFileSync(options.key, "utf8");
  } catch (error) {
    throw new SignatureError("key_malformed", options.key, `cannot read ${options.key}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return signTree(dir, { keyPem, keyFile: options.key, password: options.password, out: options.out });
}

/** Parses `<seq>:<sha256 hex>` as printed by {@link auditCheckpointCommand}. */
export function parseCheckpoint(text: string): AuditCheckpoint {
  const m = /^(\d+):([0-9a-f]{64})$/.exec(text.trim());
  if (!m) {
    throw new TypeError(`checkpoint must be <seq>:<64 hex digits> as printed by \`audit checkpoint\`, got "${text}"`);
  }
  return { seq: Number(m[1]), hash: m[2] };
}

/** `cli.ts audit verify [file] [--checkpoint seq:hash]`: the line to print; throws AuditError naming the first bad record. */
export function auditVerifyCommand(file: string, options: { checkpoint?: string } = {}): string {
  const checkpoint = options.checkpoint ? parseCheckpoint(options.checkpoint) : undefined;
  const result = verifyAudit(file, { checkpoint });
  return `ok: ${result.records} records in ${result.files.length} file(s), chain intact up to ${result.last.seq}:${result.last.hash}`;
}

/** `cli.ts audit checkpoint [file]`: `<seq>:<hash>` of the last record (verifies the chain first). */
export function auditCheckpointCommand(file: string): string {
  const { last } = verifyAudit(file);
  return `${last.seq}:${last.hash}`;
}

/** Formats one record for `audit tail`. */
export function formatAuditRecord(r: AuditRecord): string {
  return `${r.seq}\t${r.time}\t${r.actor}\t${r.plugin || "-"}\t${r.action}\t${JSON.stringify(r.details)}`;
}

/** `cli.ts audit tail [file] [-n N] [-f]`: prints the last N records, then with `follow` new ones until `signal` aborts. */
export async function auditTailCommand(
  file: string,
  options: { count?: number; follow?: boolean; signal?: AbortSignal; write: (line: string) => void },
): Promise<void> {
  if (!existsSync(file) && !options.follow) {
    throw new AuditError("io", file, `${file} does not exist; pass the audit log's path`);
  }
  if (existsSync(file)) { for (const r of tailAudit(file, options.count ?? 20)) options.write(formatAuditRecord(r)); }
  if (options.follow) {
    await followAudit(file, (r) => options.write(formatAuditRecord(r)), {
      signal: options.signal ?? new AbortController().signal,
    });
  }
}

/** The trust column of `ls` for one plugin. */
export interface TrustColumn {
  /** "locked" (matches), "changed" (differs from the lock), "unlocked" (not in it), or "no lock". */
  lock: "locked" | "changed" | "unlocked" | "no lock";
  /** Who signed, if the signature verified. */
  signedBy?: string;
  /** Who the bundle says signed it, when that was not verified (no policy, or a check failed). */
  claimedBy?: string;
  /** "verified", or why not (the SignatureError's code), or "unsigned", or "no policy". */
  signature: string;
  /** One short cell: `locked, signed by key sha256:ab…, verified`. */
  text: string;
}

/** Computes the trust column for `ls` (hashes the plugin's files; does not copy them). */
export function trustColumn(
  manifest: Pick<Manifest, "name" | "dir">,
  context: { lock?: Lock; trust?: CompiledTrust },
): TrustColumn {
  const tree = hashTree(manifest.dir);
  const entry = context.lock?.plugins[manifest.name];
  const lock: TrustColumn["lock"] = !context.lock
    ? "no lock"
    : !entry
    ? "unlocked"
    : entry.digest === tree.digest
    ? "locked"
    : "changed";
  let signature = "no policy";
  let signedBy: string | undefined;
  if (context.trust) {
    try {
      signedBy = describeSigner(verifyPluginSignature(manifest.dir, tree.digest, context.trust));
      signature = "verified";
    } catch (error) {
      if (!(error instanceof SignatureError)) throw error;
      signature = error.code;
    }
  }
  const claimedBy = signedBy ? undefined : claimedSigner(manifest.dir);
  const by = signedBy ? `signed by ${signedBy}` : claimedBy ? `signed by ${claimedBy} (not verified)` : undefined;
  const text = [lock, by, signature].filter(Boolean).join(", ");
  return { lock, signedBy, claimedBy, signature, text };
}
