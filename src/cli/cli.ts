/**
 * The command line. Runtime-neutral (node: modules only), so it runs as
 * `deno run -A cli.ts …`, `bun cli.ts …` and under Node. Results go to
 * stdout (for `call`, exactly one JSON document), everything else to stderr;
 * exit codes are 0 ok, 1 failure, 2 usage error.
 *
 * @module
 */

import { didYouMean } from "../host/suggest.ts";
import { commandHelp, commonFlags, parseCommand, UsageError } from "./_args.ts";
import { expandAdminFlag, ServeAdmin } from "./_admin.ts";
import { ControlError } from "./_control.ts";
import { runDemo } from "./_demo.ts";
import { securityCommands } from "./_integrity.ts";
import { runNew, runTest } from "./_authors.ts";
import { Output } from "./_output.ts";
import { packageVersion } from "./_paths.ts";
import { type CommandName, commands, mainHelp, program } from "./_commands.ts";
import { call, CliFailure, ls, serve } from "./_local.ts";
import { remote, socketOf } from "./_remote.ts";

/** The package version, for --version. */
export const version: string = packageVersion;

async function run(out: Output, command: CommandName, argv: string[]): Promise<number> {
  const spec = commands[command];
  const { values, positionals } = parseCommand(spec, "admin" in spec.flags ? expandAdminFlag(argv) : argv);
  if (values.help) {
    out.result(commandHelp(program, spec));
    return 0;
  }
  if (values.version) {
    out.result(version);
    return 0;
  }
  switch (command) {
    case "call":
      return await call(out, positionals, values);
    case "ls":
      return await ls(out, positionals, values);
    case "serve":
      return await serve(out, positionals, values);
    case "demo":
      return await runDemo(out, {
        exit: Boolean(values.exit),
        socket: socketOf(values),
        admin: ServeAdmin.fromFlags(values, "demo", out),
      });
    case "lock":
    case "sign":
    case "audit":
      return await securityCommands[command].run(out, positionals, values);
    case "new":
      return runNew(out, positionals, values);
    case "test":
      return await runTest(out, positionals);
    default:
      return await remote(out, command, positionals, values);
  }
}

/**
 * Runs the CLI with `argv` (without the runtime and script) and returns the
 * exit code; everything written is flushed before it returns.
 */
export async function main(argv: string[], out: Output = new Output()): Promise<number> {
  const code = await dispatch(argv, out);
  await out.flush();
  return code;
}

async function dispatch(argv: string[], out: Output): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    out.error(`no command given\n\n${mainHelp()}`);
    return 2;
  }
  if (command === "-h" || command === "--help" || command === "help") {
    if (rest[0] && rest[0] in commands) return await run(out, rest[0] as CommandName, ["--help"]);
    out.result(mainHelp());
    return 0;
  }
  if (command === "--version") {
    out.result(version);
    return 0;
  }
  if (!Object.hasOwn(commands, command)) {
    const names = Object.keys(commands);
    const flagHint = command.startsWith("-") ? ` (flags go after the command; ${program} --help lists them)` : "";
    const flags = Object.keys(commonFlags).map((f) => `--${f}`);
    out.error(
      `unknown command "${command}"${didYouMean(command, [...names, ...flags])}${flagHint}\n` +
        `commands: ${names.join(", ")}; "${program} --help" explains them`,
    );
    return 2;
  }
  try {
    return await run(out, command as CommandName, rest);
  } catch (error) {
    if (error instanceof UsageError) {
      out.error(
        `${error.message}\n${
          out.dim(
            `usage: ${program} ${command} ${
              commands[command as CommandName].synopsis
            } — see ${program} ${command} --help`,
          )
        }`,
      );
      return 2;
    }
    const e = error as Error;
    out.error(e instanceof CliFailure || e instanceof ControlError ? e.message : `${e.name}: ${e.message}`);
    return 1;
  }
}
