/**
 * Manifest v2 `permissions` and `limits`: the zod fragments plugin.json is
 * validated with. They live in the host layer because the manifest does (the
 * host may not import security/); src/security/permissions.ts re-exports them
 * and maps the grants to a sandbox launch plan.
 *
 * @module
 */

import { isAbsolute } from "node:path";
import { z } from "zod";

/** Most entries one grant list may hold (the launcher's own bound is 128 paths, 64 ports). */
export const grantEntriesMax = 32;
/** Smallest memory limit that still lets a runtime start. */
export const memoryMiBMin = 64;

const pathList = z.array(z.string().min(1)).max(grantEntriesMax);
const netEntry = z.string().regex(
  /^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$/,
  'a net grant is "host:port" (the sandbox confines TCP by port), e.g. "127.0.0.1:8080"',
);

/** What a manifest grants. A v1 manifest (no `permissions`) grants nothing. */
export interface Permissions {
  /** Paths the plugin may read (files or directories). */
  read?: string[];
  /** Paths the plugin may write (and read). */
  write?: string[];
  /** "host:port" the plugin may connect to and bind (TCP, confined by port). */
  net?: string[];
  /** Names of host environment variables the plugin gets. */
  env?: string[];
  /** Absolute paths of programs the plugin may execute. */
  run?: string[];
  /** Host functions the plugin may call. */
  hostFunctions?: string[];
  /** Other plugins the plugin may call. */
  plugins?: string[];
}

/** Resource limits from the manifest. */
export interface Limits {
  /** Hard memory budget, MiB. */
  memoryMiB?: number;
  /** Soft memory budget, MiB: above it the plugin is paused. */
  memorySoftMiB?: number;
  /** Most processes and threads (RLIMIT_NPROC, counted per user). */
  processesMax?: number;
  /** Most open file descriptors. */
  openFilesMax?: number;
}

/** `permissions` in plugin.json: what a plugin may touch. Absent (a v1 manifest) grants nothing. */
export const permissionsSchema: z.ZodType<Permissions> = z.object({
  read: pathList.optional(),
  write: pathList.optional(),
  net: z.array(netEntry).max(grantEntriesMax).optional(),
  env: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an env grant is a variable name")).max(grantEntriesMax)
    .optional(),
  run: z.array(z.string().refine(isAbsolute, "a run grant is an absolute path to a program")).max(grantEntriesMax)
    .optional(),
  hostFunctions: z.array(z.string().min(1)).max(grantEntriesMax).optional(),
  plugins: z.array(z.string().min(1)).max(grantEntriesMax).optional(),
}).strict();

/** `limits` in plugin.json: resource limits of the plugin process. */
export const limitsSchema: z.ZodType<Limits> = z.object({
  memoryMiB: z.number().int().min(memoryMiBMin).optional(),
  memorySoftMiB: z.number().int().min(memoryMiBMin).optional(),
  processesMax: z.number().int().min(1).optional(),
  openFilesMax: z.number().int().min(16).optional(),
}).strict().refine(
  (l) => l.memoryMiB === undefined || l.memorySoftMiB === undefined || l.memorySoftMiB <= l.memoryMiB,
  "limits.memorySoftMiB must not exceed limits.memoryMiB",
);
