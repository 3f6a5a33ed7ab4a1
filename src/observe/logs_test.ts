import assert from "node:assert/strict";
import { configure, getLogger, reset } from "@logtape/logtape";
import fc from "fast-check";
import { test } from "../../tests/_harness.ts";
import type { StateEvent } from "../host/host.ts";
import { hostSource, logHostEvents, type LogLine, LogStore } from "./logs.ts";

test("the buffer keeps the newest lines within its line cap and its byte cap", () => {
  const logs = new LogStore({ linesPerPluginMax: 10, bytesPerPluginMax: 2048 });
  for (let i = 0; i < 25; i++) logs.logger({ plugin: "p", stream: "stdout", line: `line ${i}` });
  assert.deepEqual(logs.query("p").map((l) => l.line), Array.from({ length: 10 }, (_, i) => `line ${i + 15}`));
  for (let i = 0; i < 10; i++) logs.logger({ plugin: "p", stream: "stdout", line: "é".repeat(300) }); // 600 bytes
  const stats = logs.stats("p");
  assert.ok(stats.bytes <= 2048, `${stats.bytes} bytes kept`);
  assert.equal(stats.lines, 3);
  assert.equal(stats.linesTotal, 35);
  assert.equal(stats.dropped, 32);
  logs.logger({ plugin: "p", stream: "stdout", line: "y".repeat(5000) });
  assert.equal(logs.stats("p").bytes, 2048, "a line longer than the cap is cut to it");
});

test("levels come from JSON lines (names and pino numbers), else from the stream", () => {
  const logs = new LogStore();
  const add = (line: string, stream: "stdout" | "stderr" = "stdout") => {
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(line);
    } catch { /* not JSON */ }
    logs.logger({ plugin: "p", stream, line, json });
  };
  add('{"level":"ERROR","msg":"a"}');
  add('{"level":50,"msg":"b"}');
  add('{"level":20,"msg":"c"}');
  add('{"severity":"warning","msg":"d"}');
  add("plain out");
  add("plain err", "stderr");
  assert.deepEqual(logs.query("p").map((l) => l.level), ["error", "error", "debug", "warn", "info", "warn"]);
  assert.deepEqual(logs.query("p", { level: "warn" }).map((l) => l.line.slice(0, 14)), [
    '{"level":"ERRO',
    '{"level":50,"m',
    '{"severity":"w',
    "plain err",
  ]);
  assert.deepEqual(logs.query("p", { level: "warn", limit: 1 }).map((l) => l.line), ["plain err"]);
  assert.deepEqual(logs.query("nobody"), []);
});

test("queries by time window and by cursor", async () => {
  const logs = new LogStore();
  logs.logger({ plugin: "p", stream: "stdout", line: "old" });
  await new Promise((resolve) => setTimeout(resolve, 15));
  const middle = Date.now();
  logs.logger({ plugin: "p", stream: "stdout", line: "new" });
  assert.deepEqual(logs.query("p", { since: middle }).map((l) => l.line), ["new"]);
  assert.deepEqual(logs.query("p", { until: middle }).map((l) => l.line), ["old"]);
  const [first] = logs.query("p");
  assert.deepEqual(logs.query("p", { afterSeq: first.seq }).map((l) => l.line), ["new"]);
});

test("live tail subscribers get new lines by plugin and level; a throwing one does not stop the others", () => {
  const logs = new LogStore();
  const seen: LogLine[] = [];
  const stopBroken = logs.subscribe(() => {
    throw new Error("broken subscriber");
  });
  const stop = logs.subscribe((l) => seen.push(l), { plugin: "a", level: "warn" });
  logs.logger({ plugin: "a", stream: "stderr", line: "a-err" });
  logs.logger({ plugin: "a", stream: "stdout", line: "a-out" });
  logs.logger({ plugin: "b", stream: "stderr", line: "b-err" });
  stop();
  stopBroken();
  logs.logger({ plugin: "a", stream: "stderr", line: "after" });
  assert.deepEqual(seen.map((l) => l.line), ["a-err"]);
});

test("host lifecycle events become structured LogTape records, kept by the store's sink", async () => {
  const logs = new LogStore();
  const records: { level: string; properties: Record<string, unknown> }[] = [];
  await configure({
    sinks: { store: logs.sink, memory: (r) => records.push(r) },
    loggers: [
      { category: ["plugin-shm"], lowestLevel: "debug", sinks: ["store", "memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    let emit: (e: StateEvent) => void = () => {};
    const stop = logHostEvents({ onState: (l) => ((emit = l), () => {}) });
    emit({ plugin: "kv", instance: 3, state: "crashed", at: 1, reason: "exit 1" });
    emit({ plugin: "kv", instance: 0, state: "ready", at: 2, reason: "ok" });
    stop();
    getLogger(["plugin-shm", "admin"]).info("operator {action}", { action: "reload" });
    assert.equal(records.length, 3);
    assert.equal(records[0].level, "error");
    assert.equal(records[0].properties.plugin, "kv");
    assert.equal(records[0].properties.instance, 3);
    const kept = logs.query(hostSource);
    assert.deepEqual(kept.map((l) => l.level), ["error", "info", "info"]);
    assert.match(kept[0].line, /"msg":"kv instance 3: crashed — exit 1"/);
  } finally {
    await reset();
  }
});

test("property: the buffer always holds the newest lines intact, within both caps", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 1024, max: 4096 }),
      fc.array(fc.string({ unit: "binary", maxLength: 600 }), { maxLength: 200 }),
      (linesMax, bytesMax, lines) => {
        const logs = new LogStore({ linesPerPluginMax: linesMax, bytesPerPluginMax: bytesMax });
        for (const line of lines) logs.logger({ plugin: "p", stream: "stdout", line });
        const kept = logs.query("p").map((l) => l.line);
        const stats = logs.stats("p");
        assert.ok(kept.length <= linesMax && stats.bytes <= bytesMax);
        // What is kept is a suffix of what was written: the newest lines, unchanged (well-formed UTF-16 round-trips).
        const expected = lines.slice(lines.length - kept.length).map((l) =>
          new TextDecoder().decode(new TextEncoder().encode(l))
        );
        assert.deepEqual(kept, expected);
        assert.equal(stats.lines + stats.dropped, lines.length);
      },
    ),
    { numRuns: 300 },
  );
});
