/**
 * Signatures over a plugin's tree digest: Sigstore bundles (v0.3) written by
 * {@link signTree} with a cosign private key, verified offline with
 * `@sigstore/verify` against a {@link TrustPolicy}.
 *
 * What is signed is a one-line document, {@link treeDigestDocument}:
 * `plugin-shm-tree-v1 sha256:<hex>\n`. The prefix keeps a signature over this
 * document from being mistaken for one over any other blob the same key
 * signed. cosign signs the same document: write it to a file and run
 * `cosign sign-blob --new-bundle-format --key cosign.key --bundle plugin.sigstore.json <file>`.
 *
 * @example
 * ```ts
 * import { treeDigestDocument } from "./signature.ts";
 * console.log(new TextDecoder().decode(treeDigestDocument("sha256:" + "0".repeat(64))));
 * ```
 *
 * @module
 */

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  scryptSync,
  sign,
  X509Certificate,
} from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve as resolvePath } from "node:path";
import { xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
import { bundleFromJSON, bundleToJSON, type SerializedBundle } from "@sigstore/bundle";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { PolicyError, toSignedEntity, toTrustMaterial, VerificationError, Verifier } from "@sigstore/verify";
import "./_deno_ec_digest.ts";
import { bundleFileName, hashTree } from "./lock.ts";

/** Why a signature check failed. */
export type SignatureFailure =
  | "unsigned"
  | "bundle_malformed"
  | "trusted_root_malformed"
  | "policy_malformed"
  | "key_malformed"
  | "key_password"
  | "digest_mismatch"
  | "signature"
  | "untrusted_key"
  | "certificate"
  | "tlog"
  | "timestamp"
  | "identity"
  | "revoked";

/**
 * A plugin is unsigned, wrongly signed or signed by someone the trust policy
 * does not trust; or a bundle, key or trusted root is unusable. `code` says
 * which check failed and `file` names the file concerned.
 *
 * @example
 * ```ts
 * import { SignatureError } from "./signature.ts";
 * const e = new SignatureError("unsigned", "/p/echo/plugin.sigstore.json", "no bundle");
 * console.assert(e.code === "unsigned");
 * ```
 */
export class SignatureError extends Error {
  /** The error class name, for logs and `instanceof`-free checks. */
  override name = "SignatureError";
  /** Which check failed. */
  readonly code: SignatureFailure;
  /** The bundle, key, policy or trusted root concerned. */
  readonly file: string;
  /** Makes the error; `message` says what failed and what to do. */
  constructor(code: SignatureFailure, file: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.file = file;
  }
}

/** The document a plugin signature covers, for a tree digest `sha256:<hex>`. */
export function treeDigestDocument(digest: string): Uint8Array {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new TypeError(`not a tree digest: ${digest}`);
  return new TextEncoder().encode(`plugin-shm-tree-v1 ${digest}\n`);
}

/** `sha256:<hex>` of a public key's SubjectPublicKeyInfo (DER): how keys are named in policies and deny lists. */
export function keyId(key: KeyObject): string {
  if (key.type === "private") key = createPublicKey(key);
  const spki = key.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}

// --- cosign private keys -------------------------------------------------------------------------

/** cosign uses scrypt N=65536, r=8: 64 MiB of memory; allow room for stronger keys. */
const scryptMemoryBytesMax = 256 * 1024 * 1024;
/** The largest scrypt N accepted from a key file (cosign writes 65536); bounds work done for a hostile file. */
const scryptNMax = 1 << 20;

function b64(value: unknown, what: string, file: string): Uint8Array {
  if (typeof value !== "string") {
    throw new SignatureError("key_malformed", file, `${file}: ${what} is missing; is this a cosign private key?`);
  }
  return new Uint8Array(Buffer.from(value, "base64"));
}

/**
 * Decrypts a cosign private key (PEM `ENCRYPTED SIGSTORE PRIVATE KEY` or the
 * older `ENCRYPTED COSIGN PRIVATE KEY`: scrypt + NaCl secretbox around PKCS#8).
 * `file` is only used in error messages.
 */
export function decryptCosignKey(pem: string, password: string, file = "<key>"): KeyObject {
  const match =
    /-----BEGIN ENCRYPTED (SIGSTORE|COSIGN) PRIVATE KEY-----([\s\S]*?)-----END ENCRYPTED \1 PRIVATE KEY-----/
      .exec(pem);
  if (!match) {
    throw new SignatureError(
      "key_malformed",
      file,
      `${file} is not a cosign private key (no ENCRYPTED SIGSTORE PRIVATE KEY block); make one with \`cosign generate-key-pair\``,
    );
  }
  let json: Record<string, Record<string, unknown> & { params?: Record<string, unknown> }>;
  try {
    json = JSON.parse(Buffer.from(match[2].replace(/\s+/g, ""), "base64").toString("utf8"));
  } catch (error) {
    throw new SignatureError("key_malformed", file, `${file}: the key block is not cosign's JSON envelope`, {
      cause: error,
    });
  }
  const kdf = json.kdf ?? {};
  const cipher = json.cipher ?? {};
  const params = kdf.params ?? {};
  const [N, r, p] = [params.N, params.r, params.p].map(Number);
  if (
    kdf.name !== "scrypt" || cipher.name !== "nacl/secretbox" || !(N > 1 && N <= scryptNMax) || !(r > 0 && r <= 32) ||
    !(p > 0 && p <= 16)
  ) {
    throw new SignatureError(
      "key_malformed",
      file,
      `${file}: unsupported key encryption (kdf ${String(kdf.name)}, cipher ${
        String(cipher.name)
      }); expected scrypt + nacl/secretbox`,
    );
  }
  const salt = b64(kdf.salt, "kdf.salt", file);
  const nonce = b64(cipher.nonce, "cipher.nonce", file);
  const ciphertext = b64((json as unknown as Record<string, unknown>).ciphertext, "ciphertext", file);
  const secret = scryptSync(password, salt, 32, { N, r, p, maxmem: scryptMemoryBytesMax });
  let der: Uint8Array;
  try {
    der = xsalsa20poly1305(new Uint8Array(secret), nonce).decrypt(ciphertext);
  } catch (error) {
    throw new SignatureError(
      "key_password",
      file,
      `${file}: wrong password (the key did not decrypt); set COSIGN_PASSWORD or pass the password`,
      { cause: error },
    );
  }
  try {
    return createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" });
  } catch (error) {
    throw new SignatureError("key_malformed", file, `${file}: decrypted, but not a PKCS#8 private key`, {
      cause: error,
    });
  }
}

function parsePublicKey(pem: string, file: string): KeyObject {
  try {
    return createPublicKey(pem);
  } catch (error) {
    throw new SignatureError("key_malformed", file, `${file}: not a PEM public key (${(error as Error).message})`, {
      cause: error,
    });
  }
}

/** Signature digest for a key type: ECDSA P-256 with SHA-256 (cosign's default), P-384 with SHA-384, Ed25519 none. */
function hashFor(key: KeyObject): string | null {
  if (key.asymmetricKeyType === "ed25519") return null;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === "secp384r1") return "sha384";
  if (curve === "secp521r1") return "sha512";
  return "sha256";
}

