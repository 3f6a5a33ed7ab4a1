/**
 * The worker of the `worker` transport in bench/channel_bench.ts: echoes
 * every message back with postMessage until told "quit".
 *
 * @module
 */

interface WorkerScope {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;
scope.onmessage = (event: MessageEvent) => {
  if (event.data === "quit") {
    scope.onmessage = null;
    scope.close();
    return;
  }
  scope.postMessage(event.data);
};
