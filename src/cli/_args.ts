/**
 * Argument parsing: `node:util` parseArgs in strict mode, one call per
 * subcommand, with what strict mode lacks: a "did you mean" for misspelt
 * flags and commands, and a positional count per command.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { closest, didYouMean } from "../host/suggest.ts";

/**
 * The command line is wrong: unknown command or flag, missing or extra
 * argument, bad flag value. Exit code 2.
 */
export class UsageError extends Error {
  override name = "UsageError";
  readonly code = "usage";
  /** The subcommand whose usage to show, if known. */
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.command = command;
  }
}

/** One flag of a subcommand. */
export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** Shown in help: `--dir <dir>`. */
  value?: string;
  description: string;
  /** Allowed values of a string flag. */
  choices?: readonly string[];
}

/** A subcommand's interface: its flags and how many positionals it takes. */
export interface CommandSpec {
  name: string;
  summary: string;
  /** The positionals as shown in the synopsis, e.g. "<plugin> <method> [json-args]". */
  synopsis: string;
  positionalsMin: number;
  /** Infinity for variadic. */
  positionalsMax: number;
  flags: Record<string, FlagSpec>;
  /** Further help text after the flags. */
  details?: string;
}

/** Flags every subcommand takes. */
export const commonFlags: Record<string, FlagSpec> = {
  help: { type: "boolean", short: "h", description: "show this help and exit" },
  version: { type: "boolean", description: "print the version and exit" },
};

/** Parsed arguments of one subcommand. */
export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * Parses `argv` (after the subcommand) against `spec`. Throws UsageError for
 * an unknown flag (with the closest known one), a missing value, a value not
 * among a flag's choices, or too few or too many positionals. `--help` and
 * `--version` are returned without checking positionals.
 */
export function parseCommand(spec: CommandSpec, argv: string[]): Parsed {
  const flags = { ...spec.flags, ...commonFlags };
  checkFlagNames(spec, flags, argv);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: Object.fromEntries(
        Object.entries(flags).map(([name, f]) => [
          name,
          { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) },
        ]),
      ),
    });
  } catch (error) {
    // parseArgs' own wording, minus its advice to use "--" (rarely what the user wants).
    const message = (error as Error).message.replace(/\s*To specify a positional argument.*$/s, "");
    throw new UsageError(message, spec.name);
  }
  const values = parsed.values as Parsed["values"];
  if (values.help || values.version) return { values, positionals: parsed.positionals };
  for (const [name, flag] of Object.entries(spec.flags)) {
    const value = values[name];
    if (!flag.choices || value === undefined) continue;
    for (const v of [value].flat()) {
      if (typeof v === "string" && !flag.choices.includes(v)) {
        throw new UsageError(
          `--${name} must be one of ${flag.choices.join(", ")}, got "${v}"${didYouMean(v, flag.choices)}`,
          spec.name,
        );
      }
    }
  }
  const { positionals } = parsed;
  if (positionals.length < spec.positionalsMin) {
    throw new UsageError(`${spec.name} needs ${spec.synopsis}; got ${positionals.length} argument(s)`, spec.name);
  }
  if (positionals.length > spec.positionalsMax) {
    const extra = positionals.slice(spec.positionalsMax).map((p) => JSON.stringify(p)).join(" ");
    const takes = spec.positionalsMax === 0 ? "takes no arguments" : `takes at most ${spec.synopsis}`;
    const hint = closest(positionals[spec.positionalsMax].replace(/^-+/, ""), Object.keys(flags));
    throw new UsageError(
      `${spec.name} ${takes}; unexpected ${extra}${hint ? `; did you mean --${hint}?` : ""}`,
      spec.name,
    );
  }
  return { values, positionals };
}

/** Finds unknown flags before parseArgs does, to name the closest known one. */
function checkFlagNames(spec: CommandSpec, flags: Record<string, FlagSpec>, argv: string[]): void {
  const shorts = new Map(Object.entries(flags).flatMap(([name, f]) => (f.short ? [[f.short, name]] : [])));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") return;
    let name: string | undefined;
    if (arg.startsWith("--")) {
      name = arg.slice(2).split("=", 1)[0];
      if (!(name in flags)) {
        throw new UsageError(
          `unknown flag --${name}${didYouMean(name, Object.keys(flags), (s) => `--${s}`)}`,
          spec.name,
        );
      }
      if (flags[name].type === "string" && !arg.includes("=")) i++; // Skip its value.
    } else if (arg.startsWith("-") && arg.length > 1 && !/^-\d/.test(arg)) {
      const short = arg[1];
      name = shorts.get(short);
      if (!name) {
        const known = [...shorts.keys()].map((s) => `-${s}`).join(", ");
        throw new UsageError(`unknown flag -${short} (${spec.name} knows ${known})`, spec.name);
      }
      if (flags[name].type === "string" && arg.length === 2) i++;
    }
  }
}

/** The help text of one subcommand. */
export function commandHelp(program: string, spec: CommandSpec): string {
  const flags = { ...spec.flags, ...commonFlags };
  const rows = Object.entries(flags).map(([name, f]) => {
    const left = `${f.short ? `-${f.short}, ` : "    "}--${name}${f.value ? ` <${f.value}>` : ""}`;
    return `  ${left.padEnd(26)} ${f.description}`;
  });
  return [
    `${program} ${spec.name}${spec.synopsis ? ` ${spec.synopsis}` : ""} [flags]`,
    "",
    spec.summary,
    ...(spec.details ? ["", spec.details] : []),
    "",
    "Flags:",
    ...rows,
    "",
    exitCodesHelp,
  ].join("\n");
}

/** Documented in every help text and the README. */
export const exitCodesHelp = "Exit codes: 0 ok, 1 failure (the command ran and something failed), 2 usage error.";
