/**
 * Plugin output, kept: every line a plugin writes goes into a bounded buffer
 * per plugin (capped in lines and in bytes, oldest dropped first), with a
 * level parsed from JSON lines, queryable by time and level and tailable
 * live. The host's own lifecycle is logged as structured records through
 * LogTape, which works alike in Deno, Bun and Node; the application decides
 * where they go with LogTape's `configure()`, and {@link LogStore.sink} keeps
 * them beside the plugins' lines.
 *
 * @module
 */

import { getLogger, type LogRecord as LogTapeRecord, type Sink } from "@logtape/logtape";
import type { StateEvent } from "../host/host.ts";
import type { LogEntry } from "../host/process.ts";

/** Log levels, least severe first. */
export const logLevels = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
/** One of {@link logLevels}. */
export type LogLevel = (typeof logLevels)[number];

/** Default lines kept per plugin. */
export const linesPerPluginMaxDefault = 2_000;
/** Default bytes (UTF-8) of lines kept per plugin. */
export const bytesPerPluginMaxDefault = 1024 * 1024;
/** Most records one query returns. */
export const queryLimitMax = 5_000;
/** The source name under which the host's own records are kept (not a valid plugin name). */
export const hostSource = "$host";

/** A kept line. */
export interface LogLine {
  /** Increases by one per line across all plugins: a cursor for "what came after". */
  seq: number;
  /** Arrival time, milliseconds since the epoch. */
  at: number;
  /** The plugin's name, or {@link hostSource} for the host's own records. */
  plugin: string;
  /** Where the line came from: the plugin's stdout or stderr, or the host's own logging. */
  stream: "stdout" | "stderr" | "host";
  /** The line's severity, parsed from the line or the stream (stderr defaults to "warn"). */
  level: LogLevel;
  /** The text, without its trailing newline. */
  line: string;
}

/** What to return from {@link LogStore.query}. */
export interface LogQuery {
  /** Only lines at or after this time (ms since the epoch). */
  since?: number;
  /** Only lines before this time. */
  until?: number;
  /** Only lines at this level or more severe. */
  level?: LogLevel;
  /** Only lines with a larger `seq`. */
  afterSeq?: number;
  /** The most recent this many; default and maximum {@link queryLimitMax}. */
  limit?: number;
}

/** What a plugin's buffer holds and has dropped. */
export interface LogStats {
  /** Lines kept now. */
  lines: number;
  /** Bytes kept now (UTF-8). */
  bytes: number;
  /** Lines received since the store started, kept or not. */
  linesTotal: number;
  /** Bytes received since the store started, kept or not. */
  bytesTotal: number;
  /** Lines dropped because the plugin's buffer was full (oldest first). */
  dropped: number;
}

/** Options for {@link LogStore}. */
export interface LogStoreOptions {
  /** Lines kept per plugin. Default 2000. */
  linesPerPluginMax?: number;
  /** UTF-8 bytes of lines kept per plugin. Default 1 MiB. */
  bytesPerPluginMax?: number;
  /** Also receives every entry (e.g. to print it). */
  forward?: (entry: LogEntry) => void;
}

interface Stored {
  seq: number;
  at: number;
  stream: LogLine["stream"];
  level: number;
  /** Where the line's UTF-8 bytes are in its ring's buffer. */
  offset: number;
  length: number;
}

/**
 * One plugin's lines: a fixed number of line slots and one preallocated byte
 * buffer, both used as rings. Lines are kept as UTF-8 bytes, not strings (a
 * string cut from a larger chunk can keep the whole chunk alive), encoded
 * straight into the buffer so that a flood allocates next to nothing per line.
 * A new line goes after the previous one (back to the start when it does not
 * fit) and evicts the oldest lines whose bytes it overwrites, and the oldest
 * line when every slot is taken. The slots are made once and reused: a
 * record per line would live as long as the line is kept, long enough to
 * reach the old generation, whose garbage a flood would then pile up.
 */
