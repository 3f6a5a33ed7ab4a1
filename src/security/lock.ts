/**
 * The integrity lock: the SHA-256 of every file in a plugin's directory,
 * pinned in `plugin-shm.lock`, and a checked private copy to run from.
 *
 * A tree digest covers a directory as `sha256sum` would list it: one line
 * `<kind> <sha256 hex> <relative path>\n` per entry, sorted by the UTF-8 bytes
 * of the path, and the digest is the SHA-256 of those lines. Regular files are
 * hashed by content (kind `f`, or `x` when executable, because the execute bit
 * changes what runs). Symbolic links are recorded by their target text (kind
 * `l`) and must stay inside the plugin directory; a link out of it could
 * change under the check. FIFOs, sockets and devices are refused: reading one
 * can block or change with every read. Empty directories are not recorded.
 * The signature bundle and a lock file inside the directory are excluded,
 * since they are written after the digest is taken.
 *
 * @example
 * ```ts
 * import { hashTree } from "./lock.ts";
 * const tree = hashTree("examples/plugins/echo");
 * console.log(tree.digest); // "sha256:…"
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { dirname, isAbsolute, join, normalize, relative, resolve, sep } from "node:path";

/** The lock's file name, beside the plugin directories it covers. */
export const lockFileName = "plugin-shm.lock";
/** The signature bundle's file name inside a plugin directory. */
export const bundleFileName = "plugin.sigstore.json";
/** The lock format this release writes and reads. */
export const lockFormatVersion = 1;
/** Files per plugin directory; a tree larger than this is refused rather than hashed for minutes. */
export const treeFilesMax = 100_000;
/** Directory depth; deeper trees are refused (a symlink loop cannot occur, links are not followed). */
export const treeDepthMax = 64;

/** Names never part of a tree digest: they are written after the digest is taken. */
const excludedNames = new Set([bundleFileName, lockFileName]);

/** Why an integrity check failed. */
export type IntegrityFailure =
  | "not_locked"
  | "file_added"
  | "file_removed"
  | "file_changed"
  | "unsupported_file"
  | "manifest_changed"
  | "lock_malformed"
  | "no_plugins"
  | "io";

/**
 * A plugin's bytes are not the ones its lock pins, or the lock itself is
 * unusable. `file` names the file concerned.
 *
 * @example
 * ```ts
 * import { IntegrityError } from "./lock.ts";
 * const e = new IntegrityError("file_changed", "/p/echo/main.ts", "changed");
 * console.assert(e.code === "file_changed");
 * ```
 */
export class IntegrityError extends Error {
  /** The error class name. */
  override name = "IntegrityError";
  /** What failed. */
  readonly code: IntegrityFailure;
  /** The file concerned (absolute path when known). */
  readonly file: string;
  /** Makes the error; `message` names the file and says what to do. */
  constructor(code: IntegrityFailure, file: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.file = file;
  }
}

/** One entry of a tree: its kind and SHA-256 (hex). */
export interface TreeEntry {
  /** `f` file, `x` executable file, `l` symbolic link (hash of the target text). */
  kind: "f" | "x" | "l";
  /** SHA-256 of the content (hex); of the target text for a link. */
  sha256: string;
}

/** A hashed tree. */
export interface TreeDigest {
  /** `sha256:<hex>` over the sorted entry lines. */
  digest: string;
  /** Relative path (with `/`) → entry, in digest order. */
  files: Map<string, TreeEntry>;
  /** Total bytes of regular files. */
  bytes: number;
}

/** One plugin in the lock. */
export interface LockEntry {
  /** The plugin's name, from its manifest. */
  name: string;
  /** The plugin's version, from its manifest. */
  version: string;
  /** The plugin directory, relative to the lock file's directory. */
  dir: string;
  /** `sha256:<hex>` tree digest. */
  digest: string;
  /** Relative path → `<kind>:<sha256 hex>`; lets a mismatch name the file. */
  files: Record<string, string>;
}

