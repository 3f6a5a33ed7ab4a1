/**
 * `cli.ts new`: writes a plugin that runs and passes its own test at once —
 * a manifest with an empty `permissions` block (the plugin asks for nothing
 * yet; a sandboxed host grants nothing else) and an example `config` schema,
 * a source importing the SDK by package name, a test on plugin-shm/testing
 * for the runtime's own test runner, and a README. `cli.ts test` finds and
 * runs a plugin's tests under its runtime.
 *
 * @module
 */

import { existsSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { runtimeBinary } from "../host/launch_plan.ts";
import { loadManifest, type PluginRuntime, runtimes } from "../host/manifest.ts";
import { ScaffoldError } from "./errors.ts";

const nameRule = /^[a-z][a-z0-9-]{0,62}$/;

/** What {@link scaffoldPlugin} takes. */
export interface ScaffoldOptions {
  /** Runtime of the plugin; default "deno". */
  runtime?: PluginRuntime;
  /** Where to write it; default `./<name>`. Must not exist or be empty. */
  dir?: string;
  /**
   * The plugin-shm package to link as `node_modules/plugin-shm` when the
   * target directory does not already resolve one (an offline link to the
   * package this CLI runs from; `npm install` replaces it with the registry's).
   */
  packageRoot: string;
  /** Its version, for the package.json dependency range. */
  packageVersion: string;
}

/** What {@link scaffoldPlugin} wrote. */
export interface Scaffolded {
  dir: string;
  runtime: PluginRuntime;
  /** Paths relative to `dir`. */
  files: string[];
  /** Where node_modules/plugin-shm points, or undefined if the project already had one. */
  linked?: string;
}

function checkName(name: string): void {
  if (typeof name !== "string" || !nameRule.test(name)) {
    throw new ScaffoldError(
      "bad_name",
      `Plugin name ${JSON.stringify(name)} is not allowed: use lowercase letters, digits and dashes, ` +
        `starting with a letter (at most 63), e.g. "my-plugin"`,
    );
  }
}

function checkRuntime(runtime: string): PluginRuntime {
  if (!(runtimes as readonly string[]).includes(runtime)) {
    throw new ScaffoldError("bad_runtime", `Runtime "${runtime}" is not one of ${runtimes.join(", ")}`);
  }
  return runtime as PluginRuntime;
}

/** The nearest node_modules/plugin-shm at or above `dir`, if any. */
function resolvablePackage(dir: string): string | undefined {
  for (let at = dir;; at = dirname(at)) {
    const candidate = join(at, "node_modules", "plugin-shm", "package.json");
    if (existsSync(candidate)) return dirname(candidate);
    if (dirname(at) === at) return undefined;
  }
}

/** The @types/node the package at `root` resolves (its own node_modules or the project's around it). */
function nodeTypesNear(root: string): string | undefined {
  for (let at = root;; at = dirname(at)) {
    const candidate = join(at, "node_modules", "@types", "node");
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(at) === at) return undefined;
  }
}

/**
 * Writes a new plugin named `name`. Throws a {@link ScaffoldError} for a bad
 * name or runtime, or a target directory that exists and is not empty.
 *
 * @example
 * ```ts
 * import { mkdtempSync, rmSync } from "node:fs";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { scaffoldPlugin } from "./scaffold.ts";
 * const dir = join(mkdtempSync(join(tmpdir(), "pshm-new-")), "hello");
 * const made = scaffoldPlugin("hello", { dir, packageRoot: ".", packageVersion: "0.1.0" });
 * console.assert(made.files.includes("plugin.json"));
 * rmSync(join(dir, ".."), { recursive: true });
 * ```
 */
