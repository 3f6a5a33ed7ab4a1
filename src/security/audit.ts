/**
 * An append-only, hash-chained audit log in JSON lines. Each record carries
 * its sequence number and the SHA-256 of the previous record's line, so an
 * edited, inserted, deleted or reordered record breaks the chain at a place
 * {@link verifyAudit} names. A checkpoint (last sequence and hash, kept
 * elsewhere) also catches a truncated tail. Files rotate by size; the chain
 * continues into the next file.
 *
 * Writes never block the caller: {@link AuditLog.append} queues the record and
 * a batch is written on the next turn of the event loop. A write that fails
 * (full disk, unwritable file) is reported loudly, and with
 * `stopLoadsOnFailure` the verifier refuses new loads until it recovers.
 *
 * @example
 * ```ts
 * import { AuditLog, verifyAudit } from "./audit.ts";
 * const file = Deno.makeTempFileSync();
 * const log = AuditLog.open(file);
 * log.append({ actor: "cli", plugin: "echo", action: "load", details: {} });
 * await log.close();
 * console.log(verifyAudit(file).records);
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import type { HostEvents, StateEvent } from "../host/types.ts";

/** Who did it. */
export type AuditActor = "host" | "cli" | "admin";

/** What is recorded for each event, before sequence, time and chain are added. */
export interface AuditEntry {
  /** Who did it. */
  actor: AuditActor;
  /** The plugin concerned ("" for none). */
  plugin: string;
  /** verified, refused, load, unload, reload, rolled-back, crash, restart, killed, permission-denied, limit, or an operator action. */
  action: string;
  /** What else is known: reason, code, digest, limit… (see docs/integrity.md). */
  details: Record<string, unknown>;
}

/** One record as written. */
export interface AuditRecord extends AuditEntry {
  /** Sequence number, 1 for the first record ever written; continues across rotated files. */
  seq: number;
  /** ISO 8601, UTC. */
  time: string;
  /** SHA-256 (hex) of the previous record's line; 64 zeros for the first. */
  prev: string;
}

/** The last record's sequence and hash: keep it elsewhere to detect a truncated tail. */
export interface AuditCheckpoint {
  /** Sequence number of the last record. */
  seq: number;
  /** SHA-256 (hex) of the last record's line. */
  hash: string;
}

/** Why an audit operation failed. */
export type AuditFailure = "malformed" | "chain_broken" | "truncated" | "unwritable" | "io";

/**
 * The audit log is unreadable, its chain is broken, or it cannot be written.
 * `file` and `seq` (when known) say where.
 *
 * @example
 * ```ts
 * import { AuditError } from "./audit.ts";
 * console.assert(new AuditError("chain_broken", "/var/log/a.jsonl", "x", 3).seq === 3);
 * ```
 */
export class AuditError extends Error {
  /** The error class name. */
  override name = "AuditError";
  /** What failed. */
  readonly code: AuditFailure;
  /** The audit file concerned. */
  readonly file: string;
  /** The first bad record's sequence number, when known. */
  readonly seq: number | undefined;
  /** Makes the error; `message` names the file (and record) and says what to do. */
  constructor(code: AuditFailure, file: string, message: string, seq?: number, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.file = file;
    this.seq = seq;
  }
}

/** The `prev` of the first record ever written. */
export const genesisHash: string = "0".repeat(64);
/** Default size at which the current file is rotated. */
export const rotateBytesDefault = 16 * 1024 * 1024;
/** Records waiting to be written before new ones are dropped (and the drop is recorded). */
export const queueRecordsMax = 100_000;
/** Wait before retrying a failed write. */
export const retryIntervalMs = 1000;
/** Records written per write(2) at most. */
const batchRecordsMax = 4096;
/** The longest line read back when reopening; a longer last line means the file is not an audit log. */
const lineBytesMax = 1024 * 1024;

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Serialises with a fixed field order, so the hash of a record is reproducible. */
function lineOf(r: AuditRecord): string {
  return JSON.stringify({
    seq: r.seq,
    time: r.time,
    actor: r.actor,
    plugin: r.plugin,
    action: r.action,
    details: r.details,
    prev: r.prev,
  });
}

/** Rotated files: `<file>.<last seq in it, 12 digits>`, oldest first, then the current file. */
export function auditFiles(file: string): string[] {
  const dir = dirname(file);
  const base = basename(file);
  const rotated = existsSync(dir)
    ? readdirSync(dir).filter((n) => n.startsWith(base + ".") && /^\d{12}$/.test(n.slice(base.length + 1))).sort()
    : [];
  return [...rotated.map((n) => join(dir, n)), ...(existsSync(file) ? [file] : [])];
}

