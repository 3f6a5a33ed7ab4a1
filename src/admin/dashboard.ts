/**
 * The dashboard: one HTML page with its script and styles inline, no build
 * step. It holds no data; it asks for the token and then talks to the API.
 *
 * @module
 */

import { existsSync, readFileSync } from "node:fs";

let cached: string | undefined;

/**
 * The dashboard page: next to this module when run from source (Deno, Bun),
 * or from the sources beside dist/ when run compiled (Node), since tsc copies
 * no HTML.
 */
export function dashboardHtml(): string {
  if (cached !== undefined) return cached;
  const beside = new URL("./dashboard.html", import.meta.url);
  const source = new URL("../../../src/admin/dashboard.html", import.meta.url);
  cached = readFileSync(existsSync(beside) ? beside : source, "utf8");
  return cached;
}