/** The parsed lock. */
export interface Lock {
  /** Format version of the lock file. */
  version: typeof lockFormatVersion;
  /** Lock entries by plugin name. */
  plugins: Record<string, LockEntry>;
}

function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function digestOf(files: Map<string, TreeEntry>): string {
  const hash = createHash("sha256");
  for (const [path, entry] of files) hash.update(`${entry.kind} ${entry.sha256} ${path}\n`);
  return `sha256:${hash.digest("hex")}`;
}

function sorted(files: Map<string, TreeEntry>): Map<string, TreeEntry> {
  return new Map([...files.entries()].sort(([a], [b]) => byUtf8(a, b)));
}

/** What a walk sees: a regular file, a link, or a directory to descend into. */
type Visit = (rel: string, abs: string, kind: "file" | "link" | "dir", mode: number) => void;

function walk(root: string, visit: Visit): void {
  let count = 0;
  const descend = (relDir: string, depth: number): void => {
    if (depth > treeDepthMax) {
      throw new IntegrityError(
        "unsupported_file",
        join(root, relDir),
        `${join(root, relDir)} is nested deeper than ${treeDepthMax} directories; flatten the plugin directory`,
      );
    }
    const absDir = relDir ? join(root, relDir) : root;
    let names: string[];
    try {
      names = readdirSync(absDir);
    } catch (error) {
      throw new IntegrityError("io", absDir, `cannot list ${absDir}: ${(error as Error).message}`, { cause: error });
    }
    for (const name of names) {
      if (!relDir && excludedNames.has(name)) continue;
      const rel = relDir ? `${relDir}/${name}` : name;
      const abs = join(root, rel);
      if (++count > treeFilesMax) {
        throw new IntegrityError(
          "unsupported_file",
          abs,
          `${root} has more than ${treeFilesMax} entries; remove what the plugin does not need`,
        );
      }
      const st = lstatSync(abs);
      if (st.isDirectory()) descend(rel, depth + 1);
      else if (st.isFile()) visit(rel, abs, "file", st.mode);
      else if (st.isSymbolicLink()) visit(rel, abs, "link", st.mode);
      else {
        throw new IntegrityError(
          "unsupported_file",
          abs,
          `${abs} is neither a regular file, a directory nor a symbolic link (a FIFO, socket or device); remove it from the plugin directory`,
        );
      }
    }
  };
  descend("", 0);
}

/** Reads a link and checks it stays inside the tree; returns the target text. */
function checkedLink(root: string, rel: string, abs: string): string {
  const target = readlinkSync(abs);
  const resolved = normalize(join(dirname(abs), target));
  if (isAbsolute(target) || (resolved !== root && !resolved.startsWith(root + sep))) {
    throw new IntegrityError(
      "unsupported_file",
      abs,
      `${abs} is a symbolic link to "${target}", outside the plugin directory; copy the file in or make the link relative`,
    );
  }
  void rel;
  return target;
}

/** Reads a whole file through one descriptor, checking it is still a regular file. */
function readRegular(abs: string): { bytes: Buffer; mode: number } {
  // O_NOFOLLOW: a file swapped for a link after the walk saw it is not followed; O_NONBLOCK: nor does a FIFO block.
  const fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw new IntegrityError(
        "unsupported_file",
        abs,
        `${abs} changed into a non-regular file while being read; retry`,
      );
    }
    const bytes = Buffer.allocUnsafe(st.size);
    let offset = 0;
    while (offset < st.size) {
      const n = readSync(fd, bytes, offset, st.size - offset, null);
      if (n === 0) break;
      offset += n;
    }
    return { bytes: offset === st.size ? bytes : bytes.subarray(0, offset), mode: st.mode };
  } finally {
    closeSync(fd);
  }
}