/** Reads the last line of a file without reading all of it. */
function lastLine(file: string): string | undefined {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return undefined;
    const length = Math.min(size, lineBytesMax);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    const text = buf.toString("utf8").replace(/\n$/, "");
    const at = text.lastIndexOf("\n");
    if (at < 0 && length === lineBytesMax) {
      throw new AuditError(
        "malformed",
        file,
        `${file}: last line is longer than ${lineBytesMax} bytes; is this an audit log?`,
      );
    }
    return text.slice(at + 1);
  } finally {
    closeSync(fd);
  }
}

function parseRecord(line: string, file: string, lineNo: number): AuditRecord {
  let r: AuditRecord;
  try {
    r = JSON.parse(line);
  } catch {
    throw new AuditError(
      "malformed",
      file,
      `${file}:${lineNo} is not a JSON record; the file was edited or is not an audit log`,
    );
  }
  const ok = typeof r === "object" && r !== null && Number.isSafeInteger(r.seq) && typeof r.time === "string" &&
    typeof r.actor === "string" && typeof r.plugin === "string" && typeof r.action === "string" &&
    typeof r.details === "object" && r.details !== null && typeof r.prev === "string" && /^[0-9a-f]{64}$/.test(r.prev);
  if (!ok) {
    throw new AuditError(
      "malformed",
      file,
      `${file}:${lineNo} lacks a field (seq, time, actor, plugin, action, details, prev); the record was edited`,
      (r as { seq?: number })?.seq,
    );
  }
  return r;
}

/** Options for {@link AuditLog.open}. */
export interface AuditOptions {
  /** Rotate when the current file reaches this size. Default {@link rotateBytesDefault}. */
  rotateBytes?: number;
  /** Receives write failures. Default: console.error, loudly. */
  onError?: (error: AuditError) => void;
  /** When writing fails, make {@link AuditLog.assertWritable} throw, so the verifier refuses new loads. */
  stopLoadsOnFailure?: boolean;
  /** Clock, for tests. */
  now?: () => Date;
}

/**
 * The writer. One per file and process: it continues the chain from the last
 * record on disk.
 */
export class AuditLog {
  /** The current file records are appended to. */
  readonly file: string;
  #fd: number;
  #size: number;
  #seq: number;
  #prev: string;
  #queue: { entry: AuditEntry; time: string }[] = [];
  #dropped = 0;
  #scheduled = false;
  #flushing: Promise<void> | undefined;
  #failure: AuditError | undefined;
  #closed = false;
  #retry: ReturnType<typeof setTimeout> | undefined;
  readonly #options: AuditOptions;

  private constructor(file: string, fd: number, last: AuditCheckpoint, options: AuditOptions) {
    this.file = file;
    this.#fd = fd;
    this.#size = fstatSync(fd).size;
    this.#seq = last.seq;
    this.#prev = last.hash;
    this.#options = options;
  }

  /** Opens (or creates) the log, continuing the chain from its last record. Throws AuditError naming the file. */
  static open(file: string, options: AuditOptions = {}): AuditLog {
    let last: AuditCheckpoint = { seq: 0, hash: genesisHash };
    const files = auditFiles(file);
    for (const f of files.reverse()) {
      const line = lastLine(f);
      if (line === undefined) continue;
      const r = parseRecord(line, f, 0);
      last = { seq: r.seq, hash: sha256(line) };
      break;
    }
    let fd: number;
    try {
      fd = openSync(file, "a", 0o640);
    } catch (error) {
      throw new AuditError(
        "unwritable",
        file,
        `cannot open audit log ${file}: ${(error as Error).message}; fix its directory or permissions`,
        undefined,
        { cause: error },
      );
    }
    return new AuditLog(file, fd, last, options);
  }

