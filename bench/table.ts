/**
 * Prints benchmark JSON lines (any bench's `--json` output) as the same table
 * the benches print themselves, so `make bench` can keep the rows for the
 * charts and still show them:
 *
 *     deno run -A bench/table.ts .scratch/rpc_deno.jsonl …
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import { type BenchRow, printRows } from "./_stats.ts";

for (const file of process.argv.slice(2)) {
  const rows = readFileSync(file, "utf8").split("\n").filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as BenchRow);
  console.log(`\n${file}`);
  printRows(rows, false);
}
