/**
 * W3C trace context through the host and two plugin processes, with real
 * OpenTelemetry SDKs and in-memory exporters on all three sides.
 *
 * @module
 */

import assert from "node:assert/strict";
import { context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { PluginHost } from "../mod.ts";
import { createHostTracing } from "../src/observe/tracing.ts";
import { BadRequestError, validateRequest } from "../src/protocol/_payload.ts";
import { formatTraceparent, parseTraceparent } from "../src/protocol/trace_context.ts";
import { fixtures, processRunning, test } from "./_harness.ts";

interface SpanRecord {
  process: string;
  name: string;
  /** OpenTelemetry SpanKind: 1 SERVER, 2 CLIENT. */
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  error: boolean;
}

const server = 1;
const client = 2;

/** A host whose `callPlugin` host function calls another plugin: `async` awaits before calling. */
function tracedHost(exporter: InMemorySpanExporter, options: { async?: boolean; tracing?: boolean } = {}) {
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const host: PluginHost = new PluginHost({
    dirs: [fixtures],
    logger: () => {},
    tracing: options.tracing === false ? undefined : createHostTracing({ tracer: provider.getTracer("test-host") }),
    hostFunctions: {
      now: () => new Date().toISOString(),
      callPlugin: options.async
        ? async (plugin: string, method: string, args: unknown[]) => {
          await new Promise((resolve) => setTimeout(resolve, 1));
          return await host.call(plugin, method, args);
        }
        : (plugin: string, method: string, args: unknown[]) => host.call(plugin, method, args),
    },
  });
  return host;
}

function hostSpans(exporter: InMemorySpanExporter): SpanRecord[] {
  return exporter.getFinishedSpans().map((s) => ({
    process: "host",
    name: s.name,
    kind: s.kind,
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? null,
    error: s.status.code === 2,
  }));
}

/** Every span of the trace that `root` (the host's first span named `rootName`) starts, from all three processes. */
async function collect(host: PluginHost, exporter: InMemorySpanExporter, rootName: string): Promise<SpanRecord[]> {
  const plugins = [
    ...(await host.call("trace-front", "spans")) as SpanRecord[],
    ...(await host.call("trace-back", "spans")) as SpanRecord[],
  ];
  const ours = hostSpans(exporter);
  const root = ours.find((s) => s.name === rootName && s.parentSpanId === null);
  assert.ok(root, `no root span ${rootName}: ${JSON.stringify(ours)}`);
  return [...ours, ...plugins].filter((s) => s.traceId === root.traceId);
}

/** Checks that `spans` form exactly this chain, each the child of the one before. */
function assertChain(spans: SpanRecord[], chain: [process: string, kind: number, name: string][]): void {
  const described = JSON.stringify(spans.map((s) => `${s.process} ${s.kind} ${s.name}`));
  assert.equal(spans.length, chain.length, `spans of the trace: ${described}`);
  let parent: string | null = null;
  for (const [process, kind, name] of chain) {
    const span = spans.find((s) => s.parentSpanId === parent);
    assert.ok(span, `no child of ${parent} (wanted ${process} ${name}); spans: ${described}`);
    assert.deepEqual([span.process, span.kind, span.name], [process, kind, name], `child of ${parent}`);
    parent = span.spanId;
  }
}

const fullChain: [string, number, string][] = [
  ["host", client, "trace-front/relay"],
  ["trace-front", server, "trace-front/relay"],
  ["trace-front", client, "host/callPlugin"],
  ["host", server, "host/callPlugin"],
  ["host", client, "trace-back/work"],
  ["trace-back", server, "trace-back/work"],
  ["trace-back", client, "host/now"],
  ["host", server, "host/now"],
];

test(
  "one trace spans the host and two plugin processes: host → plugin → host function → other plugin → host",
  async () => {
    const exporter = new InMemorySpanExporter();
    const host = tracedHost(exporter);
    let pids: number[] = [];
    try {
      await host.load("trace-front");
      await host.load("trace-back");
      pids = host.list().flatMap((p) => p.pids);
      const result = (await host.call("trace-front", "relay", [21])) as { x: number };
      assert.equal(result.x, 42);
      const spans = await collect(host, exporter, "trace-front/relay");
      assertChain(spans, fullChain);
      assert.equal(new Set(spans.map((s) => s.process)).size, 3, "spans from the host and both plugin processes");
      assert.ok(spans.every((s) => !s.error));
    } finally {
      await host.close();
    }
    for (const pid of pids) assert.ok(!processRunning(pid), `plugin process ${pid} left running`);
  },
  { timeoutMs: 60_000 },
);

test(
  "a stream opened by a traced host carries the trace: its host calls are children of the host's stream span",
  async () => {
    const exporter = new InMemorySpanExporter();
    const host = tracedHost(exporter);
    try {
      await host.load("trace-front");
      await host.load("trace-back");
      const items: unknown[] = [];
      for await (const item of host.stream("trace-front", "relayStream", [21])) items.push(item);
      assert.equal((items as { x: number }[])[0].x, 42);
      assert.equal(items.length, 1);
      const spans = await collect(host, exporter, "trace-front/relayStream");
      assertChain(spans, [["host", client, "trace-front/relayStream"], ...fullChain.slice(2)]);
      assert.ok(spans.every((s) => !s.error));
    } finally {
      await host.close();
    }
  },
  { timeoutMs: 60_000 },
);

test("a failure deep in the trace marks every span on its way back as failed", async () => {
  const exporter = new InMemorySpanExporter();
  const host = tracedHost(exporter);
  try {
    await host.load("trace-front");
    await host.load("trace-back");
    await assert.rejects(host.call("trace-front", "relay", [-1]), /x must not be negative/);
    const spans = await collect(host, exporter, "trace-front/relay");
    // trace-back's work fails before it calls the host: the chain ends there.
    assertChain(spans, fullChain.slice(0, 6));
    assert.ok(spans.every((s) => s.error), JSON.stringify(spans));
  } finally {
    await host.close();
  }
}, { timeoutMs: 60_000 });

test(
  "with a context manager registered, a host function that awaits before calling still joins the trace",
  async () => {
    const manager = new AsyncLocalStorageContextManager().enable();
    assert.ok(context.setGlobalContextManager(manager), "no other context manager registered in this process");
    const exporter = new InMemorySpanExporter();
    const host = tracedHost(exporter, { async: true });
    try {
      await host.load("trace-front");
      await host.load("trace-back");
      await host.call("trace-front", "relay", [1]);
      assertChain(await collect(host, exporter, "trace-front/relay"), fullChain);
    } finally {
      await host.close();
      context.disable();
    }
  },
  { timeoutMs: 60_000 },
);

test("a host without tracing sends no trace context: the plugins record no span", async () => {
  const host = tracedHost(new InMemorySpanExporter(), { tracing: false });
  try {
    await host.load("trace-front");
    await host.load("trace-back");
    assert.deepEqual(await host.call("trace-front", "relay", [2]).then((r) => (r as { x: number }).x), 4);
    assert.deepEqual(await host.call("trace-front", "spans"), []);
    assert.deepEqual(await host.call("trace-back", "spans"), []);
  } finally {
    await host.close();
  }
}, { timeoutMs: 60_000 });

test("a REQUEST's trace context must be a W3C traceparent: anything else is a bad request naming the format", () => {
  const good = formatTraceparent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1);
  assert.equal(good, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  assert.deepEqual(parseTraceparent(good), {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "00f067aa0ba902b7",
    traceFlags: 1,
  });
  assert.equal(parseTraceparent(`00-${"0".repeat(32)}-00f067aa0ba902b7-01`), undefined, "all-zero trace id");
  assert.equal(validateRequest(["m", [], null, good]).traceparent, good);
  assert.equal(validateRequest(["m", [], 5, null]).traceparent, undefined);
  assert.equal(validateRequest(["m", [], null]).traceparent, undefined);
  for (const bad of [42, "", "00-xyz", good.toUpperCase(), `${good}-extra`, { traceparent: good }]) {
    assert.throws(() => validateRequest(["m", [], null, bad]), (e: unknown) => {
      assert.ok(e instanceof BadRequestError, String(e));
      assert.match((e as Error).message, /traceparent must be nil or a W3C traceparent/);
      return true;
    });
  }
  assert.throws(() => validateRequest(["m", [], null, good, "fifth"]), BadRequestError);
});
