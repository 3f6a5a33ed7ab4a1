/**
 * The plugin-shm command line: `deno run -A cli.ts --help` or `bun cli.ts --help`.
 *
 * @module
 */

import process from "node:process";
import { main } from "./src/cli/cli.ts";

process.exit(await main(process.argv.slice(2)));
