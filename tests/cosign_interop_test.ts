/**
 * Interop with the real cosign (built by `make cosign` from the Go module
 * proxy into .tools): its bundles verify in plugin-shm, and ours verify in
 * cosign. Offline: cosign gets a private HOME, no transparency log and a
 * pinned (empty) trusted root, so it never reaches for the network.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bundleFileName,
  compileTrust,
  createVerifier,
  hashTree,
  SignatureError,
  signCommand,
  treeDigestDocument,
  verifyPluginSignature,
} from "../security.ts";
import { loadManifest } from "../src/host/manifest.ts";
import { fixtures, root, test } from "./_harness.ts";

const cosignVersion = readFileSync(join(root, "Makefile"), "utf8").match(/^COSIGN_VERSION := (\S+)$/m)?.[1];
const cosign = join(root, `.tools/cosign-${cosignVersion}/cosign`);
const sig = join(fixtures, "sigstore");
const pubPem = readFileSync(join(sig, "cosign.pub"), "utf8");

function runCosign(args: string[], home: string): { status: number | null; out: string } {
  if (!existsSync(cosign)) assert.fail(`${cosign} is missing: run \`make cosign\` (the test target builds it)`);
  const r = spawnSync(cosign, args, {
    encoding: "utf8",
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      COSIGN_PASSWORD: "test",
      TUF_ROOT: join(home, "tuf"),
    },
    timeout: 60_000,
  });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

function scratch(): { dir: string; plugin: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "plugin-shm-cosign-test-"));
  const plugin = join(dir, "signed");
  cpSync(join(sig, "plugin"), plugin, { recursive: true });
  return { dir, plugin, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test("a bundle made now by cosign sign-blob --new-bundle-format --key verifies in plugin-shm", () => {
  const { dir, plugin, done } = scratch();
  try {
    const doc = join(dir, "digest.txt");
    writeFileSync(doc, treeDigestDocument(hashTree(plugin).digest));
    const bundle = join(plugin, bundleFileName);
    const made = runCosign(
      [
        "sign-blob",
        "--yes",
        "--new-bundle-format",
        "--tlog-upload=false",
        "--key",
        join(sig, "cosign.key"),
        "--bundle",
        bundle,
        doc,
      ],
      dir,
    );
    assert.equal(made.status, 0, made.out);
    using verifier = createVerifier({ signatures: "require", trust: { keys: [pubPem] } });
    const result = verifier.verify(loadManifest(plugin));
    assert.equal(result.signedBy?.kind, "key");
    // The committed bundle, made by the same commands (tests/fixtures/sigstore/make_fixtures.sh), too.
    cpSync(join(sig, "cosign_bundle.json"), bundle);
    assert.equal(verifyPluginSignature(plugin, hashTree(plugin).digest, compileTrust({ keys: [pubPem] })).kind, "key");
    // And a changed plugin no longer matches what cosign signed.
    writeFileSync(join(plugin, "main.ts"), "console.log('swapped');\n");
    assert.throws(
      () => verifier.verify(loadManifest(plugin)),
      (e) => e instanceof SignatureError && e.code === "digest_mismatch",
    );
  } finally {
    done();
  }
});

test("a bundle made by plugin-shm sign verifies with cosign verify-blob, and a tampered document does not", () => {
  const { dir, plugin, done } = scratch();
  try {
    const signed = signCommand(plugin, { key: join(sig, "cosign.key"), password: "test" });
    const doc = join(dir, "digest.txt");
    writeFileSync(doc, treeDigestDocument(signed.digest));
    const verify = (file: string) =>
      runCosign([
        "verify-blob",
        "--new-bundle-format",
        "--key",
        join(sig, "cosign.pub"),
        "--bundle",
        signed.bundleFile,
        "--insecure-ignore-tlog=true",
        "--trusted-root",
        join(sig, "empty_trusted_root.json"),
        file,
      ], dir);
    const ok = verify(doc);
    assert.equal(ok.status, 0, ok.out);
    assert.match(ok.out, /Verified OK/);
    const forged = join(dir, "forged.txt");
    writeFileSync(forged, treeDigestDocument("sha256:" + "0".repeat(64)));
    const bad = verify(forged);
    assert.notEqual(bad.status, 0, bad.out);
  } finally {
    done();
  }
});
