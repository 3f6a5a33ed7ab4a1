/**
 * The serving side of an RpcPeer: requests from the other side, their
 * handlers, deadlines and cancellation, and the RESPONSE or ERROR that
 * answers each. Private to the protocol folder.
 *
 * @module
 */

import { clearTimeout, setTimeout } from "node:timers";
import { CancelledError, DeadlineExceededError } from "./errors.ts";
import { FrameKind, type FrameKindValue } from "./frame.ts";
import { validateRequest } from "./_payload.ts";
import type { FrameLink } from "./_rpc_link.ts";
import { errorPayload, isThenable, ServedCall } from "./_rpc_state.ts";
import type { Handler } from "./rpc.ts";

/** The requests from the other side that one RpcPeer is serving. */
export class IncomingCalls {
  readonly #served = new Map<number, ServedCall>();

  constructor(readonly link: FrameLink, readonly handlers: Record<string, Handler>) {}

  /** Requests being served now. */
  get size(): number {
    return this.#served.size;
  }

  onRequest(id: number, bytes: Uint8Array): void {
    const link = this.link;
    let method: string, args: unknown[], deadlineMs: number | null, traceparent: string | undefined;
    try {
      ({ method, args, deadlineMs, traceparent } = validateRequest(link.decode(bytes)));
    } catch (error) {
      link.send(FrameKind.error, id, { code: "bad_request", message: (error as Error).message, stack: "" });
      return;
    }
    if (link.peer.localDraining) {
      link.send(FrameKind.error, id, {
        code: "draining",
        message: `${method}: this side is draining (it sent GOODBYE) and takes no new requests; retry elsewhere`,
        stack: "",
      });
      return;
    }
    const handler = this.handlers[method];
    if (!handler) {
      const known = Object.keys(this.handlers).join(", ") || "none";
      link.send(FrameKind.error, id, {
        code: "method_not_found",
        message: `No method "${method}"; available: ${known}`,
        stack: "",
      });
      return;
    }
    this.#serve(id, handler, args, deadlineMs, traceparent);
  }

  #serve(id: number, handler: Handler, args: unknown[], deadlineMs: number | null, traceparent?: string): void {
    const served = new ServedCall(this.link.peer, traceparent);
    this.#served.set(id, served);
    if (deadlineMs !== null && deadlineMs !== undefined) {
      served.timer = setTimeout(
        () => served.abort(new DeadlineExceededError(`deadline of ${deadlineMs} ms passed`)),
        deadlineMs,
      );
    }
    try {
      const result = handler(args, served);
      if (isThenable(result)) {
        result.then(
          (value) => this.#finish(id, served, FrameKind.response, value),
          (error) => this.#finish(id, served, FrameKind.error, errorPayload(error)),
        );
      } else {
        this.#finish(id, served, FrameKind.response, result);
      }
    } catch (error) {
      this.#finish(id, served, FrameKind.error, errorPayload(error));
    }
  }

  /** Answers a served request, unless it was cancelled: the caller has moved on. */
  #finish(id: number, served: ServedCall, kind: FrameKindValue, payload: unknown): void {
    if (served.timer) clearTimeout(served.timer);
    const current = this.#served.get(id) === served;
    if (current) this.#served.delete(id);
    const link = this.link;
    if (!current || served.aborted || link.closed) return;
    const frame = link.encode(kind, id, payload, 0);
    if (frame instanceof Error) {
      link.send(FrameKind.error, id, { ...errorPayload(frame), code: "result_unsendable" });
      return;
    }
    link.write(frame);
  }

  /** The caller cancelled request `id`: its handler's signal aborts. False when no such request is being served. */
  cancel(id: number): boolean {
    const served = this.#served.get(id);
    if (!served) return false;
    this.#served.delete(id);
    served.abort(new CancelledError("the caller cancelled the call"));
    return true;
  }

  /** Aborts every request being served with `error` (the peer closed). */
  abortAll(error: Error): void {
    for (const served of this.#served.values()) served.abort(error);
    this.#served.clear();
  }
}