/** Options for {@link signTree}. */
export interface SignOptions {
  /** PEM text of a cosign private key (see {@link decryptCosignKey}). */
  keyPem: string;
  /** The key's password; default `COSIGN_PASSWORD` from the environment, else "". */
  password?: string;
  /** Named in error messages. */
  keyFile?: string;
  /** Where to write the bundle; default `<dir>/plugin.sigstore.json`. */
  out?: string;
}

/** Result of {@link signTree}. */
export interface SignResult {
  /** The tree digest that was signed (`sha256:<hex>`). */
  digest: string;
  /** Where the bundle was written. */
  bundleFile: string;
  /** The signing key's id (`sha256:` of its SubjectPublicKeyInfo). */
  keyId: string;
  /** The bundle as written (Sigstore bundle v0.3 JSON). */
  bundle: SerializedBundle;
}

/**
 * Signs a plugin directory's tree digest with a cosign private key and
 * writes a Sigstore bundle v0.3 (public-key verification material, no
 * transparency log: verification is offline against the policy's keys).
 *
 * @example
 * ```ts ignore
 * import { signTree } from "./signature.ts";
 * signTree("plugins/echo", { keyPem: Deno.readTextFileSync("cosign.key"), password: "secret" });
 * ```
 */
export function signTree(dir: string, options: SignOptions): SignResult {
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
  const key = decryptCosignKey(options.keyPem, options.password ?? env.COSIGN_PASSWORD ?? "", options.keyFile);
  const digest = hashTree(dir).digest;
  const document = treeDigestDocument(digest);
  const publicKey = createPublicKey(key);
  const signature = sign(hashFor(key), document, key);
  const id = keyId(publicKey);
  const draft = {
    mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    verificationMaterial: {
      publicKey: { hint: cosignHint(publicKey) },
      tlogEntries: [],
      timestampVerificationData: { rfc3161Timestamps: [] },
    },
    messageSignature: {
      messageDigest: { algorithm: "SHA2_256", digest: createHash("sha256").update(document).digest("base64") },
      signature: signature.toString("base64"),
    },
  };
  // Round-trip through the bundle library so we never write a bundle it would not read.
  const checked = bundleToJSON(bundleFromJSON(draft));
  const bundleFile = options.out ?? join(dir, bundleFileName);
  writeFileSync(bundleFile, JSON.stringify(checked, null, 2) + "\n");
  return { digest, bundleFile, keyId: id, bundle: checked };
}

