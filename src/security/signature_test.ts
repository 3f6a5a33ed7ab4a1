import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixtures, test } from "../../tests/_harness.ts";
import { loadManifest } from "../host/manifest.ts";
import { trustColumn } from "./commands.ts";
import { bundleFileName, hashTree } from "./lock.ts";
import {
  compileTrust,
  decryptCosignKey,
  keyId,
  parseTrustedRoot,
  readTrustPolicy,
  SignatureError,
  signTree,
  type TrustPolicy,
  verifyBundle,
  verifyPluginSignature,
} from "./signature.ts";
import { createVerifier } from "./verifier.ts";

const sig = join(fixtures, "sigstore");
const read = (name: string): string => readFileSync(join(sig, name), "utf8");
const keyPem = read("cosign.key");
const pubPem = read("cosign.pub");
const identity = JSON.parse(read("keyless_identity.json")) as { issuer: string; subject: string };
const keylessRoot = join(sig, "keyless_trusted_root.json");
const digest = hashTree(join(sig, "plugin")).digest;

/** A private copy of the fixture plugin, so tests can sign, swap and tamper. */
function pluginCopy(): { dir: string; done: () => void } {
  const root = mkdtempSync(join(tmpdir(), "plugin-shm-sig-test-"));
  const dir = join(root, "signed");
  cpSync(join(sig, "plugin"), dir, { recursive: true });
  return { dir, done: () => rmSync(root, { recursive: true, force: true }) };
}

function expectSignature(fn: () => unknown, code: string, file?: string): SignatureError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof SignatureError, `expected SignatureError, got ${error}`);
    assert.equal(error.code, code, error.message);
    if (file) {
      assert.equal(error.file, file);
      assert.ok(error.message.includes(file), error.message);
    }
    return error;
  }
  assert.fail(`expected SignatureError ${code}`);
}

test("decryptCosignKey opens a cosign key with its password and refuses a wrong one", () => {
  const key = decryptCosignKey(keyPem, "test", "cosign.key");
  assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1");
  expectSignature(() => decryptCosignKey(keyPem, "wrong", "cosign.key"), "key_password", "cosign.key");
  expectSignature(() => decryptCosignKey(pubPem, "test", "cosign.pub"), "key_malformed", "cosign.pub");
  const garbled = keyPem.replace(/\n[A-Za-z0-9+/]{10}/, "\n!!!!!!!!!!");
  expectSignature(() => decryptCosignKey(garbled, "test", "x.key"), "key_malformed", "x.key");
});

test("a tree signed with a cosign key verifies against that public key and names the signer", () => {
  const { dir, done } = pluginCopy();
  try {
    const signed = signTree(dir, { keyPem, password: "test" });
    assert.equal(signed.digest, digest);
    assert.equal(signed.bundleFile, join(dir, bundleFileName));
    const bundle = JSON.parse(readFileSync(signed.bundleFile, "utf8"));
    assert.equal(bundle.mediaType, "application/vnd.dev.sigstore.bundle.v0.3+json");
    const by = verifyPluginSignature(dir, digest, compileTrust({ keys: [pubPem] }));
    assert.deepEqual(by, { kind: "key", keyId: signed.keyId });
  } finally {
    done();
  }
});

test("the keyed checks fail by name: unsigned, changed tree, untrusted key, bad signature, revoked", () => {
  const { dir, done } = pluginCopy();
  try {
    const bundleFile = join(dir, bundleFileName);
    const trust = compileTrust({ keys: [pubPem] });
    expectSignature(() => verifyPluginSignature(dir, digest, trust), "unsigned", bundleFile);
    signTree(dir, { keyPem, password: "test" });
    writeFileSync(join(dir, "main.ts"), "console.log('evil');\n");
    expectSignature(() => verifyPluginSignature(dir, hashTree(dir).digest, trust), "digest_mismatch", bundleFile);
    const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey.export({
      type: "spki",
      format: "pem",
    });
    expectSignature(
      () => verifyPluginSignature(dir, digest, compileTrust({ keys: [String(other)] })),
      "untrusted_key",
      bundleFile,
    );
    expectSignature(() => verifyPluginSignature(dir, digest, compileTrust({})), "untrusted_key", bundleFile);
    const bundle = JSON.parse(readFileSync(bundleFile, "utf8"));
    const sigBytes = Buffer.from(bundle.messageSignature.signature, "base64");
    sigBytes[sigBytes.length - 1] ^= 1;
    bundle.messageSignature.signature = sigBytes.toString("base64");
    expectSignature(() => verifyBundle(JSON.stringify(bundle), bundleFile, digest, trust), "untrusted_key", bundleFile);
    // A DSSE envelope correctly signed by the trusted key, over some other payload, is not a plugin signature.
    const privateKey = decryptCosignKey(keyPem, "test");
    const payloadType = "application/vnd.in-toto+json";
    const payload = Buffer.from(`{"_type":"https://in-toto.io/Statement/v1","subject":[]}`);
    const pae = Buffer.concat([
      Buffer.from(`DSSEv1 ${payloadType.length} ${payloadType} ${payload.length} `),
      payload,
    ]);
    const dsse = {
      mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
      verificationMaterial: { publicKey: { hint: bundle.verificationMaterial.publicKey.hint } },
      dsseEnvelope: {
        payload: payload.toString("base64"),
        payloadType,
        signatures: [{ sig: sign("sha256", pae, privateKey).toString("base64"), keyid: "" }],
      },
    };
    assert.match(
      expectSignature(
        () => verifyBundle(JSON.stringify(dsse), bundleFile, digest, trust),
        "bundle_malformed",
        bundleFile,
      )
        .message,
      /DSSE envelope/,
    );
    const id = keyId(privateKey);
    const good = readFileSync(bundleFile, "utf8");
    expectSignature(
      () => verifyBundle(good, bundleFile, digest, compileTrust({ keys: [pubPem], deny: { keys: [id] } })),
      "revoked",
    );
    expectSignature(
      () => verifyBundle(good, bundleFile, digest, compileTrust({ keys: [pubPem], deny: { digests: [digest] } })),
      "revoked",
    );
  } finally {
    done();
  }
});

