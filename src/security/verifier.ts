/**
 * The verifier the host calls before every spawn (load, restart, reload): it
 * copies the plugin's directory into a private read-only directory, hashing
 * as it copies, checks the copy against the lock and the signature policy,
 * and hands back the copy as `runDir`. The plugin then runs from exactly the
 * bytes that were checked.
 *
 * @example
 * ```ts ignore
 * import { PluginHost } from "../../mod.ts";
 * import { createVerifier } from "./verifier.ts";
 * const verifier = createVerifier({ integrity: "require", lockFile: "plugins/plugin-shm.lock" });
 * const host = new PluginHost({ dirs: ["plugins"], verifier });
 * ```
 *
 * @module
 */

import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Manifest } from "../host/manifest.ts";
import type { StateEvent } from "../host/types.ts";
import type { AuditLog } from "./audit.ts";
import { compareTree, copyVerified, IntegrityError, type Lock, privateRunRoot, readLock, removeCopy } from "./lock.ts";
import {
  type CompiledTrust,
  compileTrust,
  describeSigner,
  SignatureError,
  type SignedBy,
  type TrustPolicy,
  verifyPluginSignature,
} from "./signature.ts";

/** How strictly a check is applied: refuse, warn and run anyway, or skip. */
export type CheckMode = "require" | "warn" | "off";

/** What {@link PluginVerifier.verify} returns (the host's VerifyResult). */
export interface VerifyResult {
  /** The private read-only copy to run the plugin from. */
  runDir?: string;
  /** Tree digest of the bytes in runDir. */
  digest?: string;
  /** Who signed, when a signature verified. */
  signedBy?: SignedBy;
  /** Checks that failed in "warn" mode. */
  warnings?: string[];
}

/** The host's verifier collaborator (CONTRACTS.md). */
export interface PluginVerifier {
  /** Checks a plugin before it is spawned; throws to refuse it. */
  verify(manifest: Manifest): Promise<VerifyResult> | VerifyResult;
}

/** Options for {@link createVerifier}. */
export interface VerifierOptions {
  /** Lock check. Default "off". */
  integrity?: CheckMode;
  /** Signature check. Default "off". */
  signatures?: CheckMode;
  /** Path of plugin-shm.lock; read once, at {@link createVerifier}. Required when integrity is not "off". */
  lockFile?: string;
  /** Or the lock itself. */
  lock?: Lock;
  /** Who may sign. Required when signatures is not "off". */
  trust?: TrustPolicy;
  /** Records "verified" and "refused" (and stops loads when it cannot write, if it was opened so). */
  audit?: AuditLog;
  /** Receives warnings in "warn" mode. Default: console.warn. */
  onWarning?: (message: string) => void;
  /** Where private copies go. Default: a fresh 0700 directory under the OS temp dir. */
  runRoot?: string;
  /**
   * "private" (default): copies go under `runRoot`. "beside": each copy is a sibling of the plugin's
   * directory (`.<name>.verified-XXXXXX`), so relative imports that leave the plugin directory (the
   * examples import `../../../plugin.ts`) resolve as they did; such files are outside the digest.
   */
  placement?: "private" | "beside";
}

/** What {@link IntegrityVerifier.watch} needs from a host: its lifecycle events. */
export interface WatchedHost {
  /** Subscribes to lifecycle transitions; returns the unsubscribe function. */
  onState(listener: (event: StateEvent) => void): () => void;
  /** Whether a plugin still has instances (after "failed", some may still serve). */
  list(): { name: string; pids: number[] }[];
}

