import assert from "node:assert/strict";
import fc from "fast-check";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PluginHost } from "../../mod.ts";
import { examples, fixtures, test } from "../../tests/_harness.ts";
import { loadManifest } from "../host/manifest.ts";
import {
  AuditError,
  auditFiles,
  AuditLog,
  type AuditRecord,
  recordHostEvents,
  tailAudit,
  verifyAudit,
} from "./audit.ts";
import { auditCheckpointCommand, auditTailCommand, auditVerifyCommand, parseCheckpoint } from "./commands.ts";
import { createVerifier } from "./verifier.ts";

function scratch(): { dir: string; file: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "plugin-shm-audit-test-"));
  return { dir, file: join(dir, "audit.jsonl"), done: () => rmSync(dir, { recursive: true, force: true }) };
}

async function writeRecords(file: string, count: number, options = {}): Promise<AuditLog> {
  const log = AuditLog.open(file, options);
  for (let i = 0; i < count; i++) log.append({ actor: "host", plugin: `p${i % 3}`, action: "load", details: { i } });
  await log.close();
  return log;
}

function lines(file: string): string[] {
  return readFileSync(file, "utf8").split("\n").slice(0, -1);
}

function expectAudit(fn: () => unknown, code: string, seq?: number): AuditError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof AuditError, `expected AuditError, got ${error}`);
    assert.equal(error.code, code, error.message);
    if (seq !== undefined) assert.equal(error.seq, seq, error.message);
    assert.ok(error.message.includes(error.file), error.message);
    return error;
  }
  assert.fail(`expected AuditError ${code}`);
}

test("append() queues without writing; the batch lands in order with an intact chain, and reopening continues it", async () => {
  const { file, done } = scratch();
  try {
    const log = AuditLog.open(file);
    log.append({ actor: "cli", plugin: "echo", action: "load", details: { by: "test" } });
    assert.equal(readFileSync(file, "utf8"), "", "append() returned before anything was written");
    await log.close();
    await writeRecords(file, 99);
    const result = verifyAudit(file);
    assert.equal(result.records, 100);
    const records = lines(file).map((l) => JSON.parse(l) as AuditRecord);
    assert.deepEqual(records.map((r) => r.seq), Array.from({ length: 100 }, (_, i) => i + 1));
    assert.deepEqual(Object.keys(records[0]), ["seq", "time", "actor", "plugin", "action", "details", "prev"]);
    assert.equal(records[0].prev, "0".repeat(64));
    assert.equal(auditCheckpointCommand(file), `100:${result.last.hash}`);
    assert.match(auditVerifyCommand(file, { checkpoint: `100:${result.last.hash}` }), /^ok: 100 records/);
  } finally {
    done();
  }
});

test("verify names the first bad record after an edit, an insertion, a deletion or a reorder", async () => {
  const { file, done } = scratch();
  try {
    await writeRecords(file, 10);
    const original = lines(file);
    const put = (ls: string[]) => writeFileSync(file, ls.join("\n") + "\n");
    const edited = [...original];
    edited[3] = edited[3].replace(`"action":"load"`, `"action":"unload"`);
    put(edited);
    assert.match(expectAudit(() => verifyAudit(file), "chain_broken", 4).message, /record 4 was edited/);
    const inserted = [...original];
    inserted.splice(5, 0, original[5]);
    put(inserted);
    expectAudit(() => verifyAudit(file), "chain_broken", 7);
    const deleted = [...original];
    deleted.splice(6, 1);
    put(deleted);
    assert.match(expectAudit(() => verifyAudit(file), "chain_broken", 7).message, /record 7 was deleted/);
    const reordered = [...original];
    [reordered[2], reordered[3]] = [reordered[3], reordered[2]];
    put(reordered);
    expectAudit(() => verifyAudit(file), "chain_broken", 3);
    put(original);
    verifyAudit(file);
  } finally {
    done();
  }
});

test("property: any single edit, insertion, deletion or swap is caught at or just after the first touched record", async () => {
  const { file, done } = scratch();
  try {
    await writeRecords(file, 40);
    const original = lines(file);
    const checkpoint = auditCheckpointCommand(file);
    fc.assert(
      fc.property(
        fc.constantFrom("edit", "insert", "delete", "swap"),
        fc.nat({ max: 39 }),
        fc.nat({ max: 39 }),
        (op, at, other) => {
          const ls = [...original];
          let first = at + 1; // the first record (seq) whose line changed
          if (op === "edit") ls[at] = ls[at].replace(/"i":\d+/, `"i":${1000 + other}`);
          if (op === "insert") ls.splice(at, 0, original[other]);
          if (op === "delete") ls.splice(at, 1);
          if (op === "swap") {
            if (at === other) return;
            [ls[at], ls[other]] = [ls[other], ls[at]];
            first = Math.min(at, other) + 1;
          }
          writeFileSync(file, ls.join("\n") + (ls.length ? "\n" : ""));
          try {
            verifyAudit(file, { checkpoint: parseCheckpoint(checkpoint) });
          } catch (error) {
            assert.ok(error instanceof AuditError, String(error));
            // Named at the changed record, or the next one (an inserted copy of its neighbour),
            // or by the checkpoint when the change is at the tail.
            if (error.code !== "truncated") {
              assert.ok(
                error.seq === first || error.seq === first + 1 || error.seq === first - 1,
                `${op} at ${at}: ${error.message}`,
              );
            }
            return;
          }
          assert.fail(`${op} at ${at} (other ${other}) was not detected`);
        },
      ),
      { numRuns: 300 },
    );
  } finally {
    done();
  }
});

