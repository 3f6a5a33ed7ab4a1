/**
 * The host's typed event bus. A listener that throws is isolated: its error
 * goes to the "listener-error" listeners (or stderr), and the host and the
 * plugin it listens to carry on.
 *
 * @module
 */

import type { HostEvents } from "./types.ts";

/** Listeners per event type. */
export class EventBus {
  readonly #listeners = new Map<keyof HostEvents, Set<(event: never) => void>>();

  on<K extends keyof HostEvents>(type: K, listener: (event: HostEvents[K]) => void): () => void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, set = new Set());
    set.add(listener as (event: never) => void);
    return () => void set.delete(listener as (event: never) => void);
  }

  /** True when someone listens to `type`: lets callers skip building an event nobody reads. */
  has(type: keyof HostEvents): boolean {
    return (this.#listeners.get(type)?.size ?? 0) > 0;
  }

  emit<K extends keyof HostEvents>(type: K, event: HostEvents[K]): void {
    const set = this.#listeners.get(type);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as (event: HostEvents[K]) => void)(event);
      } catch (error) {
        this.#reportListenerError(type, error);
      }
    }
  }

  #reportListenerError(type: keyof HostEvents, error: unknown): void {
    const set = this.#listeners.get("listener-error");
    if (type !== "listener-error" && set?.size) {
      this.emit("listener-error", { type, error });
      return;
    }
    console.error(`plugin-shm: a "${type}" listener threw; the host carries on:`, error);
  }
}