/** A {@link PluginVerifier} that also owns its private copies. */
export interface IntegrityVerifier extends PluginVerifier {
  /** Checks and copies a plugin before it is spawned; throws IntegrityError or SignatureError to refuse it. */
  verify(manifest: Manifest): VerifyResult;
  /** Removes every private copy made for plugin `name` (call it once none of its instances runs). */
  release(name: string): void;
  /**
   * Removes copies as soon as nothing runs from them: all of a plugin's when it
   * is unloaded or has failed for good, the one a failed reload made when it is
   * rolled back, the old one once a reload's old instances stopped. Returns
   * the unsubscribe function. Without it, copies go at {@link close}.
   */
  watch(host: WatchedHost): () => void;
  /** The private copies it holds now, oldest first (for tests and `ls`). */
  copies(): string[];
  /** Removes every private copy it made. Idempotent. */
  close(): void;
  /** Same as close(), for `using`. */
  [Symbol.dispose](): void;
}

/** Compares the manifest the host parsed with the one that was checked, so the two cannot disagree. */
function checkManifest(manifest: Manifest, runDir: string): void {
  const file = join(runDir, "plugin.json");
  let copied: Record<string, unknown>;
  try {
    copied = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    throw new IntegrityError(
      "manifest_changed",
      manifest.file,
      `${manifest.file} changed while the plugin was being checked; retry the load`,
    );
  }
  for (const field of ["name", "version", "runtime", "entry"] as const) {
    if (copied[field] !== manifest[field]) {
      throw new IntegrityError(
        "manifest_changed",
        manifest.file,
        `${manifest.file} changed while the plugin was being checked (${field}); retry the load`,
      );
    }
  }
}

/**
 * Builds the verifier. Reads the lock and compiles the trust policy now, so a
 * malformed lock or trusted root fails at start-up, naming the file.
 */