function sha256(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function kindOf(mode: number): "f" | "x" {
  return (mode & 0o111) !== 0 ? "x" : "f";
}

/**
 * Hashes every file under `dir` (see the module doc for what is covered).
 * Throws IntegrityError for special files, links leaving the directory, and
 * unreadable entries.
 *
 * @example
 * ```ts
 * import { hashTree } from "./lock.ts";
 * console.log(hashTree("examples/plugins/echo").files.size);
 * ```
 */
export function hashTree(dir: string): TreeDigest {
  const root = resolve(dir);
  const files = new Map<string, TreeEntry>();
  let bytes = 0;
  walk(root, (rel, abs, kind, mode) => {
    if (kind === "link") {
      files.set(rel, { kind: "l", sha256: sha256(checkedLink(root, rel, abs)) });
      return;
    }
    const read = readRegular(abs);
    bytes += read.bytes.length;
    files.set(rel, { kind: kindOf(read.mode), sha256: sha256(read.bytes) });
    void mode;
  });
  const ordered = sorted(files);
  return { digest: digestOf(ordered), files: ordered, bytes };
}

/** Expected tree: from a lock entry. */
function entriesOf(entry: LockEntry): Map<string, string> {
  return new Map(Object.entries(entry.files));
}

/**
 * Compares a hashed tree against a lock entry; throws IntegrityError naming
 * the first added, removed or changed file (in path order).
 */
export function compareTree(dir: string, tree: TreeDigest, entry: LockEntry): void {
  if (tree.digest === entry.digest) return;
  const expected = entriesOf(entry);
  const root = resolve(dir);
  const paths = [...new Set([...expected.keys(), ...tree.files.keys()])].sort(byUtf8);
  for (const path of paths) {
    const want = expected.get(path);
    const got = tree.files.get(path);
    const file = join(root, path);
    if (want === undefined) {
      throw new IntegrityError(
        "file_added",
        file,
        `${file} is not in the lock for plugin "${entry.name}"; remove it, or run \`plugin-shm lock\` again if you approve it`,
      );
    }
    if (got === undefined) {
      throw new IntegrityError(
        "file_removed",
        file,
        `${file} is in the lock for plugin "${entry.name}" but missing; restore it, or run \`plugin-shm lock\` again if you approve the removal`,
      );
    }
    if (want !== `${got.kind}:${got.sha256}`) {
      throw new IntegrityError(
        "file_changed",
        file,
        `${file} changed since plugin "${entry.name}" was locked (expected ${want}, found ${got.kind}:${got.sha256}); restore it, or run \`plugin-shm lock\` again if you approve the change`,
      );
    }
  }
  // Every file matches but the digest does not: the lock entry itself was edited.
  throw new IntegrityError(
    "lock_malformed",
    dir,
    `the lock entry for plugin "${entry.name}" has a digest that does not match its own file list; run \`plugin-shm lock\` again`,
  );
}

/** Builds the lock entry for one plugin directory. */
export function lockEntryFor(dir: string, lockDir: string, name: string, version: string): LockEntry {
  const tree = hashTree(dir);
  const files: Record<string, string> = {};
  for (const [path, e] of tree.files) files[path] = `${e.kind}:${e.sha256}`;
  const rel = relative(resolve(lockDir), resolve(dir)).split(sep).join("/") || ".";
  return { name, version, dir: rel, digest: tree.digest, files };
}

const hexDigest = /^sha256:[0-9a-f]{64}$/;
const fileValue = /^[fxl]:[0-9a-f]{64}$/;

function malformed(file: string, what: string): IntegrityError {
  return new IntegrityError(
    "lock_malformed",
    file,
    `${file} is malformed: ${what}; regenerate it with \`plugin-shm lock\``,
  );
}

/** Validates parsed JSON as a lock; `file` is named in errors. */
export function parseLock(json: unknown, file: string): Lock {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw malformed(file, "not a JSON object");
  const obj = json as Record<string, unknown>;
  if (obj.version !== lockFormatVersion) {
    throw malformed(file, `"version" is ${JSON.stringify(obj.version)}, this release reads ${lockFormatVersion}`);
  }
  const plugins = obj.plugins;
  if (typeof plugins !== "object" || plugins === null || Array.isArray(plugins)) {
    throw malformed(file, `"plugins" must be an object`);
  }
  const out: Record<string, LockEntry> = {};
  for (const [name, raw] of Object.entries(plugins as Record<string, unknown>)) {
    const at = `plugins.${name}`;
    if (typeof raw !== "object" || raw === null) throw malformed(file, `${at} must be an object`);
    const e = raw as Record<string, unknown>;
    if (e.name !== name) throw malformed(file, `${at}.name must be "${name}"`);
    if (typeof e.version !== "string") throw malformed(file, `${at}.version must be a string`);
    if (typeof e.dir !== "string") throw malformed(file, `${at}.dir must be a string`);
    if (typeof e.digest !== "string" || !hexDigest.test(e.digest)) {
      throw malformed(file, `${at}.digest must be "sha256:<64 hex digits>"`);
    }
    if (typeof e.files !== "object" || e.files === null || Array.isArray(e.files)) {
      throw malformed(file, `${at}.files must be an object`);
    }
    const files: Record<string, string> = {};
    for (const [path, value] of Object.entries(e.files as Record<string, unknown>)) {
      if (typeof value !== "string" || !fileValue.test(value)) {
        throw malformed(file, `${at}.files["${path}"] must be "<f|x|l>:<64 hex digits>"`);
      }
      if (path.startsWith("/") || path.split("/").includes("..")) {
        throw malformed(file, `${at}.files has a path outside the plugin: "${path}"`);
      }
      files[path] = value;
    }
    const ordered = new Map(
      Object.entries(files).sort(([a], [b]) => byUtf8(a, b)).map(([p, v]) => {
        const [kind, sha] = v.split(":");
        return [p, { kind: kind as TreeEntry["kind"], sha256: sha }];
      }),
    );
    if (digestOf(ordered) !== e.digest) {
      throw malformed(file, `${at}.digest does not match its file list (edited by hand?)`);
    }
    out[name] = { name, version: e.version, dir: e.dir, digest: e.digest, files };
  }
  return { version: lockFormatVersion, plugins: out };
}

/**
 * Reads and validates a lock file. Throws IntegrityError `lock_malformed`
 * (or `io`) naming the file.
 */
export function readLock(file: string): Lock {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new IntegrityError(
      "io",
      file,
      `cannot read ${file}: ${(error as Error).message}; run \`plugin-shm lock\` to create it`,
      { cause: error },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw malformed(file, `not valid JSON (${(error as Error).message})`);
  }
  return parseLock(json, file);
}

/** Writes a lock atomically (temporary file, then rename), entries sorted by name. */
export function writeLock(file: string, lock: Lock): void {
  const plugins: Record<string, LockEntry> = {};
  for (const name of Object.keys(lock.plugins).sort(byUtf8)) plugins[name] = lock.plugins[name];
  const text = JSON.stringify({ version: lockFormatVersion, plugins }, null, 2) + "\n";
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, file);
}