// --- trust policy ----------------------------------------------------------------------------------

/** A keyless signer the policy trusts: the OIDC issuer exactly, the subject exactly or by pattern. */
export interface TrustedIdentity {
  /** The OIDC issuer the certificate must name, exactly. */
  issuer: string;
  /** The certificate's subject alternative name (an email or a workflow URI), exactly. */
  subject?: string;
  /** Or a regular expression the whole subject must match, e.g. `^https://github\\.com/acme/.*$`. */
  subjectPattern?: string;
}

/** Who may sign plugins, and what is revoked. */
export interface TrustPolicy {
  /** PEM public keys (cosign.pub) trusted for keyed bundles. */
  keys?: string[];
  /** Keyless identities, checked against `trustedRoot`. */
  identities?: TrustedIdentity[];
  /** A pinned `trusted_root.json` (path or parsed JSON): Fulcio CAs, Rekor and CT log keys, TSAs. */
  trustedRoot?: string | Record<string, unknown>;
  /** Revocations: tree digests (`sha256:<hex>`) and key ids ({@link keyId}) that are refused whatever signed them. */
  deny?: { digests?: string[]; keys?: string[] };
}

/** Who signed, once verified. */
export type SignedBy =
  | { kind: "key"; keyId: string }
  | { kind: "identity"; issuer: string; subject: string };

/** A policy with its keys parsed and its trusted root loaded, ready to verify many bundles. */
export interface CompiledTrust {
  /** Trusted public keys with their ids. */
  keys: { id: string; key: KeyObject }[];
  /** Trusted keyless identities; a subject is exact text or a pattern that must match all of it. */
  identities: { issuer: string; subject: string | RegExp }[];
  /** The pinned trusted root (CAs, CT logs, transparency logs, timestamp authorities). */
  root: ReturnType<typeof TrustedRoot.fromJSON>;
  /** Revoked tree digests. */
  denyDigests: Set<string>;
  /** Revoked key ids. */
  denyKeys: Set<string>;
}

const trustedRootMediaType = /^application\/vnd\.dev\.sigstore\.trustedroot(\.v0\.\d+)?\+json(;version=0\.\d+)?$/;

/** Validates a trusted_root.json document; `file` is named in errors. */
export function parseTrustedRoot(json: unknown, file: string): ReturnType<typeof TrustedRoot.fromJSON> {
  const bad = (what: string) =>
    new SignatureError(
      "trusted_root_malformed",
      file,
      `${file} is not a usable trusted root: ${what}; pin a trusted_root.json from your Sigstore instance`,
    );
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw bad("not a JSON object");
  const obj = json as Record<string, unknown>;
  if (typeof obj.mediaType !== "string" || !trustedRootMediaType.test(obj.mediaType)) {
    throw bad(`mediaType is ${JSON.stringify(obj.mediaType)}`);
  }
  for (const field of ["tlogs", "certificateAuthorities", "ctlogs", "timestampAuthorities"]) {
    if (obj[field] !== undefined && !Array.isArray(obj[field])) throw bad(`${field} must be an array`);
  }
  let root: ReturnType<typeof TrustedRoot.fromJSON>;
  try {
    root = TrustedRoot.fromJSON(json);
    // Decode every key and certificate now, so a broken one is reported here and not mid-verification.
    toTrustMaterial(root, () => {
      throw new Error("unused");
    });
  } catch (error) {
    throw bad((error as Error).message);
  }
  return root;
}