class Ring {
  readonly slots: Stored[];
  readonly buffer: Uint8Array;
  head = 0;
  count = 0;
  bytes = 0;
  writeAt = 0;
  linesTotal = 0;
  bytesTotal = 0;
  dropped = 0;
  constructor(capacity: number, bytesMax: number) {
    this.slots = Array.from({ length: capacity }, () => ({
      seq: 0,
      at: 0,
      stream: "stdout" as LogLine["stream"],
      level: 0,
      offset: 0,
      length: 0,
    }));
    this.buffer = new Uint8Array(bytesMax);
  }
  push(seq: number, at: number, stream: LogLine["stream"], level: number, line: string): Stored {
    let { read, written } = encoder.encodeInto(line, this.buffer.subarray(this.writeAt));
    if (read < line.length && this.writeAt > 0) {
      // It does not fit before the end: the lines from here on are the oldest; they go, and the line goes first.
      while (this.count > 0 && this.#oldest().offset >= this.writeAt) this.shift();
      this.writeAt = 0;
      ({ written } = encoder.encodeInto(line, this.buffer));
    }
    this.linesTotal++;
    this.bytesTotal += written;
    const end = this.writeAt + written;
    while (this.count > 0) {
      const offset = this.#oldest().offset;
      const overwritten = offset >= this.writeAt && offset < end;
      if (this.count < this.slots.length && !overwritten) break;
      this.shift();
    }
    const item = this.slots[(this.head + this.count) % this.slots.length];
    item.seq = seq;
    item.at = at;
    item.stream = stream;
    item.level = level;
    item.offset = this.writeAt;
    item.length = written;
    this.writeAt = end;
    this.count++;
    this.bytes += written;
    return item;
  }
  shift(): void {
    const old = this.#oldest();
    this.head = (this.head + 1) % this.slots.length;
    this.count--;
    this.bytes -= old.length;
    this.dropped++;
  }
  #oldest(): Stored {
    return this.slots[this.head];
  }
  *items(): Generator<Stored> {
    for (let i = 0; i < this.count; i++) yield this.slots[(this.head + i) % this.slots.length];
  }
  text(item: Stored): string {
    return decoder.decode(this.buffer.subarray(item.offset, item.offset + item.length));
  }
}

type Listener = (line: LogLine) => void;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Keeps every plugin's recent output. Pass {@link logger} as the host's
 * `logger` option.
 *
 * @example
 * ```ts
 * import { LogStore } from "./logs.ts";
 * const logs = new LogStore({ linesPerPluginMax: 100 });
 * // The host hands JSON lines over already parsed, as `json`.
 * const line = '{"level":"error","msg":"disk full"}';
 * logs.logger({ plugin: "kv", stream: "stdout", line, json: JSON.parse(line) });
 * console.log(logs.query("kv", { level: "warn" })[0].level); // "error"
 * ```
 */
export class LogStore {
  /** Pass this as the host's `logger` option. */
  readonly logger: (entry: LogEntry) => void;
  /** A LogTape sink that keeps the host's own records under {@link hostSource}. */
  readonly sink: Sink;
  readonly #rings = new Map<string, Ring>();
  readonly #listeners = new Set<{ listener: Listener; plugin?: string; level: number }>();
  readonly #linesMax: number;
  readonly #bytesMax: number;
  #seq = 0;

  /** Creates an empty store; its limits apply per plugin. */
  constructor(options: LogStoreOptions = {}) {
    this.#linesMax = Math.max(1, options.linesPerPluginMax ?? linesPerPluginMaxDefault);
    this.#bytesMax = Math.max(1024, options.bytesPerPluginMax ?? bytesPerPluginMaxDefault);
    const forward = options.forward;
    this.logger = (entry) => {
      this.#add(entry.plugin, entry.stream, levelOf(entry), entry.line);
      forward?.(entry);
    };
    this.sink = (record: LogTapeRecord) => {
      const text = record.message.map((part) => typeof part === "string" ? part : JSON.stringify(part)).join("");
      const line = JSON.stringify({ level: record.level, category: record.category.join("."), msg: text });
      this.#add(hostSource, "host", levelIndex(record.level), line);
    };
  }

