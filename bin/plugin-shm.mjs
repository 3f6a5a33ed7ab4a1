#!/usr/bin/env node
// The `plugin-shm` command for `npx`, `bunx` and `deno run -A npm:plugin-shm`:
// Bun runs the TypeScript sources; Node and Deno (which strips no types under
// node_modules) the compiled copy in dist/. All are the same CLI as
// `deno run -A cli.ts` in a checkout.
if ("Bun" in globalThis) await import("../cli.ts");
else await import("../dist/cli.js");