test("a keyless bundle verifies offline against the pinned trusted root: chain, SCT, tlog inclusion, timestamps", () => {
  const text = read("keyless_bundle.json");
  const exact = compileTrust({ identities: [identity], trustedRoot: keylessRoot });
  assert.deepEqual(verifyBundle(text, "keyless_bundle.json", digest, exact), { kind: "identity", ...identity });
  const pattern = compileTrust({
    identities: [{ issuer: identity.issuer, subjectPattern: "https://github\\.com/acme/.*" }],
    trustedRoot: keylessRoot,
  });
  assert.equal(verifyBundle(text, "b", digest, pattern).kind, "identity");
});

test("the keyless checks fail by name: identity, issuer, certificate chain, tlog inclusion, timestamp", () => {
  const text = read("keyless_bundle.json");
  const policy = (over: Partial<TrustPolicy>): ReturnType<typeof compileTrust> =>
    compileTrust({ identities: [identity], trustedRoot: keylessRoot, ...over });
  expectSignature(
    () => verifyBundle(text, "b", digest, policy({ identities: [{ ...identity, subject: "mallory@example.com" }] })),
    "identity",
  );
  expectSignature(
    () =>
      verifyBundle(
        text,
        "b",
        digest,
        policy({ identities: [{ ...identity, issuer: "https://accounts.example.org" }] }),
      ),
    "identity",
  );
  expectSignature(
    () =>
      verifyBundle(
        text,
        "b",
        digest,
        policy({ identities: [{ issuer: identity.issuer, subjectPattern: "https://github\\.com/evil/.*" }] }),
      ),
    "identity",
  );
  // A trusted root whose CA is someone else's: the certificate does not chain.
  const root = JSON.parse(read("keyless_trusted_root.json"));
  const otherCa = structuredClone(root);
  otherCa.certificateAuthorities[0].certChain.certificates = root.timestampAuthorities[0].certChain.certificates.slice(
    1,
  );
  expectSignature(() => verifyBundle(text, "b", digest, policy({ trustedRoot: otherCa })), "certificate");
  // A trusted root with another Rekor key: the inclusion proof's checkpoint no longer verifies.
  const otherLog = structuredClone(root);
  otherLog.tlogs[0].publicKey.rawBytes = root.ctlogs[0].publicKey.rawBytes;
  otherLog.tlogs[0].logId.keyId = root.ctlogs[0].logId.keyId;
  expectSignature(() => verifyBundle(text, "b", digest, policy({ trustedRoot: otherLog })), "tlog");
  // A bundle whose log entry was edited.
  const bundle = JSON.parse(text);
  const proof = bundle.verificationMaterial.tlogEntries[0].inclusionProof;
  proof.logIndex = String(Number(proof.logIndex) + 1);
  expectSignature(() => verifyBundle(JSON.stringify(bundle), "b", digest, policy({})), "tlog");
  // A trusted root without the timestamp authority: the RFC 3161 timestamp is not trusted.
  const noTsa = structuredClone(root);
  noTsa.timestampAuthorities = [];
  expectSignature(() => verifyBundle(text, "b", digest, policy({ trustedRoot: noTsa })), "timestamp");
});