  /** Names with kept lines (plugins, and {@link hostSource} when the sink is used). */
  sources(): string[] {
    return [...this.#rings.keys()];
  }

  /** Kept lines of `plugin` matching `query`, oldest first. */
  query(plugin: string, query: LogQuery = {}): LogLine[] {
    const ring = this.#rings.get(plugin);
    if (!ring) return [];
    const level = query.level ? logLevels.indexOf(query.level) : 0;
    const matches: Stored[] = [];
    for (const item of ring.items()) {
      if (item.level < level) continue;
      if (query.since !== undefined && item.at < query.since) continue;
      if (query.until !== undefined && item.at >= query.until) continue;
      if (query.afterSeq !== undefined && item.seq <= query.afterSeq) continue;
      matches.push(item);
    }
    const limit = Math.min(queryLimitMax, Math.max(0, query.limit ?? queryLimitMax));
    return matches.slice(Math.max(0, matches.length - limit)).map((item) => toLine(plugin, ring, item));
  }

  /** Counters for `plugin`'s buffer. */
  stats(plugin: string): LogStats {
    const ring = this.#rings.get(plugin);
    return {
      lines: ring?.count ?? 0,
      bytes: ring?.bytes ?? 0,
      linesTotal: ring?.linesTotal ?? 0,
      bytesTotal: ring?.bytesTotal ?? 0,
      dropped: ring?.dropped ?? 0,
    };
  }

  /**
   * Calls `listener` for every new line (of `filter.plugin` only, at
   * `filter.level` or above, if given); returns an unsubscribe function. A
   * listener that throws is ignored, not unsubscribed.
   */
  subscribe(listener: (line: LogLine) => void, filter: { plugin?: string; level?: LogLevel } = {}): () => void {
    const entry = { listener, plugin: filter.plugin, level: filter.level ? logLevels.indexOf(filter.level) : 0 };
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }

  #add(plugin: string, stream: LogLine["stream"], level: number, line: string): void {
    let ring = this.#rings.get(plugin);
    if (!ring) this.#rings.set(plugin, ring = new Ring(this.#linesMax, this.#bytesMax));
    const item = ring.push(++this.#seq, Date.now(), stream, level, line);
    if (this.#listeners.size === 0) return;
    const record = toLine(plugin, ring, item);
    for (const { listener, plugin: only, level: min } of this.#listeners) {
      if ((only !== undefined && only !== plugin) || level < min) continue;
      try {
        listener(record);
      } catch {
        // One broken subscriber must not stop the others or the plugin's output.
      }
    }
  }
}

function toLine(plugin: string, ring: Ring, item: Stored): LogLine {
  return {
    seq: item.seq,
    at: item.at,
    plugin,
    stream: item.stream,
    level: logLevels[item.level],
    line: ring.text(item),
  };
}

/**
 * The level of a plugin's line: the JSON line's `level` (a name, or pino's
 * numbers 10–60), `severity` or `lvl` field; otherwise info for stdout and
 * warn for stderr.
 */
export function levelOf(entry: LogEntry): number {
  const json = entry.json;
  const raw = json?.level ?? json?.severity ?? json?.lvl;
  if (typeof raw === "number") return Math.max(0, Math.min(5, Math.ceil(raw / 10) - 1));
  if (typeof raw === "string") return levelIndex(raw);
  return entry.stream === "stderr" ? 3 : 2;
}

const levelAliases: Record<string, number> = {
  trace: 0,
  debug: 1,
  info: 2,
  notice: 2,
  warn: 3,
  warning: 3,
  error: 4,
  err: 4,
  fatal: 5,
  critical: 5,
  crit: 5,
  panic: 5,
};

function levelIndex(name: string): number {
  return levelAliases[name.toLowerCase()] ?? 2;
}

/** What {@link logHostEvents} subscribes to. */
export interface LoggedHost {
  /** Subscribes to lifecycle events (PluginHost.onState); returns the unsubscribe function. */
  onState(listener: (event: StateEvent) => void): () => void;
}

/**
 * Logs the host's lifecycle transitions as structured LogTape records under
 * the category `["plugin-shm", "host"]`; returns an unsubscribe function.
 * Crashes and failures are errors, unresponsive and rolled-back warnings.
 */
export function logHostEvents(host: LoggedHost): () => void {
  const logger = getLogger(["plugin-shm", "host"]);
  return host.onState((event) => {
    const properties = { ...event };
    const message = "{plugin} instance {instance}: {state} — {reason}";
    if (event.state === "crashed" || event.state === "failed") logger.error(message, properties);
    else if (event.state === "unresponsive" || event.state === "rolled-back") logger.warn(message, properties);
    else logger.info(message, properties);
  });
}
