/**
 * The admin token: from PLUGIN_SHM_ADMIN_TOKEN, or read from a file only its
 * owner can read, or generated into such a file on first use.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { AdminError } from "./errors.ts";

/** The environment variable that sets the admin token. */
export const adminTokenEnv = "PLUGIN_SHM_ADMIN_TOKEN";
/** Shortest token accepted: anything shorter can be guessed. */
export const adminTokenCharsMin = 16;

/** Where the token came from. */
export interface AdminToken {
  /** The bearer token. */
  token: string;
  /** Where it came from: the environment variable, the token file, or generated now (and written to the file). */
  source: "env" | "file" | "generated";
  /** The token file, unless the token came from the environment. */
  file?: string;
}

/** The default token file: `$XDG_STATE_HOME/plugin-shm/admin-token` (or under ~/.local/state). */
export function defaultTokenFile(): string {
  const state = process.env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(state, "plugin-shm", "admin-token");
}

/**
 * The admin token, from the environment, then `file`, else freshly generated
 * (32 random bytes, base64url) and written to `file` with mode 0600.
 *
 * @example
 * ```ts ignore
 * import { resolveAdminToken } from "./token.ts";
 * const { token, file } = resolveAdminToken({ file: "/tmp/my-admin-token" });
 * console.log(`token in ${file}`);
 * ```
 */
export function resolveAdminToken(
  options: { env?: Record<string, string | undefined>; file?: string } = {},
): AdminToken {
  const fromEnv = (options.env ?? process.env)[adminTokenEnv];
  if (fromEnv) {
    if (fromEnv.length < adminTokenCharsMin) {
      throw new AdminError(
        "token_too_short",
        `${adminTokenEnv} has ${fromEnv.length} characters; use at least ${adminTokenCharsMin} random ones ` +
          `(e.g. openssl rand -base64 32)`,
      );
    }
    return { token: fromEnv, source: "env" };
  }
  const file = options.file ?? defaultTokenFile();
  if (existsSync(file)) {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) {
      throw new AdminError(
        "token_file_insecure",
        `Admin token file ${file} has mode ${mode.toString(8)}: others can read it; run chmod 600 ${file} ` +
          `or delete it to have a new token generated`,
      );
    }
    const token = readFileSync(file, "utf8").trim();
    if (token.length < adminTokenCharsMin) {
      throw new AdminError(
        "token_too_short",
        `Admin token file ${file} holds a token shorter than ${adminTokenCharsMin} characters; delete it to have one generated`,
      );
    }
    return { token, source: "file", file };
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString("base64url");
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(file, 0o600); // The umask may have narrowed it further, never widened: make it exact.
  return { token, source: "generated", file };
}
