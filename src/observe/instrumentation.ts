/**
 * The hook the host's call path invokes around every call (CONTRACTS.md).
 * Defined here until the host exports its own; the shapes are identical, so
 * an implementation of this interface is accepted by the host's option.
 *
 * @module
 */

/**
 * Called by the host around each call: `begin` when the call is routed, `end`
 * when it settles, with whatever `begin` returned and the error if it failed.
 * Both run on the call path, so implementations must do as little as possible.
 */
export interface CallInstrumentation {
  /** Called when a call is routed to `plugin`; what it returns is handed to `end` (a start time, say). */
  begin(plugin: string, method: string): unknown;
  /** Called once when that call settles: `state` is what `begin` returned, `error` is set when the call failed. */
  end(plugin: string, method: string, state: unknown, error?: unknown): void;
}
