#!/usr/bin/env node
// The `plugin-shm` command for `npx`, `bunx` and `bunx --bun`: Bun and Deno run
// the TypeScript sources, Node (which runs no TypeScript) the compiled copy in dist/.
// Both are the same CLI as `deno run -A cli.ts`.
if ("Bun" in globalThis || "Deno" in globalThis) await import("../cli.ts");
else await import("../dist/cli.js");
