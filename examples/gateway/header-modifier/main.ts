/** Changes headers both ways: the context it returns is what the next hook (and the upstream) sees. */
import { definePlugin } from "../../../plugin.ts";
import type { GatewayContext } from "../../http_gateway.ts";

export default definePlugin({
  name: "header-modifier",
  version: "1.0.0",
  methods: {},
  hooks: {
    onRequest(context: GatewayContext): GatewayContext {
      const headers = { ...context.request.headers, "x-gateway": "plugin-shm" };
      return { ...context, request: { ...context.request, headers } };
    },
    onResponse(context: GatewayContext): GatewayContext {
      const { server: _dropped, ...headers } = context.response!.headers;
      return { ...context, response: { ...context.response!, headers: { ...headers, "x-powered-by": "plugin-shm" } } };
    },
  },
});