export function scaffoldPlugin(name: string, options: ScaffoldOptions): Scaffolded {
  checkName(name);
  const runtime = checkRuntime(options.runtime ?? "deno");
  const dir = resolve(options.dir ?? name);
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new ScaffoldError("not_empty", `${dir} is a file; pick another --dir`);
    const entries = readdirSync(dir);
    if (entries.length) {
      throw new ScaffoldError(
        "not_empty",
        `${dir} is not empty (${entries.slice(0, 3).join(", ")}${entries.length > 3 ? ", …" : ""}); ` +
          `pick another --dir or an empty directory, so nothing of yours is overwritten`,
      );
    }
  }
  const files = templates(name, runtime, options.packageVersion);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  let linked: string | undefined;
  if (!resolvablePackage(dir)) {
    linked = resolve(options.packageRoot);
    mkdirSync(join(dir, "node_modules"), { recursive: true });
    symlinkSync(relative(join(dir, "node_modules"), linked) || ".", join(dir, "node_modules", "plugin-shm"), "dir");
    if (runtime === "deno") writeFileSync(join(dir, "deno.json"), denoConfig());
    // Deno type-checks the test against the package's .d.ts, which reference Node's types.
    const nodeTypes = nodeTypesNear(linked);
    if (nodeTypes) {
      mkdirSync(join(dir, "node_modules", "@types"), { recursive: true });
      symlinkSync(
        relative(join(dir, "node_modules", "@types"), nodeTypes),
        join(dir, "node_modules", "@types", "node"),
      );
    }
  }
  return { dir, runtime, files: Object.keys(files), linked };
}

/** The test files of a plugin directory: `*_test.{ts,mts,js,mjs}` and `*.test.*`, outside node_modules. */
export function pluginTestFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/[._]test\.(ts|mts|js|mjs)$/.test(entry.name)) found.push(path);
    }
  };
  walk(dir);
  return found.sort();
}

/** How to run a plugin's tests: the program, its arguments and the directory to run them in. */
export interface TestCommand {
  command: string;
  args: string[];
  cwd: string;
  runtime: PluginRuntime;
  files: string[];
}

/**
 * The command that runs the plugin in `dir`'s tests under its runtime's own
 * runner (`deno test -A`, `bun test`, `node --test`). Throws a
 * {@link ScaffoldError} "no_tests" when it has none, and the manifest's
 * ManifestError when it is not a plugin.
 */
export function pluginTestCommand(dir: string): TestCommand {
  const manifest = loadManifest(dir);
  const files = pluginTestFiles(manifest.dir);
  if (files.length === 0) {
    throw new ScaffoldError(
      "no_tests",
      `Plugin "${manifest.name}" in ${manifest.dir} has no tests (files named *_test.ts or *.test.ts); ` +
        `"cli.ts new" shows one that uses plugin-shm/testing`,
    );
  }
  const rel = files.map((f) => `./${relative(manifest.dir, f)}`);
  const runtime = manifest.runtime;
  const command = runtimeBinary(runtime);
  const args = runtime === "deno" ? ["test", "-A", ...rel] : runtime === "bun" ? ["test", ...rel] : ["--test", ...rel];
  return { command, args, cwd: manifest.dir, runtime, files };
}

function manifestFor(name: string, runtime: PluginRuntime): string {
  return `${
    JSON.stringify(
      {
        name,
        version: "0.1.0",
        runtime,
        entry: runtime === "node" ? "main.mjs" : "main.ts",
        description: `The ${name} plugin.`,
        permissions: {},
        config: {
          type: "object",
          properties: {
            greeting: { type: "string", default: "Hello", description: "How greet() starts its answer" },
          },
          additionalProperties: false,
        },
      },
      null,
      2,
    )
  }\n`;
}

const sourceTs = (name: string) =>
  `import { definePlugin } from "plugin-shm/plugin";

/** The ${name} plugin. Its config (plugin.json "config") arrives in this.config, checked by the host. */
export default definePlugin({
  name: "${name}",
  version: "0.1.0",
  methods: {
    greet(who: string): string {
      return \`\${this.config.greeting}, \${who}!\`;
    },
  },
  onStart() {
    console.log(\`${name} started with greeting \${JSON.stringify(this.config.greeting)}\`);
  },
});
`;

const sourceMjs = (name: string) =>
  `import { definePlugin } from "plugin-shm/plugin";

/** The ${name} plugin. Its config (plugin.json "config") arrives in this.config, checked by the host. */
export default definePlugin({
  name: "${name}",
  version: "0.1.0",
  methods: {
    /** @param {string} who */
    greet(who) {
      return \`\${this.config.greeting}, \${who}!\`;
    },
  },
  onStart() {
    console.log(\`${name} started with greeting \${JSON.stringify(this.config.greeting)}\`);
  },
});
`;