const emptyRoot = { mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1" };

/** Parses a policy once (keys, patterns, trusted root); `source` is named in errors. */
export function compileTrust(policy: TrustPolicy, source = "trust policy"): CompiledTrust {
  const keys = (policy.keys ?? []).map((pem, i) => {
    const key = parsePublicKey(pem, `${source} keys[${i}]`);
    return { id: keyId(key), key };
  });
  const identities = (policy.identities ?? []).map((identity, i) => {
    if (typeof identity.issuer !== "string" || !identity.issuer) {
      throw new SignatureError(
        "policy_malformed",
        source,
        `${source}: identities[${i}].issuer must be the OIDC issuer URL`,
      );
    }
    if ((identity.subject === undefined) === (identity.subjectPattern === undefined)) {
      throw new SignatureError(
        "policy_malformed",
        source,
        `${source}: identities[${i}] needs exactly one of subject or subjectPattern`,
      );
    }
    let subject: string | RegExp;
    try {
      subject = identity.subject ?? new RegExp(`^(?:${identity.subjectPattern})$`);
    } catch (error) {
      throw new SignatureError(
        "policy_malformed",
        source,
        `${source}: identities[${i}].subjectPattern is not a valid regular expression`,
        { cause: error },
      );
    }
    return { issuer: identity.issuer, subject };
  });
  let root = TrustedRoot.fromJSON(emptyRoot);
  if (typeof policy.trustedRoot === "string") {
    const file = policy.trustedRoot;
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, "utf8"));
    } catch (error) {
      throw new SignatureError(
        "trusted_root_malformed",
        file,
        `${file} cannot be read as JSON: ${(error as Error).message}; ` +
          `point "trustedRoot" in ${source} at a Sigstore trusted_root.json`,
        { cause: error },
      );
    }
    root = parseTrustedRoot(json, file);
  } else if (policy.trustedRoot) {
    root = parseTrustedRoot(policy.trustedRoot, `${source} trustedRoot`);
  }
  if (identities.length > 0 && root.certificateAuthorities.length === 0) {
    throw new SignatureError(
      "policy_malformed",
      source,
      `${source}: keyless identities need a trustedRoot with certificate authorities`,
    );
  }
  return {
    keys,
    identities,
    root,
    denyDigests: new Set(policy.deny?.digests ?? []),
    denyKeys: new Set(policy.deny?.keys ?? []),
  };
}

/**
 * Reads a trust policy file (JSON, the shape of {@link TrustPolicy}) for the
 * CLI's `--trust`. `keys` entries and `trustedRoot` may be PEM text or paths,
 * relative to the policy file. Throws SignatureError `policy_malformed`
 * naming the file.
 */
export function readTrustPolicy(file: string): TrustPolicy {
  const bad = (what: string, cause?: unknown) =>
    new SignatureError("policy_malformed", file, `${file}: ${what}; see TrustPolicy in plugin-shm/security`, { cause });
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw bad(`cannot be read as JSON (${(error as Error).message})`, error);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw bad("not a JSON object");
  const known = new Set(["keys", "identities", "trustedRoot", "deny"]);
  for (const k of Object.keys(json)) {
    if (!known.has(k)) throw bad(`unknown field "${k}" (expected ${[...known].join(", ")})`);
  }
  const base = dirname(file);
  const keys = json.keys ?? [];
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) {
    throw bad(`"keys" must be a list of PEM texts or paths`);
  }
  const identities = json.identities ?? [];
  if (!Array.isArray(identities)) throw bad(`"identities" must be a list of {issuer, subject | subjectPattern}`);
  const deny = (json.deny ?? {}) as TrustPolicy["deny"];
  if (typeof deny !== "object" || deny === null) throw bad(`"deny" must be {digests, keys}`);
  for (const field of ["digests", "keys"] as const) {
    const list = deny[field];
    if (list !== undefined && (!Array.isArray(list) || !list.every((d) => /^sha256:[0-9a-f]{64}$/.test(d)))) {
      throw bad(`"deny.${field}" must be a list of "sha256:<64 hex digits>"`);
    }
  }
  const pemOrPath = (value: string, what: string): string => {
    if (value.includes("-----BEGIN")) return value;
    try {
      return readFileSync(resolvePath(base, value), "utf8");
    } catch (error) {
      throw bad(`${what} "${value}" cannot be read (${(error as Error).message})`, error);
    }
  };
  const root = json.trustedRoot;
  if (root !== undefined && typeof root !== "string" && (typeof root !== "object" || root === null)) {
    throw bad(`"trustedRoot" must be a path or a trusted_root.json object`);
  }
  return {
    keys: (keys as string[]).map((k, i) => pemOrPath(k, `keys[${i}]`)),
    identities: identities as TrustedIdentity[],
    trustedRoot: typeof root === "string" ? resolvePath(base, root) : root as Record<string, unknown> | undefined,
    deny,
  };
}