/** Options for {@link copyVerified}. */
export interface CopyOptions {
  /** Where private copies go; created 0700. Default: a fresh directory under the OS temp dir. */
  into?: string;
  /** Name prefix of the copy's directory. Default "copy-". */
  prefix?: string;
}

/** Result of {@link copyVerified}. */
export interface VerifiedCopy {
  /** The read-only private copy to run the plugin from. */
  runDir: string;
  /** The tree digest of the bytes in the copy. */
  tree: TreeDigest;
}

/** Prefix of the private directories under the OS temp dir that hold verified copies. */
export const runRootPrefix = "plugin-shm-verified-";

/** True if process `pid` exists (EPERM: it exists, but is someone else's). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes private copy directories that a process which no longer exists left
 * under `dir` (a host killed with SIGKILL cannot clean up after itself). Only
 * directories named `plugin-shm-verified-<pid>-…` that belong to this user
 * are touched. Returns what it removed.
 */
export function sweepStaleRunRoots(dir: string = tmpdir()): string[] {
  const removed: string[] = [];
  const uid = process.getuid?.();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const pid = /^plugin-shm-verified-(\d+)-/.exec(name)?.[1];
    if (!pid || Number(pid) === process.pid || alive(Number(pid))) continue;
    const path = join(dir, name);
    try {
      const st = lstatSync(path);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      removeCopy(path);
      removed.push(path);
    } catch {
      // Another host swept it first.
    }
  }
  return removed;
}