function testSource(name: string, runtime: PluginRuntime): string {
  const runner = runtime === "deno"
    ? `const test = Deno.test;\n`
    : runtime === "bun"
    ? `import { test } from "bun:test";\n`
    : `import { test } from "node:test";\n`;
  const typed = runtime === "node" ? "" : `<typeof plugin.methods>`;
  const typeImport = runtime === "node" ? "" : `import type plugin from "./main.ts";\n`;
  return `import assert from "node:assert/strict";
import { startPlugin } from "plugin-shm/testing";
${typeImport}${runner}
// startPlugin() runs the plugin in its own process over shared memory, as a host would.
const here = new URL(".", import.meta.url);

test("greet() answers with the default greeting", async () => {
  const ${camel(name)} = await startPlugin${typed}(here);
  try {
    assert.equal(await ${camel(name)}.client.greet("Ada"), "Hello, Ada!");
    await ${camel(name)}.waitForLog("started with greeting");
  } finally {
    await ${camel(name)}.close(); // Stops the process; throws if anything is left behind.
  }
});

test("greet() uses the configured greeting", async () => {
  const ${camel(name)} = await startPlugin${typed}(here, { config: { greeting: "Hi" } });
  try {
    assert.equal(await ${camel(name)}.client.greet("Bob"), "Hi, Bob!");
  } finally {
    await ${camel(name)}.close();
  }
});
`;
}

/**
 * Deno reads a linked checkout's TypeScript sources by these names: through
 * the link its declaration files are local files, whose ".ts" specifiers
 * Deno does not map to ".d.ts" as it does inside an installed npm package.
 */
function denoConfig(): string {
  const at = (file: string) => `./node_modules/plugin-shm/${file}`;
  const imports = {
    "plugin-shm": at("mod.ts"),
    "plugin-shm/plugin": at("plugin.ts"),
    "plugin-shm/testing": at("testing.ts"),
  };
  return `${JSON.stringify({ imports }, null, 2)}\n`;
}

function camel(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function readme(name: string, runtime: PluginRuntime): string {
  const ext = runtime === "node" ? "mjs" : "ts";
  return `# ${name}

A plugin-shm plugin running on ${runtime}. Files:

- \`plugin.json\`: who the plugin is, what it may touch (\`permissions\`, empty: nothing beyond its own files; add
  grants such as \`"net": ["api.example.com:443"]\` or \`"hostFunctions": ["now"]\` as it needs them) and the JSON
  Schema of its settings (\`config\`).
- \`main.${ext}\`: the plugin; it imports the SDK as \`plugin-shm/plugin\`.
- \`main_test.${ext}\`: its test, on \`plugin-shm/testing\` (a real process over shared memory, fake host functions,
  captured logs and events, config injection).

Run the tests:

\`\`\`sh
cli.ts test .
\`\`\`

Call it from a host:

\`\`\`sh
cli.ts call ./ greet '["Ada"]'
\`\`\`

\`node_modules/plugin-shm\` may be a link to the plugin-shm that created this plugin; \`npm install\` replaces it with
the registry's (see package.json).
`;
}

function templates(name: string, runtime: PluginRuntime, version: string): Record<string, string> {
  const ext = runtime === "node" ? "mjs" : "ts";
  return {
    "plugin.json": manifestFor(name, runtime),
    [`main.${ext}`]: runtime === "node" ? sourceMjs(name) : sourceTs(name),
    [`main_test.${ext}`]: testSource(name, runtime),
    "README.md": readme(name, runtime),
    "package.json": `${
      JSON.stringify(
        {
          name,
          version: "0.1.0",
          private: true,
          type: "module",
          dependencies: { "plugin-shm": `^${version}` },
          // Deno type-checks against the package's .d.ts, which reference Node's types.
          devDependencies: { "@types/node": "^20" },
        },
        null,
        2,
      )
    }\n`,
    ".gitignore": "node_modules/\n",
  };
}