// --- verification --------------------------------------------------------------------------------

const checkOf: Record<string, SignatureFailure> = {
  TLOG_ERROR: "tlog",
  TLOG_INCLUSION_PROOF_ERROR: "tlog",
  TLOG_INCLUSION_PROMISE_ERROR: "tlog",
  TLOG_MISSING_INCLUSION_ERROR: "tlog",
  TLOG_BODY_ERROR: "tlog",
  CERTIFICATE_ERROR: "certificate",
  PUBLIC_KEY_ERROR: "untrusted_key",
  SIGNATURE_ERROR: "signature",
  TIMESTAMP_ERROR: "timestamp",
};

function asSignatureError(error: unknown, file: string): SignatureError {
  if (error instanceof SignatureError) return error;
  if (error instanceof PolicyError) {
    return new SignatureError(
      "identity",
      file,
      `${file}: signed by an identity the trust policy does not list (${error.message}); add it to identities or re-sign`,
      { cause: error },
    );
  }
  if (error instanceof VerificationError) {
    const code = checkOf[error.code] ?? "signature";
    return new SignatureError(code, file, `${file}: ${code} check failed: ${error.message}`, { cause: error });
  }
  return new SignatureError("signature", file, `${file}: verification failed: ${(error as Error).message}`, {
    cause: error,
  });
}

/** Parses a bundle's JSON text; `file` is named in errors. */
export function parseBundle(text: string, file: string): ReturnType<typeof bundleFromJSON> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SignatureError(
      "bundle_malformed",
      file,
      `${file} is not valid JSON (${(error as Error).message}); re-sign the plugin`,
      { cause: error },
    );
  }
  try {
    return bundleFromJSON(json);
  } catch (error) {
    throw new SignatureError(
      "bundle_malformed",
      file,
      `${file} is not a Sigstore bundle: ${(error as Error).message}; re-sign the plugin`,
      { cause: error },
    );
  }
}

/**
 * Verifies a bundle over the tree digest `digest` against a compiled policy,
 * offline. Throws SignatureError saying which check failed; returns who signed.
 */
export function verifyBundle(bundleText: string, file: string, digest: string, trust: CompiledTrust): SignedBy {
  if (trust.denyDigests.has(digest)) {
    throw new SignatureError(
      "revoked",
      file,
      `tree digest ${digest} is on the deny list; the plugin's release was revoked`,
    );
  }
  const bundle = parseBundle(bundleText, file);
  const document = Buffer.from(treeDigestDocument(digest));
  // A DSSE envelope signs its own payload, not the artifact handed to the verifier: accepting one would let
  // any envelope a trusted key ever signed (an attestation, say) pass for any plugin.
  if (bundle.content.$case !== "messageSignature") {
    throw new SignatureError(
      "bundle_malformed",
      file,
      `${file} holds a DSSE envelope; plugin-shm expects a message signature over the tree digest document (cosign sign-blob, not attest-blob)`,
    );
  }
  let entity;
  try {
    entity = toSignedEntity(bundle, document);
  } catch (error) {
    throw asSignatureError(error, file);
  }
  const signed = bundle.content.messageSignature.messageDigest?.digest;
  if (signed && !Buffer.from(signed).equals(createHash("sha256").update(document).digest())) {
    throw new SignatureError(
      "digest_mismatch",
      file,
      `${file} signs a different tree than this directory holds (${digest}); files changed after signing, or the bundle belongs to another release`,
    );
  }
  if (entity.key.$case === "public-key") return verifyKeyed(entity, file, trust);
  return verifyKeyless(entity, file, trust);
}

type Entity = ReturnType<typeof toSignedEntity>;