test("a checkpoint detects a truncated tail and a rewritten last record", async () => {
  const { file, done } = scratch();
  try {
    await writeRecords(file, 10);
    const checkpoint = auditCheckpointCommand(file);
    const original = lines(file);
    writeFileSync(file, original.slice(0, 7).join("\n") + "\n");
    verifyAudit(file); // without a checkpoint, a clean cut is invisible
    const error = expectAudit(() => auditVerifyCommand(file, { checkpoint }), "truncated");
    assert.match(error.message, /ends at record 7, but the checkpoint is at record 10/);
    const last = [...original];
    last[9] = last[9].replace(`"load"`, `"crash"`);
    writeFileSync(file, last.join("\n") + "\n");
    expectAudit(() => auditVerifyCommand(file, { checkpoint }), "chain_broken", 10);
  } finally {
    done();
  }
});

test("rotation by size keeps the chain across files, and verify and tail read them in order", async () => {
  const { file, done } = scratch();
  try {
    await writeRecords(file, 50, { rotateBytes: 1024 });
    await writeRecords(file, 50, { rotateBytes: 1024 });
    const files = auditFiles(file);
    assert.ok(files.length > 3, `rotated into ${files.length} files`);
    const result = verifyAudit(file);
    assert.equal(result.records, 100);
    assert.deepEqual(tailAudit(file, 5).map((r) => r.seq), [96, 97, 98, 99, 100]);
    const out: string[] = [];
    await auditTailCommand(file, { count: 3, write: (l) => out.push(l) });
    assert.equal(out.length, 3);
    assert.match(out[2], /^100\t/);
    // Deleting a whole rotated file is a deletion too.
    rmSync(files[1]);
    expectAudit(() => verifyAudit(file), "chain_broken");
  } finally {
    done();
  }
});

test("a malformed audit file gives AuditError naming the file and line", async () => {
  const { file, done } = scratch();
  try {
    writeFileSync(file, "not json\n");
    assert.match(expectAudit(() => verifyAudit(file), "malformed").message, /audit\.jsonl:1 is not a JSON record/);
    expectAudit(() => AuditLog.open(file), "malformed");
    writeFileSync(file, `{"seq":1}\n`);
    assert.match(expectAudit(() => verifyAudit(file), "malformed").message, /lacks a field/);
    await writeRecords(join(file + ".ok"), 2);
    writeFileSync(file, readFileSync(file + ".ok", "utf8").slice(0, -5));
    assert.match(expectAudit(() => verifyAudit(file), "malformed").message, /partial record/);
    expectAudit(() => verifyAudit(join(file, "..", "missing.jsonl")), "io");
    expectAudit(() => AuditLog.open(join(file, "not-a-dir", "audit.jsonl")), "unwritable");
  } finally {
    done();
  }
});

test("a full disk is reported loudly, keeps the records queued, and with stopLoadsOnFailure refuses new loads", async () => {
  const errors: AuditError[] = [];
  const log = AuditLog.open("/dev/full", { stopLoadsOnFailure: true, onError: (e) => errors.push(e) });
  log.append({ actor: "host", plugin: "echo", action: "load", details: {} });
  await log.flush();
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "unwritable");
  assert.match(errors[0].message, /\/dev\/full cannot be written .*1 records wait in memory.*refused/);
  assert.equal(log.checkpoint().seq, 0, "nothing counted as written");
  using verifier = createVerifier({
    integrity: "warn",
    lock: { version: 1, plugins: {} },
    audit: log,
    onWarning: () => {},
  });
  assert.throws(
    () => verifier.verify(loadManifest(join(examples, "echo"))),
    (e) => e instanceof AuditError && e.code === "unwritable",
  );
  assert.equal(errors.length, 1, "reported once, not per retry");
  await log.close();
  assert.equal(errors.length, 2);
  // The load record and the refusal (queued too, in case the disk recovers before close).
  assert.match(errors[1].message, /closed with 2 records never written/);
});

test("host lifecycle events and verifier decisions are recorded, chained, and verify", async () => {
  const { file, done } = scratch();
  const log = AuditLog.open(file);
  const host = new PluginHost({
    dirs: [examples, fixtures],
    logger: () => {},
    hostFunctions: { now: () => "now", secret: () => "secret" },
  });
  const stop = recordHostEvents(host, log);
  try {
    const manifest = loadManifest(join(examples, "echo"));
    using strict = createVerifier({ integrity: "require", lock: { version: 1, plugins: {} }, audit: log });
    assert.throws(() => strict.verify(manifest), /not in the lock/);
    using lax = createVerifier({
      integrity: "warn",
      lock: { version: 1, plugins: {} },
      audit: log,
      onWarning: () => {},
    });
    lax.verify(manifest);
    await host.load("echo");
    assert.equal(await host.call("echo", "echo", ["hi"]), "hi");
    await host.unload("echo");
    await host.load("host-caller");
    assert.equal((await host.call("host-caller", "ask", ["secret"]) as { code: string }).code, "permission_denied");
  } finally {
    stop();
    await host.close();
    await log.close();
  }
  try {
    const actions = tailAudit(file, 100).map((r) => `${r.plugin}:${r.action}`);
    assert.deepEqual(actions.slice(0, 2), ["echo:refused", "echo:verified"]);
    assert.ok(actions.includes("echo:load"), actions.join(" "));
    assert.ok(actions.includes("echo:unload"), actions.join(" "));
    assert.ok(actions.indexOf("echo:load") < actions.indexOf("echo:unload"));
    const denied = tailAudit(file, 100).find((r) => r.action === "permission-denied");
    assert.equal(denied?.plugin, "host-caller");
    assert.equal((denied?.details as { permission: string }).permission, "hostFunctions:secret");
    verifyAudit(file);
    assert.ok(existsSync(file));
  } finally {
    done();
  }
});
