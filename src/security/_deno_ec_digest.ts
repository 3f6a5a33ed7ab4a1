/**
 * Works around a gap in Deno's node:crypto: `crypto.verify(undefined, data,
 * ecKey, sig)` throws "no default digest", where Node and Bun use SHA-256 for
 * EC keys. sigstore-js relies on that default for signed entry timestamps,
 * checkpoints and DSSE envelopes, so under Deno every keyless bundle would fail
 * its transparency-log check. This fills in SHA-256 for EC keys when no
 * digest is given, exactly what Node does, and leaves every other call as is.
 * Importing this module applies it once.
 *
 * @module
 */

import type { KeyObject } from "node:crypto";
import { crypto as sigstoreCrypto } from "@sigstore/core";

type Verify = (data: Buffer, key: KeyObject, signature: Buffer, algorithm?: string) => boolean;
const target = sigstoreCrypto as unknown as { verify: Verify; __pluginShmPatched?: boolean };

if ("Deno" in globalThis && !target.__pluginShmPatched) {
  const original = target.verify;
  target.verify = (data, key, signature, algorithm) =>
    original(data, key, signature, algorithm ?? (key.asymmetricKeyType === "ec" ? "sha256" : undefined));
  target.__pluginShmPatched = true;
}
