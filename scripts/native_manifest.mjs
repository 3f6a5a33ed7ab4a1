// Writes native/manifest.json for `make package`: the SHA-256 and size of every
// prebuilt library under native/<platform>-<arch>/, which src/native/library.ts
// checks fetched copies against.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

const files = {};
for (const dir of readdirSync("native").sort()) {
  for (const file of readdirSync(`native/${dir}`).sort()) {
    const bytes = readFileSync(`native/${dir}/${file}`);
    files[`${dir}/${file}`] = { sha256: createHash("sha256").update(bytes).digest("hex"), bytes: bytes.length };
  }
}
writeFileSync("native/manifest.json", JSON.stringify({ files }, null, 2) + "\n");
