/**
 * Typed config: a manifest's `config` is a JSON Schema (an object schema) for
 * the plugin's settings; values come from the host's `config` option or its
 * `configFile` (`{ "<plugin>": { … } }`), are checked against the schema at
 * load (defaults filled in), and reach the plugin in its launch environment,
 * where the SDK offers them as `this.config`. A change at run time goes to
 * the plugin's `onConfig`; a plugin without one is reloaded instead.
 *
 * The schema is compiled with zod's `fromJSONSchema`, which understands the
 * common keywords (type, properties, required, enum, minimum/maximum,
 * pattern, items, default, additionalProperties …) and refuses unknown types;
 * keywords it cannot enforce (if/then/else, not, dependentSchemas) are
 * refused at manifest load rather than silently ignored.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { ConfigError } from "./errors.ts";

/** Largest config, as JSON: it travels in an environment variable (Linux caps one at 128 KiB). */
export const configBytesMax = 64 * 1024;

/** Where config values came from when they were passed as the host's option. */
export const configFromOption = "host option config";

/** The problem with a manifest's `config` schema, or undefined if it is one this host can enforce. */
export function configSchemaProblem(schema: unknown): string | undefined {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
    return 'must be a JSON Schema object like {"type": "object", "properties": {…}}';
  }
  const s = schema as Record<string, unknown>;
  if (s.type !== "object") return 'must be an object schema: {"type": "object", "properties": {…}}';
  if (s.properties !== undefined && (typeof s.properties !== "object" || s.properties === null)) {
    return "properties must be an object of property schemas";
  }
  if (s.required !== undefined && (!Array.isArray(s.required) || s.required.some((r) => typeof r !== "string"))) {
    return "required must be an array of property names";
  }
  try {
    z.fromJSONSchema(schema as never);
  } catch (error) {
    return `is not a JSON Schema this host can enforce: ${(error as Error).message}`;
  }
  return undefined;
}

const compiled = new WeakMap<object, z.ZodType>();

function compile(schema: Record<string, unknown>): z.ZodType {
  let type = compiled.get(schema);
  if (!type) {
    type = z.fromJSONSchema(schema as never);
    compiled.set(schema, type);
  }
  return type;
}

/**
 * Checks `values` against plugin `plugin`'s config `schema` and returns them
 * with defaults filled in. Throws a {@link ConfigError} naming the field and
 * `source`.
 */
export function validateConfig(
  plugin: string,
  schema: Record<string, unknown> | undefined,
  values: unknown,
  source: string,
): Record<string, unknown> {
  const given = values ?? {};
  if (typeof given !== "object" || given === null || Array.isArray(given)) {
    throw new ConfigError(plugin, "", source, "must be an object of settings");
  }
  if (!schema) {
    if (Object.keys(given).length) {
      throw new ConfigError(plugin, "", source, 'has values but the plugin declares no "config" schema');
    }
    return {};
  }
  const parsed = compile(schema).safeParse(given);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return fail(plugin, issue.path.map(String).join("."), source, issue);
  }
  const json = JSON.stringify(parsed.data);
  if (json.length > configBytesMax) {
    throw new ConfigError(plugin, "", source, `is ${json.length} bytes as JSON; at most ${configBytesMax} fit`);
  }
  return parsed.data as Record<string, unknown>;
}

function fail(plugin: string, field: string, source: string, issue: z.core.$ZodIssue): never {
  if (issue.code === "unrecognized_keys") {
    // Name the unknown field itself, not the object holding it, so a form can point at it.
    const [key] = issue.keys;
    throw new ConfigError(
      plugin,
      field ? `${field}.${key}` : key,
      source,
      "is not in the schema (it allows no other fields)",
    );
  }
  const missing = issue.code === "invalid_type" && (issue as { input?: unknown }).input === undefined;
  throw new ConfigError(plugin, field, source, missing ? "is required" : issue.message);
}

/** Reads a config file: `{ "<plugin>": { … } }`. Throws a {@link ConfigError} naming the file. */
export function readConfigFile(file: string, plugin: string): unknown {
  const path = resolve(file);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new ConfigError(plugin, "", path, `cannot be read as JSON: ${(error as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(plugin, "", path, 'must be a JSON object keyed by plugin name: {"<plugin>": {…}}');
  }
  return (json as Record<string, unknown>)[plugin];
}

/**
 * The config values for `plugin`, validated: from the host's `config` option
 * if it has an entry for the plugin, else from `configFile`, else none (the
 * schema's defaults).
 */
export function resolveConfig(
  plugin: string,
  schema: Record<string, unknown> | undefined,
  options: { config: Record<string, Record<string, unknown>>; configFile: string | undefined },
): Record<string, unknown> {
  if (Object.hasOwn(options.config, plugin)) {
    return validateConfig(plugin, schema, options.config[plugin], configFromOption);
  }
  if (options.configFile !== undefined) {
    const path = resolve(options.configFile);
    return validateConfig(plugin, schema, readConfigFile(path, plugin), path);
  }
  return validateConfig(plugin, schema, undefined, configFromOption);
}
