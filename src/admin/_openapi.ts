/**
 * The OpenAPI 3.1 document, generated from the route table's zod schemas.
 *
 * @module
 */

import { z } from "zod";
import type { RouteSpec } from "./_schemas.ts";

function schemaOf(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { target: "draft-2020-12", io, unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
  delete json.$schema; // OpenAPI 3.1's dialect is the default: no per-schema $schema needed.
  return json;
}

function parameters(where: "path" | "query", schema: z.ZodObject | undefined): unknown[] {
  if (!schema) return [];
  const json = schemaOf(schema, "input") as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, property]) => ({
    name,
    in: where,
    required: where === "path" || (json.required ?? []).includes(name),
    schema: property,
  }));
}

/** Builds the OpenAPI 3.1 document for `routes`. */
export function openApiDocument(
  routes: RouteSpec[],
  info: { title: string; version: string },
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const operation: Record<string, unknown> = {
      summary: route.summary,
      operationId: `${route.method}${
        route.path.replace(/[{}]/g, "").replace(/\/(\w)/g, (_, c: string) => c.toUpperCase()).replace(
          /[^A-Za-z0-9]/g,
          "",
        )
      }`,
      parameters: [...parameters("path", route.params), ...parameters("query", route.query)],
      security: route.auth === "none" ? [] : [{ bearer: [] }],
      responses: Object.fromEntries(
        Object.entries(route.responses).map(([status, response]) => [
          status,
          {
            description: response.description,
            content: {
              [response.type ?? "application/json"]: response.schema
                ? { schema: schemaOf(response.schema, "output") }
                : {},
            },
          },
        ]),
      ),
    };
    if (route.body) {
      operation.requestBody = {
        required: false,
        content: { "application/json": { schema: schemaOf(route.body, "input") } },
      };
    }
    (paths[route.path] ??= {})[route.method] = operation;
  }
  return {
    openapi: "3.1.0",
    info: { ...info, description: "plugin-shm admin API. Every route needs Authorization: Bearer <token>." },
    paths,
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
  };
}
