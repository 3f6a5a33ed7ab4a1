/**
 * The CLI's commands: names, flags and help text (read by cli.ts to parse and
 * dispatch, and by --help).
 *
 * @module
 */

import { type CommandSpec, exitCodesHelp } from "./_args.ts";
import { adminFlags } from "./_admin.ts";
import { defaultSocketPath } from "./_control.ts";
import { securityCommands, securityFlags } from "./_integrity.ts";
import { authorCommands } from "./_authors.ts";

/** How the CLI names itself in usage lines. */
export const program = "cli.ts";

const transports = ["shm", "unix", "tcp"] as const;
const socketFlag = {
  type: "string",
  value: "path",
  description: `control socket of the serve (default ${defaultSocketPath()})`,
} as const;

/** Every command, by name. */
export const commands = {
  serve: {
    name: "serve",
    summary: "Load every valid plugin found and serve until Ctrl-C, SIGTERM or `cli.ts stop`.",
    synopsis: "[dir…]",
    positionalsMin: 0,
    positionalsMax: Infinity,
    flags: {
      transport: { type: "string", value: "kind", choices: transports, description: "shm (default), unix or tcp" },
      watch: { type: "boolean", description: "reload a plugin when its files change (development mode)" },
      inspect: {
        type: "string",
        multiple: true,
        value: "plugin[:port]",
        description: "start <plugin> under its runtime's inspector (loopback; a free port, or :port) and print the " +
          "URL for Chrome DevTools / VS Code; it is never killed as stalled (repeatable)",
      },
      "blame-stalls": {
        type: "boolean",
        description: "before killing a stalled Deno/Node plugin, profile it and name the busy functions (see " +
          "docs/debugging.md: this opens a loopback inspector port per plugin)",
      },
      "profile-dir": { type: "string", value: "dir", description: "where --blame-stalls saves .cpuprofile files" },
      socket: socketFlag,
      ...adminFlags,
      ...securityFlags,
    },
    details: `Each dir is a plugin directory (with a plugin.json) or holds plugin directories; relative dirs
resolve against the current directory. Without one the bundled examples are served.
Crashed plugins restart with backoff; after 5 crashes in a minute a plugin stays down until
"cli.ts restart <name>". Lifecycle changes and plugin output go to stderr.
Debugging (docs/debugging.md): "serve --inspect kv" prints a devtools:// URL to open in Chrome and a
port for VS Code's "attach"; "--inspect kv:9229" picks the port. A plugin paused at a breakpoint is
reported unresponsive but not killed.`,
  },
  call: {
    name: "call",
    summary: "Start a plugin, call one method, print the result as one JSON document on stdout.",
    synopsis: "<plugin|dir> <method> [json-args]",
    positionalsMin: 2,
    positionalsMax: 3,
    flags: {
      dir: {
        type: "string",
        value: "dir",
        multiple: true,
        description: "where to look for <plugin> by name (repeatable)",
      },
      transport: { type: "string", value: "kind", choices: transports, description: "shm (default), unix or tcp" },
      ...securityFlags,
    },
    details: `<plugin|dir>: a name is looked up in --dir (default: the bundled examples); anything with a
"/" (./kv, ../plugins/kv, /abs/kv) is a plugin directory, relative to the current directory.
json-args: a JSON array of arguments, or one JSON value. The result is printed as JSON (null for
nothing), so "| jq" works; plugin output goes to stderr.
Example: cli.ts call echo add '[2, 3]'`,
  },
  ls: {
    name: "ls",
    summary: "List plugins and validate each fully; exits 1 listing every problem (file and field).",
    synopsis: "[dir…]",
    positionalsMin: 0,
    positionalsMax: Infinity,
    flags: {
      json: { type: "boolean", description: "print {plugins, problems} as JSON on stdout" },
      lock: securityFlags.lock,
      trust: securityFlags.trust,
    },
    details: `Checks every manifest field, that each entry file exists and that plugin names are unique.
With a lock (--lock, or plugin-shm.lock in the first dir) or --trust, each plugin also gets a
trust line: locked / changed / unlocked, who signed it, verified or why not.`,
  },
  status: {
    name: "status",
    summary: "Show the plugins of a running serve: state, pids, crashes, last lifecycle change.",
    synopsis: "",
    positionalsMin: 0,
    positionalsMax: 0,
    flags: { socket: socketFlag, json: { type: "boolean", description: "print JSON on stdout" } },
  },
  reload: {
    name: "reload",
    summary: "Hot-reload a plugin of a running serve: new instance, state handed over, no call fails.",
    synopsis: "<plugin>",
    positionalsMin: 1,
    positionalsMax: 1,
    flags: { socket: socketFlag },
  },
  restart: {
    name: "restart",
    summary: "Restart a plugin of a running serve (also one that failed after a crash loop).",
    synopsis: "<plugin>",
    positionalsMin: 1,
    positionalsMax: 1,
    flags: { socket: socketFlag },
  },
  stop: {
    name: "stop",
    summary: "Stop one plugin of a running serve, or without <plugin> the serve itself (gracefully).",
    synopsis: "[plugin]",
    positionalsMin: 0,
    positionalsMax: 1,
    flags: { socket: socketFlag },
  },
  logs: {
    name: "logs",
    summary: "Print a running serve's recent plugin output and lifecycle changes.",
    synopsis: "[plugin]",
    positionalsMin: 0,
    positionalsMax: 1,
    flags: {
      socket: socketFlag,
      lines: { type: "string", short: "n", value: "count", description: "how many recent lines (default 50)" },
      follow: { type: "boolean", short: "f", description: "keep printing new lines until Ctrl-C" },
    },
  },
  demo: {
    name: "demo",
    summary: "Tell the product's story on this machine in under a minute, then keep serving until Ctrl-C.",
    synopsis: "",
    positionalsMin: 0,
    positionalsMax: 0,
    flags: {
      exit: { type: "boolean", description: "exit after the story instead of serving" },
      socket: socketFlag,
      ...adminFlags,
    },
    details: "Numbers are from this machine, as loaded as it is now; `make bench` measures properly.",
  },
  ...securityCommands,
  ...authorCommands,
} satisfies Record<string, CommandSpec>;

/** A command's name. */
export type CommandName = keyof typeof commands;

/** The help for `cli.ts --help`: every command on one line. */
export function mainHelp(): string {
  const rows = Object.values(commands).map((c) => `  ${c.name.padEnd(8)} ${c.summary}`);
  return [
    "plugin-shm — run plugins in their own processes, talk over shared memory",
    "",
    `Usage: ${program} <command> [arguments] [flags]`,
    "",
    "Commands:",
    ...rows,
    "",
    "Flags everywhere: -h, --help   --version",
    `"${program} <command> --help" shows a command's arguments and flags.`,
    "Results go to stdout, logs and plugin output to stderr; colour only on a terminal, never with NO_COLOR.",
    exitCodesHelp,
  ].join("\n");
}