  /** Queues a record; never blocks and never throws for I/O (failures go to `onError`). */
  append(entry: AuditEntry): void {
    if (this.#closed) throw new TypeError(`audit log ${this.file} is closed`);
    if (this.#queue.length >= queueRecordsMax) {
      this.#dropped++;
      return;
    }
    this.#queue.push({ entry, time: (this.#options.now?.() ?? new Date()).toISOString() });
    if (!this.#scheduled) {
      this.#scheduled = true;
      setTimeout(() => void this.flush(), 0);
    }
  }

  /** Writes everything queued so far. */
  flush(): Promise<void> {
    this.#scheduled = false;
    this.#flushing = (this.#flushing ?? Promise.resolve()).then(() => this.#drain());
    return this.#flushing;
  }

  #drain(): void {
    // After close() the descriptor number may belong to another file: never write through it.
    if (this.#fd < 0) return;
    while (this.#queue.length > 0 || this.#dropped > 0) {
      if (this.#dropped > 0) {
        this.#queue.unshift({
          entry: {
            actor: "host",
            plugin: "",
            action: "records-dropped",
            details: { count: this.#dropped, reason: "queue full" },
          },
          time: new Date().toISOString(),
        });
        this.#dropped = 0;
      }
      const rotateBytes = this.#options.rotateBytes ?? rotateBytesDefault;
      const batch = this.#queue.splice(0, batchRecordsMax);
      let seq = this.#seq;
      let prev = this.#prev;
      let text = "";
      let taken = 0;
      // Stop the batch where the file reaches its rotation size, so files stay near it.
      for (const { entry, time } of batch) {
        const line = lineOf({
          seq: ++seq,
          time,
          actor: entry.actor,
          plugin: entry.plugin,
          action: entry.action,
          details: entry.details,
          prev,
        });
        prev = sha256(line);
        text += line + "\n";
        taken++;
        if (this.#size + text.length >= rotateBytes) break;
      }
      this.#queue.unshift(...batch.slice(taken));
      try {
        const bytes = Buffer.from(text);
        let off = 0;
        while (off < bytes.length) off += writeSync(this.#fd, bytes, off);
        this.#size += bytes.length;
      } catch (error) {
        // The batch is put back: the chain stays whole and the records go out once the disk recovers.
        this.#queue.unshift(...batch.slice(0, taken));
        this.#fail(error as Error);
        return;
      }
      this.#seq = seq;
      this.#prev = prev;
      this.#failure = undefined;
      if (this.#size >= rotateBytes) this.#rotate();
    }
  }

  #fail(error: Error): void {
    const first = !this.#failure;
    this.#failure = new AuditError(
      "unwritable",
      this.file,
      `audit log ${this.file} cannot be written (${error.message}); ${this.#queue.length} records wait in memory. Free disk space or fix permissions${
        this.#options.stopLoadsOnFailure ? "; new plugin loads are refused until then" : ""
      }`,
      undefined,
      { cause: error },
    );
    if (first) {
      (this.#options.onError ?? ((e) => console.error(`plugin-shm: AUDIT LOG FAILURE: ${e.message}`)))(this.#failure);
    }
    // Retry later rather than spin: the queue keeps growing up to its limit.
    if (!this.#closed && !this.#scheduled) {
      this.#scheduled = true;
      this.#retry = setTimeout(() => void this.flush(), retryIntervalMs);
      (this.#retry as { unref?: () => void }).unref?.();
    }
  }

  #rotate(): void {
    const first = this.#seq + 1;
    closeSync(this.#fd);
    const rotated = `${this.file}.${String(first - 1).padStart(12, "0")}`;
    renameSync(this.file, rotated);
    this.#fd = openSync(this.file, "a", 0o640);
    this.#size = 0;
  }

  /** The failure that stops loads, if writing failed and `stopLoadsOnFailure` is set. */
  assertWritable(): void {
    if (this.#failure && this.#options.stopLoadsOnFailure) throw this.#failure;
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The current write failure, if any. */
  get failure(): AuditError | undefined {
    return this.#failure;
  }

  /** The last written record's sequence and hash. */
  checkpoint(): AuditCheckpoint {
    return { seq: this.#seq, hash: this.#prev };
  }

  /** Flushes and closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    clearTimeout(this.#retry);
    closeSync(this.#fd);
    this.#fd = -1;
    if (this.#queue.length > 0) {
      const lost = new AuditError(
        "unwritable",
        this.file,
        `audit log ${this.file} closed with ${this.#queue.length} records never written (${
          this.#failure?.message ?? "write failed"
        })`,
      );
      (this.#options.onError ?? ((e) => console.error(`plugin-shm: AUDIT LOG FAILURE: ${e.message}`)))(lost);
      this.#queue.length = 0;
    }
  }

  /** Closes the log (`await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Result of {@link verifyAudit}. */
export interface AuditVerification {
  /** How many records were checked. */
  records: number;
  /** The files read, oldest first. */
  files: string[];
  /** The last record's sequence and hash. */
  last: AuditCheckpoint;
}

/**
 * Checks the whole chain (rotated files, oldest first, then `file`). Throws
 * AuditError naming the first bad record: edited (its hash no longer matches
 * the next record's `prev`), inserted, deleted or reordered (sequence or
 * `prev` out of order); with a checkpoint, a tail shorter than it.
 */
export function verifyAudit(file: string, options: { checkpoint?: AuditCheckpoint } = {}): AuditVerification {
  const files = auditFiles(file);
  if (files.length === 0) throw new AuditError("io", file, `${file} does not exist; pass the audit log's path`);
  let expectSeq = 1;
  let prev = genesisHash;
  let count = 0;
  let seenCheckpoint = false;
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, "utf8");
    } catch (error) {
      throw new AuditError("io", f, `cannot read ${f}: ${(error as Error).message}`, undefined, { cause: error });
    }
    if (text.length > 0 && !text.endsWith("\n")) {
      throw new AuditError(
        "malformed",
        f,
        `${f} ends in a partial record (a crash mid-write or truncation); the chain is intact up to the line before`,
      );
    }
    const lines = text.split("\n").slice(0, -1);
    for (let i = 0; i < lines.length; i++) {
      const r = parseRecord(lines[i], f, i + 1);
      if (r.seq !== expectSeq) {
        const what = r.seq > expectSeq
          ? `record ${expectSeq} was deleted, or records were moved`
          : `a record was inserted or moved before record ${expectSeq}`;
        throw new AuditError(
          "chain_broken",
          f,
          `${f}:${i + 1}: record ${expectSeq} expected, sequence ${r.seq} found: ${what}`,
          expectSeq,
        );
      }
      if (r.prev !== prev) {
        throw new AuditError(
          "chain_broken",
          f,
          `${f}:${i + 1}: record ${r.seq} does not follow record ${r.seq - 1} (hash mismatch): record ${
            r.seq - 1
          } was edited, or records were replaced`,
          r.seq - 1 || r.seq,
        );
      }
      if (options.checkpoint && r.seq === options.checkpoint.seq) seenCheckpoint = true;
      prev = sha256(lines[i]);
      if (seenCheckpoint && r.seq === options.checkpoint?.seq && prev !== options.checkpoint.hash) {
        throw new AuditError(
          "chain_broken",
          f,
          `${f}:${i + 1}: record ${r.seq} differs from the checkpoint; the log was rewritten`,
          r.seq,
        );
      }
      expectSeq++;
      count++;
    }
  }
  if (options.checkpoint && !seenCheckpoint) {
    throw new AuditError(
      "truncated",
      file,
      `${file} ends at record ${
        expectSeq - 1
      }, but the checkpoint is at record ${options.checkpoint.seq}: the tail was truncated`,
      expectSeq,
    );
  }
  return { records: count, files, last: { seq: expectSeq - 1, hash: prev } };
}

/** The last `count` records (across rotated files). Throws AuditError for a malformed line. */
export function tailAudit(file: string, count = 20): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (const f of auditFiles(file).reverse()) {
    const lines = readFileSync(f, "utf8").split("\n").filter((l) => l.length > 0);
    for (let i = lines.length - 1; i >= 0 && out.length < count; i--) out.unshift(parseRecord(lines[i], f, i + 1));
    if (out.length >= count) break;
  }
  return out;
}

/**
 * Calls `onRecord` for each record appended to `file` from now on (`audit
 * tail -f`), polling every `intervalMs`, until `signal` aborts.
 */
export async function followAudit(
  file: string,
  onRecord: (r: AuditRecord) => void,
  options: { signal: AbortSignal; intervalMs?: number },
): Promise<void> {
  // Follows by sequence number, not by offset alone: a rotation renames the file the offset belonged to, and the
  // records written between two polls may sit in the rotated file, the new one, or both.
  const lastOnDisk = (): number => {
    for (const f of auditFiles(file).reverse()) {
      const line = lastLine(f);
      if (line !== undefined) return parseRecord(line, f, 0).seq;
    }
    return 0;
  };
  let lastSeq = lastOnDisk();
  let ino = existsSync(file) ? statSync(file).ino : -1;
  let offset = existsSync(file) ? statSync(file).size : 0;
  let pending = "";
  const emit = (line: string, from: string): void => {
    const r = parseRecord(line, from, 0);
    if (r.seq <= lastSeq) return;
    lastSeq = r.seq;
    onRecord(r);
  };
  while (!options.signal.aborted) {
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 250));
    let fd: number;
    try {
      fd = openSync(file, "r");
    } catch {
      continue; // Not there yet, or between a rotation's rename and the new file.
    }
    try {
      // Size and inode from the open descriptor, so the bytes read below are from the file they describe.
      const st = fstatSync(fd);
      if (st.ino !== ino || st.size < offset) {
        // Rotated: the rotated files that may hold newer records are complete; read them whole, oldest first,
        // then this file from its start like any other growth.
        for (const f of auditFiles(file)) {
          if (f === file || Number(f.slice(file.length + 1)) <= lastSeq) continue;
          for (const l of readFileSync(f, "utf8").split("\n")) if (l) emit(l, f);
        }
        ino = st.ino;
        offset = 0;
        pending = "";
      }
      if (st.size === offset) continue;
      const buf = Buffer.alloc(st.size - offset);
      readSync(fd, buf, 0, buf.length, offset);
      offset = st.size;
      pending += buf.toString("utf8");
    } finally {
      closeSync(fd);
    }
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const l of lines) if (l) emit(l, file);
  }
}

