/** The worker alternative: echoes every message back with postMessage. */
const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(data: unknown): void;
};
scope.onmessage = (e) => scope.postMessage(e.data);