export function createVerifier(options: VerifierOptions = {}): IntegrityVerifier {
  const integrity = options.integrity ?? "off";
  const signatures = options.signatures ?? "off";
  let lock: Lock | undefined = options.lock;
  if (!lock && options.lockFile && (integrity !== "off" || existsSync(options.lockFile))) {
    lock = readLock(options.lockFile);
  }
  if (integrity !== "off" && !lock) throw new TypeError(`integrity "${integrity}" needs lockFile or lock`);
  const trust: CompiledTrust | undefined = options.trust ? compileTrust(options.trust) : undefined;
  if (signatures !== "off" && !trust) throw new TypeError(`signatures "${signatures}" needs a trust policy`);
  const warn = options.onWarning ?? ((m: string) => console.warn(`plugin-shm: ${m}`));
  const lockName = options.lockFile ?? "the lock";
  let runRoot: string | undefined;
  const copies: string[] = [];
  // One copy per plugin and digest: restarts of an unchanged plugin reuse it instead of piling up copies.
  const byDigest = new Map<string, string>();
  // Each plugin's copies, oldest first; the last one is what the latest verify handed out.
  const byPlugin = new Map<string, string[]>();
  const forget = (name: string, dir: string): void => {
    removeCopy(dir);
    copies.splice(copies.indexOf(dir), 1);
    for (const [key, value] of byDigest) if (value === dir) byDigest.delete(key);
    const list = byPlugin.get(name)?.filter((d) => d !== dir) ?? [];
    if (list.length) byPlugin.set(name, list);
    else byPlugin.delete(name);
  };
  const release = (name: string): void => {
    for (const dir of [...(byPlugin.get(name) ?? [])]) forget(name, dir);
  };
  /** Keeps only the newest copy of `name` (or only the older ones, when the newest was rolled back). */
  const prune = (name: string, keep: "newest" | "older"): void => {
    const list = byPlugin.get(name) ?? [];
    const doomed = keep === "newest" ? list.slice(0, -1) : list.slice(-1);
    // A reload of unchanged bytes reuses the serving copy: then there is only one, and it stays.
    if (list.length > 1) { for (const dir of doomed) forget(name, dir); }
  };

  const refuse = (manifest: Manifest, error: Error): never => {
    options.audit?.append({
      actor: "host",
      plugin: manifest.name,
      action: "refused",
      details: { code: (error as IntegrityError).code, reason: error.message },
    });
    throw error;
  };

  const verify = (manifest: Manifest): VerifyResult => {
    try {
      options.audit?.assertWritable();
    } catch (error) {
      refuse(manifest, error as Error);
    }
    if (integrity === "off" && signatures === "off") return {};
    const warnings: string[] = [];
    const entry = lock?.plugins[manifest.name];
    if (!entry && integrity !== "off") {
      const error = new IntegrityError(
        "not_locked",
        manifest.file,
        `${manifest.file}: plugin "${manifest.name}" is not in ${lockName}; run \`plugin-shm lock\` to approve it`,
      );
      if (integrity === "require") refuse(manifest, error);
      warnings.push(error.message);
    }
    const beside = options.placement === "beside";
    if (!beside) runRoot ??= options.runRoot ?? privateRunRoot();
    const into = beside ? dirname(resolve(manifest.dir)) : runRoot as string;
    const prefix = beside ? `.${manifest.name}.verified-` : "copy-";
    let copy;
    try {
      copy = copyVerified(manifest.dir, integrity === "require" ? entry : undefined, { into, prefix });
    } catch (error) {
      return refuse(manifest, error as Error);
    }
    const key = `${manifest.name}\0${copy.tree.digest}`;
    const existing = byDigest.get(key);
    const isNew = !(existing && existsSync(existing));
    if (!isNew && existing) {
      removeCopy(copy.runDir);
      copy = { runDir: existing, tree: copy.tree };
    } else {
      copies.push(copy.runDir);
      byDigest.set(key, copy.runDir);
      byPlugin.set(manifest.name, [...(byPlugin.get(manifest.name) ?? []), copy.runDir]);
    }
    try {
      checkManifest(manifest, copy.runDir);
      if (integrity === "warn" && entry) {
        try {
          compareTree(manifest.dir, copy.tree, entry);
        } catch (error) {
          // Same message as "require" would refuse with, naming the file.
          warnings.push((error as Error).message);
        }
      }
      let signedBy: SignedBy | undefined;
      if (signatures !== "off" && trust) {
        try {
          // The bundle is data, read from the original directory; it is checked against the copy's digest.
          signedBy = verifyPluginSignature(resolve(manifest.dir), copy.tree.digest, trust);
        } catch (error) {
          if (signatures === "require" || !(error instanceof SignatureError)) throw error;
          warnings.push(error.message);
        }
      }
      for (const w of warnings) warn(w);
      options.audit?.append({
        actor: "host",
        plugin: manifest.name,
        action: "verified",
        details: { digest: copy.tree.digest, signedBy: signedBy ? describeSigner(signedBy) : null, warnings },
      });
      return { runDir: copy.runDir, digest: copy.tree.digest, signedBy, warnings };
    } catch (error) {
      // A new copy of refused bytes is not kept; one an earlier load made may still be in use.
      if (isNew) forget(manifest.name, copy.runDir);
      return refuse(manifest, error as Error);
    }
  };

  const watch = (host: WatchedHost): () => void => {
    // Reloaded: the new instances run from the newest copy, the old ones still from theirs until they stop.
    const retiring = new Set<string>();
    return host.onState((event) => {
      const name = event.plugin;
      if (event.instance === 0 && (event.state === "stopped" || event.state === "failed")) {
        // "failed" with instances left (one of several is down for good) keeps serving from its copy.
        const serving = event.state === "failed" && (host.list().find((p) => p.name === name)?.pids.length ?? 0) > 0;
        if (!serving) {
          retiring.delete(name);
          release(name);
        }
      } else if (event.state === "rolled-back") {
        prune(name, "older");
      } else if (event.state === "reloaded") {
        retiring.add(name);
      } else if (event.state === "stopped" && retiring.has(name)) {
        // The first old instance to stop after a reload: the others are stopping too and have loaded their code.
        retiring.delete(name);
        prune(name, "newest");
      }
    });
  };

  const close = (): void => {
    for (const dir of copies.splice(0)) removeCopy(dir);
    byDigest.clear();
    byPlugin.clear();
    if (runRoot && !options.runRoot) removeCopy(runRoot);
    runRoot = undefined;
  };
  return { verify, release, watch, copies: () => [...copies], close, [Symbol.dispose]: close };
}
