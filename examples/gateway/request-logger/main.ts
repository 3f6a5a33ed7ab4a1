/** Logs each request (first in the onRequest chain) and each response (last in onResponse) as JSON lines. */
import { definePlugin } from "../../../plugin.ts";
import type { GatewayContext } from "../../http_gateway.ts";

let requests = 0;

export default definePlugin({
  name: "request-logger",
  version: "1.0.0",
  methods: {
    count: () => requests,
  },
  hooks: {
    onRequest(context: GatewayContext) {
      requests++;
      console.log(JSON.stringify({ event: "request", method: context.request.method, path: context.request.path }));
    },
    onResponse(context: GatewayContext) {
      console.log(JSON.stringify({ event: "response", path: context.request.path, status: context.response?.status }));
    },
  },
});
