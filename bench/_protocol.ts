/**
 * What bench/channel_bench.ts and its peer processes (bench/_echo_peer.ts,
 * bench/_worker_peer.ts) agree on: opcodes, the socket framing, environment
 * variable names and how to start a child of the current runtime.
 *
 * Every benchmark message is at least 64 bytes; its first payload byte is an
 * opcode, so the peer dispatches on one byte and echoes the rest untouched.
 *
 * @module
 */

import process from "node:process";
import type { ChildProcess } from "node:child_process";

/** First payload byte of every benchmark message. */
export const Op = {
  /** Send the message back unchanged. */
  echo: 0,
  /** Count it (throughput); no reply. */
  count: 1,
  /** End of a throughput run: reply with {@link CountReport} as JSON. */
  end: 2,
  /** Start a CPU window: record cpuUsage now, reply with an empty ack. */
  cpuMark: 3,
  /** End a CPU window: reply with {@link CpuReport} as JSON. */
  cpuReport: 4,
  /** Close everything and exit. */
  quit: 5,
} as const;

/** The peer's reply to {@link Op.end}: what it counted since the last end. */
export interface CountReport {
  count: number;
  bytes: number;
}

/** The peer's reply to {@link Op.cpuReport}: its CPU use since {@link Op.cpuMark}. */
export interface CpuReport {
  user_us: number;
  system_us: number;
  wall_us: number;
}

/** Environment variables that configure a peer. */
export const Env = {
  transport: "PSHM_BENCH_TRANSPORT",
  name: "PSHM_NAME",
  token: "PSHM_TOKEN",
  spinMicros: "PSHM_SPIN_MICROS",
  /** shm: the peer's ShmChannelOptions.blockMicros (blocking park); unset = 0. */
  blockMicros: "PSHM_BLOCK_MICROS",
  socketPath: "PSHM_SOCKET_PATH",
  peerMode: "PSHM_PEER_MODE",
  /** shm: the doorbell socket to connect (src/transport/_doorbell.ts), with its key; unset = futex only. */
  doorbellPath: "PSHM_DOORBELL",
  doorbellKey: "PSHM_DOORBELL_KEY",
} as const;

/** Transports a peer process can serve. */
export type PeerTransport = "shm" | "unix" | "tcp" | "child_ipc";

/** Length of the socket frame header: payload length, u32 little endian. */
export const frameHeaderBytes = 4;

/** The runtime this file runs under. */
export const runtime: "deno" | "bun" = "Bun" in globalThis ? "bun" : "deno";

/** argv for a child process of this runtime that runs `file`. */
export function childArgs(file: string): string[] {
  return runtime === "bun" ? [file] : ["run", "-A", file];
}

/** A socket frame: header then a copy of `payload`. */
export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(frameHeaderBytes + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length, true);
  out.set(payload, frameHeaderBytes);
  return out;
}

/** A benchmark message of `size` bytes starting with opcode `op`. */
export function message(op: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 1; i < out.length; i++) out[i] = i & 0xff;
  out[0] = op;
  return out;
}

/** Parses the JSON body of a reply (after the opcode byte). */
export function replyJson<T>(payload: Uint8Array): T {
  let end = payload.length;
  while (end > 1 && payload[end - 1] === 0) end--;
  return JSON.parse(new TextDecoder().decode(payload.subarray(1, end))) as T;
}

/** A reply message: opcode then a JSON body, zero-padded to 64 bytes. */
export function jsonMessage(op: number, value: unknown): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(value));
  const out = new Uint8Array(Math.max(64, 1 + body.length));
  out[0] = op;
  out.set(body, 1);
  return out;
}

/**
 * Splits a byte stream into length-prefixed frames. `onFrame` gets each whole
 * frame, header included, as a view that stays valid (never reused).
 */
export class FrameParser {
  readonly #onFrame: (frame: Uint8Array) => void;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #need = frameHeaderBytes;

  constructor(onFrame: (frame: Uint8Array) => void) {
    this.#onFrame = onFrame;
  }

  push(chunk: Uint8Array): void {
    let data = chunk;
    if (this.#pendingBytes > 0) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      if (this.#pendingBytes < this.#need) return;
      data = new Uint8Array(this.#pendingBytes);
      let at = 0;
      for (const part of this.#pending) {
        data.set(part, at);
        at += part.length;
      }
      this.#pending = [];
      this.#pendingBytes = 0;
    }
    let offset = 0;
    this.#need = frameHeaderBytes;
    while (data.length - offset >= frameHeaderBytes) {
      const length = (data[offset] | (data[offset + 1] << 8) | (data[offset + 2] << 16) | (data[offset + 3] << 24)) >>>
        0;
      const total = frameHeaderBytes + length;
      if (data.length - offset < total) {
        this.#need = total;
        break;
      }
      this.#onFrame(data.subarray(offset, offset + total));
      offset += total;
    }
    if (offset < data.length) {
      const rest = data.subarray(offset);
      this.#pending = [rest];
      this.#pendingBytes = rest.length;
    }
  }
}

/** Environment of the current process plus `extra`. */
export function childEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  return { ...env, ...extra };
}

/**
 * Waits for a peer child's `READY` line on its stdout and resolves with what follows READY on it. Rejects when the
 * child cannot start, exits first, or prints no such line within `timeoutMs`; `label` names it in those errors.
 */
export function readyLine(child: ChildProcess, label: string, timeoutMs: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`${label} not ready after ${timeoutMs} ms`)), timeoutMs);
    let text = "";
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      text += chunk;
      const line = text.split("\n").find((l) => l.startsWith("READY"));
      if (line === undefined) return;
      clearTimeout(timer);
      resolve(line.slice("READY".length).trim());
    });
    child.once("error", fail);
    child.once("exit", (code) => fail(new Error(`${label} exited (code ${code}) before it was ready`)));
  });
}