test("a malformed bundle or trusted root gives a typed error naming the file", () => {
  const { dir, done } = pluginCopy();
  try {
    const bundleFile = join(dir, bundleFileName);
    const trust = compileTrust({ keys: [pubPem] });
    for (const text of ["{oops", "[]", `{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}`]) {
      writeFileSync(bundleFile, text);
      expectSignature(() => verifyPluginSignature(dir, digest, trust), "bundle_malformed", bundleFile);
    }
    const rootFile = join(dir, "..", "trusted_root.json");
    for (
      const text of [
        "nope",
        `{"mediaType": "text/plain"}`,
        `{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "tlogs": {}}`,
      ]
    ) {
      writeFileSync(rootFile, text);
      expectSignature(() => compileTrust({ trustedRoot: rootFile }), "trusted_root_malformed", rootFile);
    }
    const badKey = JSON.parse(read("keyless_trusted_root.json"));
    badKey.certificateAuthorities[0].certChain.certificates[0].rawBytes = "AAAA";
    expectSignature(() => parseTrustedRoot(badKey, "root.json"), "trusted_root_malformed", "root.json");
    expectSignature(() => compileTrust({ keys: ["not a key"] }, "policy.json"), "key_malformed");
    expectSignature(
      () => compileTrust({ identities: [{ issuer: "x", subjectPattern: "(" }], trustedRoot: keylessRoot }),
      "policy_malformed",
    );
    expectSignature(() => compileTrust({ identities: [identity] }), "policy_malformed");
  } finally {
    done();
  }
});

test("a trust policy file resolves key and root paths beside it; a malformed one names the file", () => {
  const { dir, done } = pluginCopy();
  try {
    const file = join(dir, "..", "trust.json");
    cpSync(join(sig, "cosign.pub"), join(dir, "..", "cosign.pub"));
    cpSync(keylessRoot, join(dir, "..", "root.json"));
    writeFileSync(file, JSON.stringify({ keys: ["cosign.pub"], identities: [identity], trustedRoot: "root.json" }));
    const trust = compileTrust(readTrustPolicy(file), file);
    assert.equal(trust.keys.length, 1);
    assert.equal(verifyBundle(read("keyless_bundle.json"), "b", digest, trust).kind, "identity");
    const cases: [string, RegExp][] = [
      ["{", /cannot be read as JSON/],
      [`{"key": []}`, /unknown field "key"/],
      [`{"keys": "cosign.pub"}`, /"keys" must be a list/],
      [`{"keys": ["missing.pub"]}`, /keys\[0\] "missing.pub" cannot be read/],
      [`{"deny": {"digests": ["abc"]}}`, /deny.digests/],
    ];
    for (const [text, why] of cases) {
      writeFileSync(file, text);
      assert.match(expectSignature(() => readTrustPolicy(file), "policy_malformed", file).message, why);
    }
  } finally {
    done();
  }
});

test("signatures: require refuses an unsigned plugin before it runs; warn runs it and says why; ls shows trust", () => {
  const { dir, done } = pluginCopy();
  try {
    const manifest = loadManifest(dir);
    using strict = createVerifier({ signatures: "require", trust: { keys: [pubPem] } });
    expectSignature(() => strict.verify(manifest), "unsigned", join(dir, bundleFileName));
    const warnings: string[] = [];
    using lax = createVerifier({ signatures: "warn", trust: { keys: [pubPem] }, onWarning: (m) => warnings.push(m) });
    assert.ok(lax.verify(manifest).runDir);
    assert.match(warnings[0], /unsigned/);
    const before = trustColumn(manifest, { trust: compileTrust({ keys: [pubPem] }) });
    assert.equal(before.text, "no lock, unsigned");
    signTree(dir, { keyPem, password: "test" });
    const result = strict.verify(manifest);
    assert.equal(result.signedBy?.kind, "key");
    const after = trustColumn(manifest, { trust: compileTrust({ keys: [pubPem] }) });
    assert.equal(after.signature, "verified");
    assert.match(after.text, /^no lock, signed by key sha256:[0-9a-f]{12}…, verified$/);
    // Signed, but by a key the policy does not trust: who the bundle claims, and the check that failed.
    const stranger = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey;
    const otherKey = compileTrust({ keys: [stranger.export({ type: "spki", format: "pem" }) as string] });
    const untrusted = trustColumn(manifest, { trust: otherKey });
    assert.equal(untrusted.signature, "untrusted_key");
    assert.equal(untrusted.claimedBy, after.text.match(/signed by (key sha256:[0-9a-f]{12}…)/)?.[1]);
    assert.match(untrusted.text, /^no lock, signed by key sha256:[0-9a-f]{12}… \(not verified\), untrusted_key$/);
    assert.match(
      trustColumn(manifest, { lock: { version: 1, plugins: {} } }).text,
      /^unlocked, signed by key .* \(not verified\), no policy$/,
    );
    // A keyless bundle: the certificate's subject is what it claims.
    writeFileSync(join(dir, bundleFileName), read("keyless_bundle.json"));
    const identity = JSON.parse(read("keyless_identity.json"));
    const keyless = trustColumn(manifest, { trust: otherKey });
    assert.equal(keyless.claimedBy, identity.subject);
    assert.match(keyless.text, / \(not verified\), /);
  } finally {
    done();
  }
});
