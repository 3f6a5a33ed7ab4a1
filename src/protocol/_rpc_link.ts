/**
 * The sending half an RpcPeer's call, serve and stream parts share: ids,
 * encoding (with compression and the message limit), and the transport's
 * send, whose failure closes the peer. Private to the protocol folder.
 *
 * @module
 */

import { MessageTooLargeError } from "../transport/errors.ts";
import { sentAtOnce, type Transport } from "../transport/transport.ts";
import {
  compressFrame,
  decodePayload,
  type EncodedFrame,
  encodeFrameInPlace,
  frameHeaderBytes,
  FrameKind,
  type FrameKindValue,
} from "./frame.ts";
import type { RpcPeer } from "./rpc.ts";

/** Largest request or stream id before ids wrap to 1. */
const idMax = 0xffff_fffe;

/** One RpcPeer's way to the other side. */
export class FrameLink {
  /** The error the peer closed with; set by RpcPeer.close, after which nothing is sent. */
  closed: Error | undefined;
  /** STREAM_DATA frames sent and their bytes, for RpcPeer.streamStats. */
  streamItemsSent = 0;
  streamBytesSent = 0;
  #nextId = 1;

  constructor(
    /** The peer this link belongs to: what a handler's context names. */
    readonly peer: RpcPeer,
    readonly transport: Transport,
    /** Smallest payload sent compressed; Infinity when compression is off. */
    readonly compressFrom: number,
    /** Largest payload a compressed frame may inflate to; 0 when compression is off. */
    readonly inflatedBytesMax: number,
    /** Called when the transport fails a send: the peer closes with the error. */
    readonly lose: (error: Error) => void,
  ) {}

  get remoteName(): string {
    return this.peer.remoteName;
  }

  allocateId(): number {
    const id = this.#nextId;
    this.#nextId = id >= idMax ? 1 : id + 1;
    return id;
  }

  /** A received frame's payload, inflated if it was compressed and compression was agreed. */
  decode(bytes: Uint8Array): unknown {
    return decodePayload(bytes, this.inflatedBytesMax);
  }

  /**
   * Sends one frame. A frame that cannot be encoded or is over the
   * transport's limit rejects and leaves the connection up; a transport
   * failure closes the endpoint.
   */
  send(kind: FrameKindValue, id: number, payload: unknown, flags = 0): Promise<void> {
    if (this.closed) return Promise.resolve();
    const frame = this.encode(kind, id, payload, flags);
    return frame instanceof Error ? Promise.reject(frame) : this.write(frame);
  }

  /**
   * One frame, encoded in place (use it before the next encode), or the error that says why it cannot be sent
   * (returned: no throw on the call path).
   */
  encode(kind: FrameKindValue, id: number, payload: unknown, flags: number): EncodedFrame | Error {
    let frame: EncodedFrame;
    try {
      frame = encodeFrameInPlace(kind, id, payload, flags);
    } catch (error) {
      return new TypeError(`Cannot encode the payload as MessagePack: ${(error as Error).message}`);
    }
    if (frame.end - frame.start - frameHeaderBytes >= this.compressFrom) {
      try {
        const compressed = compressFrame(frame.bytes.subarray(frame.start, frame.end));
        if (compressed) frame = { bytes: compressed, start: 0, end: compressed.length };
      } catch (error) {
        return new TypeError(`Cannot compress the payload: ${(error as Error).message}`);
      }
    }
    const length = frame.end - frame.start;
    if (length > this.transport.messageBytesMax) {
      return new MessageTooLargeError(length, this.transport.messageBytesMax);
    }
    if (kind === FrameKind.streamData) {
      this.streamItemsSent++;
      this.streamBytesSent += length;
    }
    return frame;
  }

  /** Hands an encoded frame to the transport; its failure closes the endpoint (one shared handler, no closure per frame). */
  write(frame: EncodedFrame): Promise<void> {
    const transport = this.transport;
    const sent = transport.sendRange
      ? transport.sendRange(frame.bytes, frame.start, frame.end)
      : transport.send(frame.bytes.subarray(frame.start, frame.end));
    return sent === sentAtOnce ? sent : sent.catch(this.lose);
  }
}
