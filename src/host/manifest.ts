/**
 * plugin.json: who the plugin is and how to start it. Validation reports
 * every problem at once, each with its field path, and suggests the intended
 * key for a misspelt one (`entrypoint` → `entry`): a typo must not pass
 * silently, and a user should fix a manifest in one round, not one complaint
 * at a time. Versions and ranges are semantic versions checked by the npm
 * `semver` package, the same rules npm applies.
 *
 * @module
 */

import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, normalize, resolve } from "node:path";
import semver from "semver";
import { z } from "zod";
import { ManifestError, type ManifestProblem } from "./errors.ts";
import { protocolVersions } from "../protocol/handshake.ts";
import { didYouMean } from "./suggest.ts";
import { type Limits, limitsSchema, type Permissions, permissionsSchema } from "./permissions_schema.ts";
import { configSchemaProblem } from "./_config.ts";

const nameRule = /^[a-z][a-z0-9-]{0,62}$/;
/** A hook's name: `onRequest`, `beforeSave2`. */
export const hookNameRule: RegExp = /^[A-Za-z][A-Za-z0-9]{0,63}$/;

/** Runtimes a plugin may run under. */
export const runtimes = ["deno", "bun", "node"] as const;

/** A runtime from {@link runtimes}. */
export type PluginRuntime = (typeof runtimes)[number];

/**
 * True for a full semantic version as npm writes it: `1.2.3`,
 * `1.0.0-rc.1+build.5`. Not `v1.2.3`, `1.2` or ` 1.2.3`.
 */
export function isVersion(text: string): boolean {
  return semver.valid(text) !== null && /^\d/.test(text) && text.trim() === text;
}

/** True for an npm version range: `^1.2.0`, `>=1 <3`, `1.x`, `*`. */
export function isVersionRange(text: string): boolean {
  return text.trim() !== "" && semver.validRange(text) !== null;
}

/** Whether `version` lies in `range`; pre-releases count only if the range names one (npm's rule). */
export function versionSatisfies(version: string, range: string): boolean {
  return semver.satisfies(version, range);
}

/** A zod string that must be a semantic version. */
export const versionSchema: z.ZodString = z.string().refine(isVersion, {
  message: "must be a semantic version like 1.2.3 or 1.0.0-rc.1+build.5 (no leading v)",
}) as unknown as z.ZodString;

/** A zod string that must be an npm version range. */
export const versionRangeSchema: z.ZodString = z.string().refine(isVersionRange, {
  message: 'must be a version range like "^1.2.0" or ">=1.0.0 <3"',
}) as unknown as z.ZodString;

/**
 * The manifest's fields. v2 adds `permissions` and `limits` (issue 8; the
 * sandbox in src/security maps them to a launch plan). Later versions add
 * theirs here: config, dependencies (use {@link versionRangeSchema}), hooks
 * (issue 11). {@link ManifestSchemaOptions.extraFields} still lets a composer
 * add or replace fields.
 */
const baseFields = {
  name: z.string().regex(nameRule, "must be lowercase letters, digits and dashes, starting with a letter (max 63)"),
  version: versionSchema,
  runtime: z.enum(runtimes, { error: `must be one of ${runtimes.map((r) => `"${r}"`).join(", ")}` }),
  entry: z.string().min(1, 'must name the entry file, e.g. "main.ts"').refine(
    (p) => !isAbsolute(p) && !normalize(p).startsWith(".."),
    { message: "must be a relative path inside the plugin's directory" },
  ),
  protocol: z.tuple([z.int().min(0), z.int().min(0)]).refine(([a, b]) => a <= b, {
    message: "must be [oldest, newest] with oldest <= newest",
  }).default([...protocolVersions] as [number, number]),
  description: z.string().max(500, "must be at most 500 characters").optional(),
  permissions: permissionsSchema.optional(),
  limits: limitsSchema.optional(),
  dependencies: z.record(
    z.string().regex(nameRule, "a dependency is a plugin name: lowercase letters, digits and dashes"),
    versionRangeSchema,
  ).optional(),
  hooks: z.record(
    z.string().regex(hookNameRule, "a hook name is letters and digits, starting with a letter (max 64)"),
    z.strictObject({ priority: z.int().min(-1_000_000).max(1_000_000).default(0) }),
  ).optional(),
  config: z.record(z.string(), z.unknown()).superRefine((schema, ctx) => {
    const problem = configSchemaProblem(schema);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }).optional(),
};

/** Extra top-level manifest fields (e.g. the sandbox's `permissions` and `limits`). */
export interface ManifestSchemaOptions {
  /** Zod schemas of further top-level fields, by name, validated with the rest. Default: none. */
  extraFields?: Record<string, z.ZodType>;
}

