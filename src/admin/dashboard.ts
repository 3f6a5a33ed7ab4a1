/**
 * The dashboard: one HTML page with its script and styles inline, no build
 * step. It holds no data; it asks for the token and then talks to the API.
 *
 * @module
 */

import { readFileSync } from "node:fs";

let cached: string | undefined;

/** The dashboard page. */
export function dashboardHtml(): string {
  cached ??= readFileSync(new URL("./dashboard.html", import.meta.url), "utf8");
  return cached;
}
