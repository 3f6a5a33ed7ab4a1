/**
 * The echo of examples/plugins/echo plus a {@link Probe}: once `probe(n)` is
 * called, each of the next n echo calls takes a snapshot of this process's
 * counters, and `dump()` returns them (bench/tails_bench.ts, `rpc` part).
 * The snapshot is taken in the handler, before the response is sent, so the
 * window of call k runs from handler k - 1 to handler k.
 *
 * @module
 */
import { countTimers, Probe } from "../../_tails.ts";
import { definePlugin } from "../../../plugin.ts";

countTimers();

let probe: Probe | undefined;
let probing = false;

export default definePlugin({
  name: "tails-echo",
  version: "1.0.0",
  methods: {
    echo(value: unknown): unknown {
      if (probing) probe!.snap();
      return value;
    },
    /** Probes the next `n` echo calls (0: stop); snapshot 0 is taken now. */
    probe(n: number): void {
      probe?.close();
      probe = n > 0 ? new Probe(n + 1) : undefined;
      probing = probe !== undefined;
      probe?.snap();
    },
    dump(): number[][] {
      probing = false;
      return probe?.dump() ?? [];
    },
  },
});