/**
 * Creates a private 0700 directory to hold verified copies, named after this
 * process, and first sweeps those that dead processes left behind.
 */
export function privateRunRoot(): string {
  sweepStaleRunRoots();
  return mkdtempSync(join(tmpdir(), `${runRootPrefix}${process.pid}-`));
}

/**
 * Copies `dir` into a private read-only directory, hashing every byte as it
 * is copied, and compares the result with `expected` (when given). What was
 * checked is exactly what was copied: the copy is made from the same buffers
 * that were hashed, so a file swapped in the original afterwards is never run.
 * On a mismatch the copy is removed and IntegrityError names the file.
 *
 * @example
 * ```ts
 * import { copyVerified, removeCopy } from "./lock.ts";
 * const { runDir, tree } = copyVerified("examples/plugins/echo");
 * console.log(runDir, tree.digest);
 * removeCopy(runDir);
 * ```
 */
export function copyVerified(dir: string, expected?: LockEntry, options: CopyOptions = {}): VerifiedCopy {
  const root = resolve(dir);
  // Without `into`, the copy is itself the fresh private directory (mkdtemp makes it 0700 until done).
  let staging: string;
  if (options.into) {
    mkdirSync(options.into, { recursive: true, mode: 0o700 });
    staging = mkdtempSync(join(options.into, options.prefix ?? "copy-"));
  } else {
    staging = mkdtempSync(join(tmpdir(), `${runRootPrefix}${process.pid}-`));
  }
  const files = new Map<string, TreeEntry>();
  const dirs: string[] = [staging];
  let bytes = 0;
  try {
    walk(root, (rel, abs, kind) => {
      const dest = join(staging, rel);
      const parent = dirname(dest);
      if (!existsSync(parent)) {
        mkdirSync(parent, { recursive: true, mode: 0o700 });
        for (let d = parent; d !== staging && !dirs.includes(d); d = dirname(d)) dirs.push(d);
      }
      if (kind === "link") {
        const target = checkedLink(root, rel, abs);
        symlinkSync(target, dest);
        files.set(rel, { kind: "l", sha256: sha256(target) });
        return;
      }
      const read = readRegular(abs);
      const k = kindOf(read.mode);
      writeFileSync(dest, read.bytes, { mode: k === "x" ? 0o555 : 0o444, flag: "wx" });
      bytes += read.bytes.length;
      files.set(rel, { kind: k, sha256: sha256(read.bytes) });
    });
    const ordered = sorted(files);
    const tree = { digest: digestOf(ordered), files: ordered, bytes };
    if (expected) compareTree(root, tree, expected);
    // Deepest first, so a parent is made read-only after its children are done.
    for (const d of dirs.sort((a, b) => b.length - a.length)) chmodSync(d, 0o555);
    return { runDir: staging, tree };
  } catch (error) {
    removeCopy(staging);
    throw error;
  }
}

/** Removes a private copy made by {@link copyVerified} (its directories are read-only). */
export function removeCopy(runDir: string): void {
  if (!existsSync(runDir)) return;
  const unlock = (d: string): void => {
    chmodSync(d, 0o700);
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (lstatSync(p).isDirectory()) unlock(p);
    }
  };
  try {
    unlock(runDir);
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
}
