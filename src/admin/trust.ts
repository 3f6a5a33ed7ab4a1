/**
 * What the dashboard's trust column says about each plugin: the outcome of
 * the last check of the host's verifier (integrity lock, signature), kept by
 * wrapping that verifier. The host knows nothing of it: it is handed the
 * wrapped verifier like any other.
 *
 * @module
 */

import type { PluginVerifier, VerifyResult } from "../host/types.ts";
import type { Manifest } from "../host/manifest.ts";

/** The outcome of the last check of one plugin. */
export interface TrustStatus {
  /** "verified": every check passed; "warned": a check failed in warn mode; "refused": not started. */
  outcome: "verified" | "warned" | "refused";
  /** One line for the table: who signed, the tree digest, the warning or the refusal's code. */
  summary: string;
  /** ms since the epoch. */
  at: number;
}

/** What the security verifier adds to the host's VerifyResult (read, never required). */
interface VerifyDetails extends VerifyResult {
  digest?: string;
  signedBy?: { kind: "key"; keyId: string } | { kind: "identity"; issuer: string; subject: string };
  warnings?: string[];
}

function summarize(result: VerifyDetails | undefined): Omit<TrustStatus, "at"> {
  if (result?.warnings?.length) return { outcome: "warned", summary: `warned: ${result.warnings[0]}` };
  const signer = result?.signedBy;
  if (signer) {
    return {
      outcome: "verified",
      summary: `signed by ${signer.kind === "key" ? `key ${signer.keyId}` : signer.subject}`,
    };
  }
  if (result?.digest) return { outcome: "verified", summary: `locked ${result.digest.slice(0, 19)}…` };
  return { outcome: "verified", summary: "allowed (no check configured)" };
}

/**
 * Keeps the outcome of every check a verifier makes, for the admin app's
 * `trust` option.
 *
 * @example
 * ```ts ignore
 * import { PluginHost } from "../../mod.ts";
 * import { createVerifier } from "../security/verifier.ts";
 * import { createAdminApp } from "./app.ts";
 * import { TrustTracker } from "./trust.ts";
 * const trust = new TrustTracker();
 * const host = new PluginHost({ dirs: ["plugins"], verifier: trust.wrap(createVerifier({ integrity: "require" })) });
 * const app = createAdminApp(host, { token: "a-long-random-token-string", trust: (name) => trust.summary(name) });
 * ```
 */
export class TrustTracker {
  #byPlugin = new Map<string, TrustStatus>();

  /** `verifier`, whose every answer (or refusal) is kept before it goes to the host. */
  wrap(verifier: PluginVerifier): PluginVerifier {
    const keep = (name: string, status: Omit<TrustStatus, "at">) =>
      this.#byPlugin.set(name, { ...status, at: Date.now() });
    const refused = (name: string, error: unknown): never => {
      const code = (error as { code?: unknown })?.code;
      keep(name, { outcome: "refused", summary: `refused (${typeof code === "string" ? code : "error"})` });
      throw error;
    };
    return {
      verify(manifest: Manifest): Promise<VerifyResult> | VerifyResult {
        let answer: Promise<VerifyResult> | VerifyResult;
        try {
          answer = verifier.verify(manifest);
        } catch (error) {
          return refused(manifest.name, error);
        }
        if (answer instanceof Promise) {
          return answer.then((result) => {
            keep(manifest.name, summarize(result));
            return result;
          }, (error) => refused(manifest.name, error));
        }
        keep(manifest.name, summarize(answer));
        return answer;
      },
    };
  }

  /** The last check of plugin `name`, or undefined if it was never checked. */
  status(name: string): TrustStatus | undefined {
    return this.#byPlugin.get(name);
  }

  /** The last check of plugin `name` as one line, or null if it was never checked. */
  summary(name: string): string | null {
    return this.#byPlugin.get(name)?.summary ?? null;
  }
}