function verifyKeyed(entity: Entity, file: string, trust: CompiledTrust): SignedBy {
  if (trust.keys.length === 0) {
    throw new SignatureError(
      "untrusted_key",
      file,
      `${file} is signed with a key, but the trust policy lists no keys; add the signer's public key`,
    );
  }
  const hint = (entity.key as { hint: string }).hint;
  // Try the hinted key first; the hint is unauthenticated, so any trusted key may still match.
  const ordered = [...trust.keys].sort((a, b) =>
    Number(cosignHint(b.key) === hint) - Number(cosignHint(a.key) === hint)
  );
  let last: unknown;
  for (const candidate of ordered) {
    const material = toTrustMaterial(trust.root, () => ({ publicKey: candidate.key, validFor: () => true }));
    try {
      new Verifier(material, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(entity);
    } catch (error) {
      last = error;
      continue;
    }
    if (trust.denyKeys.has(candidate.id)) {
      throw new SignatureError("revoked", file, `${file} is signed by key ${candidate.id}, which is on the deny list`);
    }
    return { kind: "key", keyId: candidate.id };
  }
  const inner = asSignatureError(last, file);
  if (inner.code === "signature") {
    throw new SignatureError(
      "untrusted_key",
      file,
      `${file}: no trusted key verifies the signature (hint ${
        hint || "none"
      }); the plugin was signed by another key or changed`,
      { cause: last },
    );
  }
  throw inner;
}

function verifyKeyless(entity: Entity, file: string, trust: CompiledTrust): SignedBy {
  if (trust.identities.length === 0) {
    throw new SignatureError(
      "identity",
      file,
      `${file} is signed keyless, but the trust policy lists no identities; add the signer's issuer and subject`,
    );
  }
  const material = toTrustMaterial(trust.root);
  const verifier = new Verifier(material, { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 1 });
  let signer;
  try {
    signer = verifier.verify(entity);
  } catch (error) {
    throw asSignatureError(error, file);
  }
  const issuer = signer.identity?.extensions?.issuer ?? "";
  const subject = signer.identity?.subjectAlternativeName ?? "";
  const id = keyId(signer.key);
  if (trust.denyKeys.has(id)) {
    throw new SignatureError("revoked", file, `${file} is signed by key ${id}, which is on the deny list`);
  }
  const ok = trust.identities.some((t) =>
    t.issuer === issuer && (typeof t.subject === "string" ? t.subject === subject : t.subject.test(subject))
  );
  if (!ok) {
    throw new SignatureError(
      "identity",
      file,
      `${file} is signed by ${subject} (issuer ${issuer}), which the trust policy does not list; add it to identities if you trust it`,
    );
  }
  return { kind: "identity", issuer, subject };
}

/**
 * Verifies `<dir>/plugin.sigstore.json` against the tree digest `digest`
 * (computed by the caller from the bytes that will run).
 */
export function verifyPluginSignature(dir: string, digest: string, trust: CompiledTrust): SignedBy {
  const file = join(dir, bundleFileName);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new SignatureError(
      "unsigned",
      file,
      `${file} does not exist: the plugin is unsigned; sign it with \`plugin-shm sign ${dir} --key cosign.key\``,
    );
  }
  return verifyBundle(text, file, digest, trust);
}

/**
 * Who `<dir>/plugin.sigstore.json` says signed it, checking nothing: the key
 * hint (as `key sha256:…`, the form {@link describeSigner} uses) or the leaf
 * certificate's subject. For `ls`, next to the reason verification failed.
 * Undefined when there is no readable bundle.
 */
export function claimedSigner(dir: string): string | undefined {
  let bundle;
  try {
    bundle = parseBundle(readFileSync(join(dir, bundleFileName), "utf8"), join(dir, bundleFileName));
  } catch {
    return undefined;
  }
  const material = bundle.verificationMaterial.content;
  if (material.$case === "publicKey") {
    const hint = material.publicKey.hint;
    return hint ? `key sha256:${Buffer.from(hint, "base64").toString("hex").slice(0, 12)}…` : "a key without a hint";
  }
  const raw = material.$case === "certificate"
    ? material.certificate.rawBytes
    : material.x509CertificateChain.certificates[0]?.rawBytes;
  try {
    const san = raw ? new X509Certificate(Buffer.from(raw)).subjectAltName : undefined;
    return san?.replace(/^(URI|email):/, "") || "a certificate without a subject";
  } catch {
    return "an unreadable certificate";
  }
}

/** The key hint cosign writes into bundles: base64 SHA-256 of the public key's SubjectPublicKeyInfo. */
export function cosignHint(key: KeyObject): string {
  return createHash("sha256").update(key.export({ type: "spki", format: "der" })).digest("base64");
}

/** A short description of a signer, for `ls` and the audit log. */
export function describeSigner(by: SignedBy): string {
  return by.kind === "key" ? `key ${by.keyId.slice(0, 19)}…` : `${by.subject} (${by.issuer})`;
}
