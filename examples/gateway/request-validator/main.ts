/** Answers bad requests itself and stops the chain: nothing after it (nor the upstream) sees them. */
import { definePlugin } from "../../../plugin.ts";
import type { GatewayContext } from "../../http_gateway.ts";

export default definePlugin({
  name: "request-validator",
  version: "1.0.0",
  methods: {},
  hooks: {
    onRequest(context: GatewayContext, chain) {
      const { request } = context;
      const refuse = (status: number, error: string): GatewayContext => {
        chain.stop();
        return {
          ...context,
          response: { status, headers: { "content-type": "application/json" }, body: JSON.stringify({ error }) },
        };
      };
      if ((this.config.open as string[]).includes(request.path)) return;
      if (request.headers["x-api-key"] !== this.config.apiKey) {
        return refuse(401, "missing or wrong x-api-key header");
      }
      if (request.body && request.headers["content-type"]?.startsWith("application/json")) {
        try {
          JSON.parse(request.body);
        } catch {
          return refuse(400, "the body is not valid JSON");
        }
      }
    },
  },
});