/** What {@link recordHostEvents} needs from a host: its typed event bus (`host.on`). */
export interface AuditedHost {
  /** Subscribes to one event type; returns the unsubscribe function. */
  on<K extends keyof HostEvents>(type: K, listener: (event: HostEvents[K]) => void): () => void;
}

/** What one host event becomes in the log: plugin, action and details (the actor is added), or nothing. */
export type AuditMapping = Omit<AuditEntry, "actor"> | undefined;

/** Lifecycle transitions worth a record, with the action each is recorded as. */
const stateActions: Partial<Record<StateEvent["state"], string>> = {
  ready: "load",
  crashed: "crash",
  restarting: "restart",
  reloading: "reload",
  reloaded: "reload",
  "rolled-back": "rolled-back",
  stopped: "unload",
  failed: "failed",
  unresponsive: "unresponsive",
  paused: "paused",
  resumed: "resumed",
  killed: "killed",
};

/**
 * Host event type -> audit record. One line per type: a new event type on the
 * host's bus is audited by adding its line here. Types the host does not emit
 * are subscribed to harmlessly (nothing ever arrives).
 */
export const hostEventAudit: { [K in keyof HostEvents]?: (event: HostEvents[K]) => AuditMapping } = {
  state: (e) => {
    const action = stateActions[e.state];
    return action
      ? { plugin: e.plugin, action, details: { instance: e.instance, state: e.state, reason: e.reason, at: e.at } }
      : undefined;
  },
  "permission-denied": (e) => ({
    plugin: e.plugin,
    action: "permission-denied",
    details: { permission: e.permission, detail: e.detail, at: e.at },
  }),
  limit: ({ plugin, ...details }) => ({ plugin, action: "limit", details }),
  refused: (e) => {
    const error = e.error as { name?: string; code?: string; message?: string } | undefined;
    return {
      plugin: e.plugin,
      action: "refused",
      details: {
        dir: e.dir,
        error: error?.name,
        code: error?.code,
        reason: error?.message ?? String(e.error),
        at: e.at,
      },
    };
  },
};

