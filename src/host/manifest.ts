/**
 * plugin.json, first version: who the plugin is and how to start it. Fields
 * for permissions, integrity and signatures come in later versions; unknown
 * fields are refused so that a typo does not pass silently.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, normalize } from "node:path";
import { z } from "zod";
import { ManifestError } from "../errors.ts";
import { protocolVersions } from "../protocol/handshake.ts";

const nameRule = /^[a-z][a-z0-9-]{0,62}$/;

const schema: z.ZodType<Omit<Manifest, "dir" | "entryPath" | "file">> = z.strictObject({
  name: z.string().regex(nameRule, "must be lowercase letters, digits and dashes, starting with a letter (max 63)"),
  version: z.string().regex(/^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/, "must be a semantic version like 1.2.3"),
  runtime: z.enum(["deno", "bun", "node"]),
  entry: z.string().min(1).refine((p) => !isAbsolute(p) && !normalize(p).startsWith(".."), {
    message: "must be a relative path inside the plugin's directory",
  }),
  protocol: z.tuple([z.int().min(0), z.int().min(0)]).refine(([a, b]) => a <= b, {
    message: "must be [oldest, newest] with oldest <= newest",
  }).default([...protocolVersions] as [number, number]),
  description: z.string().max(500).optional(),
});

/** A validated manifest plus where it came from. */
export interface Manifest {
  name: string;
  version: string;
  runtime: "deno" | "bun" | "node";
  entry: string;
  /** Protocol versions the plugin speaks, [oldest, newest]. */
  protocol: [number, number];
  description?: string;
  /** The plugin's directory. */
  dir: string;
  /** Absolute path of the entry file. */
  entryPath: string;
  /** Absolute path of plugin.json. */
  file: string;
}

/** The file name the host looks for in each plugin directory. */
export const manifestFile = "plugin.json";

/**
 * Reads and validates `<dir>/plugin.json`. Throws ManifestError naming the
 * file and the field.
 *
 * @example
 * ```ts
 * import { loadManifest } from "./manifest.ts";
 * try {
 *   loadManifest("/nonexistent");
 * } catch (e) {
 *   console.log((e as Error).message);
 * }
 * ```
 */
export function loadManifest(dir: string): Manifest {
  const file = join(dir, manifestFile);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ManifestError(file, "", `cannot be read: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ManifestError(file, "", `is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.join(".") || (issue.code === "unrecognized_keys" ? issue.keys.join(", ") : "");
    throw new ManifestError(file, field, issue.message);
  }
  return { ...parsed.data, dir: dirname(file), entryPath: join(dirname(file), parsed.data.entry), file };
}