/** A validated manifest plus where it came from. */
export interface Manifest {
  /** The plugin's name: lowercase letters, digits and dashes, starting with a letter (at most 63); unique per host. */
  name: string;
  /** The plugin's version (semver). */
  version: string;
  /** Which runtime starts the plugin: "deno", "bun" or "node". */
  runtime: PluginRuntime;
  /** The module the runtime runs, as plugin.json names it (relative to the plugin directory; `entryPath` is absolute). */
  entry: string;
  /** Protocol versions the plugin speaks, [oldest, newest]. */
  protocol: [number, number];
  /** One line for listings; optional. */
  description?: string;
  /**
   * What the plugin may touch (manifest v2). Absent: nothing beyond its own
   * directory and what its runtime needs. `read`, `write` and `run` paths are
   * absolute here: relative ones were resolved against the plugin directory.
   */
  permissions?: Permissions;
  /** Resource limits of the plugin process (manifest v2). */
  limits?: Limits;
  /** Plugins this one needs loaded first, by name, with npm-style version ranges; see src/host/_deps.ts. */
  dependencies?: Record<string, string>;
  /** Hooks the plugin handles, each with its priority (higher runs first); see src/host/_hooks.ts. */
  hooks?: Record<string, { priority: number }>;
  /** JSON Schema (an object schema) of the plugin's settings; see src/host/_config.ts. */
  config?: Record<string, unknown>;
  /** The plugin's directory (absolute). */
  dir: string;
  /** Absolute path of the entry file. */
  entryPath: string;
  /** Absolute path of plugin.json. */
  file: string;
}

/** The file name the host looks for in each plugin directory. */
export const manifestFile = "plugin.json";

function fieldPath(path: PropertyKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i ? "." : ""}${String(p)}`)).join("");
}

interface Def {
  type?: string;
  innerType?: z.ZodType;
  element?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  items?: z.ZodType[];
}

/** The keys an object schema at `path` knows, to suggest one for a misspelt key. */
function keysAt(schema: z.ZodType | undefined, path: PropertyKey[]): string[] {
  const def = (s: z.ZodType | undefined): Def | undefined => (s as { _zod?: { def: Def } } | undefined)?._zod?.def;
  const unwrap = (s: z.ZodType | undefined): z.ZodType | undefined => {
    while (def(s)?.innerType) s = def(s)!.innerType;
    return s;
  };
  let current = unwrap(schema);
  for (const segment of path) {
    const d = def(current);
    current = unwrap(
      typeof segment === "number" ? d?.element ?? d?.items?.[segment] : d?.shape?.[String(segment)],
    );
  }
  return Object.keys(def(current)?.shape ?? {});
}

/**
 * Every problem with a parsed plugin.json value, each with its field path.
 * Empty when the value is a valid manifest. `dir` (when given) is where the
 * entry file must exist.
 */
export function manifestProblems(json: unknown, dir?: string, options: ManifestSchemaOptions = {}): ManifestProblem[] {
  const fields = { ...baseFields, ...options.extraFields };
  const problems: ManifestProblem[] = [];
  const parsed = z.strictObject(fields).safeParse(json);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const at = fieldPath(issue.path);
      if (issue.code === "unrecognized_keys") {
        const known = keysAt(z.strictObject(fields), issue.path);
        for (const key of issue.keys) {
          const field = at ? `${at}.${key}` : key;
          problems.push({ field, message: `is not a known field${didYouMean(key, known)}` });
        }
      } else if (issue.code === "invalid_type" && issue.path.length === 0) {
        problems.push({ field: "", message: 'must be a JSON object like {"name": …, "version": …}' });
      } else {
        const missing = issue.code === "invalid_type" && issue.input === undefined;
        problems.push({ field: at, message: missing ? "is required" : issue.message });
      }
    }
  }
  const entry = (json as { entry?: unknown } | null)?.entry;
  if (dir !== undefined && typeof entry === "string" && !problems.some((p) => p.field === "entry")) {
    const entryPath = join(dir, entry);
    if (!existsSync(entryPath)) problems.push({ field: "entry", message: `file ${entryPath} does not exist` });
    else if (!statSync(entryPath).isFile()) problems.push({ field: "entry", message: `${entryPath} is not a file` });
  }
  return problems;
}

/**
 * Reads and validates `<dir>/plugin.json` (`dir` resolves against the current
 * directory). Throws one ManifestError listing every problem, each with its
 * field.
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
export function loadManifest(dir: string, options: ManifestSchemaOptions = {}): Manifest {
  const file = join(resolve(dir), manifestFile);
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
  const problems = manifestProblems(json, dirname(file), options);
  if (problems.length) throw new ManifestError(file, problems[0].field, problems[0].message, problems);
  const data = z.strictObject({ ...baseFields, ...options.extraFields }).parse(json) as Omit<
    Manifest,
    "dir" | "entryPath" | "file"
  >;
  const pluginDir = dirname(file);
  const manifest: Manifest = { ...data, dir: pluginDir, entryPath: join(pluginDir, data.entry), file };
  if (data.permissions) manifest.permissions = resolveGrantPaths(data.permissions, pluginDir);
  return manifest;
}

/** `read`, `write` and `run` grants with relative paths resolved against the plugin directory `dir`. */
export function resolveGrantPaths(permissions: Permissions, dir: string): Permissions {
  const resolved: Permissions = { ...permissions };
  for (const key of ["read", "write", "run"] as const) {
    const paths = permissions[key];
    if (paths) resolved[key] = paths.map((p) => resolve(dir, p));
  }
  return resolved;
}