/** Options for {@link recordHostEvents}. */
export interface HostAuditOptions {
  /**
   * Who the records are attributed to. Default "host". An admin app that
   * drives the host passes "admin", or a function that decides per event
   * (for example "admin" while one of its operator actions is in flight).
   */
  actor?: AuditActor | ((type: keyof HostEvents, event: unknown) => AuditActor);
  /**
   * Event types not to record. The CLI leaves out "refused" when its verifier
   * writes the refusal itself (with the check that failed), so it is not
   * recorded twice.
   */
  except?: (keyof HostEvents)[];
}

/**
 * Records every host event that {@link hostEventAudit} maps (lifecycle:
 * load, unload, reload, rolled-back, crash, restart, failed, unresponsive,
 * paused, resumed, killed; permission denials; memory-limit actions; verifier
 * refusals) in the audit log. Subscribes through `host.on`, so the host knows
 * nothing of the log. Returns the unsubscribe function.
 */
export function recordHostEvents(host: AuditedHost, log: AuditLog, options: HostAuditOptions = {}): () => void {
  const actorOf = typeof options.actor === "function" ? options.actor : () => (options.actor ?? "host") as AuditActor;
  const skip = new Set(options.except ?? []);
  const offs: (() => void)[] = [];
  for (const type of Object.keys(hostEventAudit) as (keyof HostEvents)[]) {
    if (skip.has(type)) continue;
    const map = hostEventAudit[type] as (event: unknown) => AuditMapping;
    offs.push(host.on(type, (event: unknown) => {
      // A host may outlive its audit log during shutdown; its last events then have nowhere to go.
      if (log.closed) return;
      const entry = map(event);
      if (entry) log.append({ actor: actorOf(type, event), ...entry });
    }));
  }
  return () => offs.forEach((off) => off());
}
