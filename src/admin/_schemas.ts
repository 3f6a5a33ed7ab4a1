/**
 * The admin API's routes and schemas, in one table: the app validates
 * requests with these zod schemas and the OpenAPI document is generated from
 * the very same objects (zod's JSON Schema output is OpenAPI 3.1's dialect).
 *
 * @module
 */

import { z } from "zod";
import { logLevels } from "../observe/logs.ts";

/** Largest request body the admin API reads. */
export const bodyBytesMaxDefault = 16 * 1024;

export const pluginName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/).meta({
  description: "A plugin's name from its plugin.json",
});

export const pluginParams = z.strictObject({ name: pluginName });

export const actionBody = z.strictObject({
  reason: z.string().max(500).optional().meta({ description: "Why: kept with the recorded action" }),
}).meta({ description: "Optional; an empty body means {}" });

export const logsQuery = z.strictObject({
  since: z.coerce.number().int().nonnegative().optional().meta({ description: "ms since the epoch" }),
  until: z.coerce.number().int().nonnegative().optional().meta({ description: "ms since the epoch" }),
  level: z.enum(logLevels).optional().meta({ description: "This level or more severe" }),
  afterSeq: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(5000).optional(),
  ticket: z.string().optional().meta({ description: "SSE only: a ticket from POST /api/tickets" }),
});

/**
 * Largest body of PUT /api/plugins/{name}/config: above the host's own limit
 * on a config (configBytesMax, 64 KiB as JSON) so that a config too big for
 * the host meets the host's message, which says how big it may be.
 */
export const configBodyBytesMax = 96 * 1024;

export const configBody = z.strictObject({
  values: z.record(z.string(), z.unknown()).meta({
    description: "Every setting (the whole config, not a patch); checked against the plugin's config schema",
  }),
  reason: z.string().max(500).optional().meta({ description: "Why: kept with the recorded action" }),
}).meta({ id: "ConfigChange" });

export const configView = z.object({
  plugin: z.string(),
  state: z.string().meta({ description: "The plugin's lifecycle state; only a running plugin takes a change" }),
  schema: z.record(z.string(), z.unknown()).nullable().meta({
    description: "The manifest's config JSON Schema, or null if the plugin declares none",
  }),
  values: z.record(z.string(), z.unknown()).nullable().meta({
    description: "The values it runs with now (defaults filled in), or null if it is not loaded",
  }),
}).meta({ id: "PluginConfig" });

export const metricsQuery = z.strictObject({ format: z.enum(["json", "csv"]).default("json") });

export const sseQuery = z.strictObject({
  ticket: z.string().optional().meta({ description: "A ticket from POST /api/tickets (EventSource sends no headers)" }),
});

export const errorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    field: z.string().optional().meta({ description: "invalid_config: the setting that failed (dotted path)" }),
  }),
}).meta({ id: "Error" });

export const ticketBody = z.object({
  ticket: z.string(),
  expiresAt: z.number().meta({ description: "ms since the epoch; the ticket opens one stream" }),
}).meta({ id: "Ticket" });

/** An action an operator can take. */
export type Action = "reload" | "restart" | "stop" | "start" | "configure";

/** What is recorded for every operator action. */
export interface ActionRecord {
  /** What the operator asked for. */
  action: Action;
  /** The plugin it was for. */
  plugin: string;
  /** ms since the epoch. */
  at: number;
  /** Whether the action succeeded. */
  outcome: "ok" | "error";
  /** How long it took, in milliseconds. */
  durationMs: number;
  /** The reason the operator gave, if any. */
  reason?: string;
  /** The error's code when it failed. */
  code?: string;
  /** The error's message when it failed. */
  message?: string;
  /** The plugin's lifecycle state after the action. */
  state?: string;
  /** configure: whether the plugin took the change live (onConfig) or was reloaded with it. */
  applied?: "applied" | "reloaded";
  /** configure: the settings whose values changed (names only: values may be secrets). */
  fields?: string[];
  /** configure: the field a refused change failed on. */
  field?: string;
}

/** The schema of {@link ActionRecord} (explicitly typed: JSR refuses inferred types in the public API). */
export const actionRecord: z.ZodType<ActionRecord> = z.object({
  action: z.enum(["reload", "restart", "stop", "start", "configure"]),
  plugin: z.string(),
  at: z.number(),
  outcome: z.enum(["ok", "error"]),
  durationMs: z.number(),
  reason: z.string().optional(),
  code: z.string().optional(),
  message: z.string().optional(),
  state: z.string().optional(),
  applied: z.enum(["applied", "reloaded"]).optional(),
  fields: z.array(z.string()).optional(),
  field: z.string().optional(),
}).meta({ id: "ActionRecord" });

const object = z.record(z.string(), z.unknown());

/** One route, for the OpenAPI document. */
export interface RouteSpec {
  method: "get" | "post" | "put";
  /** OpenAPI path syntax: `{name}`. */
  path: string;
  summary: string;
  auth: "bearer" | "bearer-or-ticket" | "none";
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Status → description and schema (JSON unless `type` says otherwise). */
  responses: Record<number, { description: string; schema?: z.ZodType; type?: string }>;
}

const errors = {
  400: { description: "Malformed request (bad JSON, token in the query string)", schema: errorBody },
  401: { description: "Missing or wrong token", schema: errorBody },
};
const notFound = { 404: { description: "No such plugin", schema: errorBody } };

/** Every route of the admin API. */
export const routes: RouteSpec[] = [
  {
    method: "get",
    path: "/api/plugins",
    summary: "Every plugin found or loaded, with state and figures",
    auth: "bearer",
    responses: { 200: { description: "Plugins", schema: z.object({ plugins: z.array(object) }) }, ...errors },
  },
  {
    method: "get",
    path: "/api/plugins/{name}",
    summary: "One plugin: manifest, grants, trust, instances, history, figures",
    auth: "bearer",
    params: pluginParams,
    responses: { 200: { description: "The plugin", schema: object }, ...errors, ...notFound },
  },
  ...(["reload", "restart", "stop", "start"] as const).map((action): RouteSpec => ({
    method: "post",
    path: `/api/plugins/{name}/${action}`,
    summary: `${action[0].toUpperCase()}${action.slice(1)} the plugin (recorded as an operator action)`,
    auth: "bearer",
    params: pluginParams,
    body: actionBody,
    responses: {
      200: { description: "Done", schema: actionRecord },
      ...errors,
      ...notFound,
      409: { description: "Not possible in the plugin's current state", schema: errorBody },
      413: { description: "Body too large", schema: errorBody },
      422: { description: "Body fails the schema", schema: errorBody },
      502: { description: "The plugin failed the action (e.g. a reload rolled back)", schema: errorBody },
    },
  })),
  {
    method: "get",
    path: "/api/plugins/{name}/config",
    summary: "The plugin's config schema and the values it runs with now",
    auth: "bearer",
    params: pluginParams,
    responses: { 200: { description: "Schema and values", schema: configView }, ...errors, ...notFound },
  },
  {
    method: "put",
    path: "/api/plugins/{name}/config",
    summary: "Replace the plugin's config: checked against its schema, then taken live (onConfig) or by a reload",
    auth: "bearer",
    params: pluginParams,
    body: configBody,
    responses: {
      200: {
        description: "Done; `applied` says live or reloaded (recorded as an operator action)",
        schema: actionRecord,
      },
      ...errors,
      ...notFound,
      409: { description: "The plugin is not running, or is between states", schema: errorBody },
      413: { description: "Body too large", schema: errorBody },
      422: { description: "Body or values fail the schema; `field` names the setting", schema: errorBody },
      502: { description: "The plugin failed to take the change (e.g. its reload rolled back)", schema: errorBody },
    },
  },
  {
    method: "get",
    path: "/api/plugins/{name}/logs",
    summary: "Kept log lines as JSON, or a live tail as SSE (Accept: text/event-stream)",
    auth: "bearer-or-ticket",
    params: pluginParams,
    query: logsQuery,
    responses: {
      200: { description: "Lines, or an event stream", schema: z.object({ lines: z.array(object) }) },
      ...errors,
      ...notFound,
      422: { description: "Query fails the schema", schema: errorBody },
    },
  },
  {
    method: "get",
    path: "/api/plugins/{name}/series",
    summary: "Chart series: calls/s, errors/s, p50/p99, memory, CPU per sample",
    auth: "bearer",
    params: pluginParams,
    responses: { 200: { description: "Points", schema: z.object({ points: z.array(object) }) }, ...errors },
  },
  {
    method: "get",
    path: "/api/events",
    summary: "Lifecycle events, plugin events and operator actions (SSE)",
    auth: "bearer-or-ticket",
    query: sseQuery,
    responses: { 200: { description: "An event stream", type: "text/event-stream" }, ...errors },
  },
  {
    method: "get",
    path: "/api/actions",
    summary: "Recent operator actions",
    auth: "bearer",
    responses: { 200: { description: "Actions", schema: z.object({ actions: z.array(actionRecord) }) }, ...errors },
  },
  {
    method: "post",
    path: "/api/tickets",
    summary: "A single-use ticket (30 s) to open one event stream with EventSource",
    auth: "bearer",
    responses: { 200: { description: "The ticket", schema: ticketBody }, ...errors },
  },
  {
    method: "get",
    path: "/api/metrics",
    summary: "Per plugin and method figures as JSON or CSV",
    auth: "bearer",
    query: metricsQuery,
    responses: {
      200: { description: "Figures", schema: object },
      ...errors,
      422: { description: "Query fails the schema", schema: errorBody },
    },
  },
  {
    method: "get",
    path: "/metrics",
    summary: "Prometheus text exposition (public when the app is created with publicMetrics)",
    auth: "bearer",
    responses: { 200: { description: "Prometheus text format 0.0.4", type: "text/plain" }, ...errors },
  },
  {
    method: "get",
    path: "/api/openapi.json",
    summary: "This document",
    auth: "bearer",
    responses: { 200: { description: "OpenAPI 3.1", schema: object }, ...errors },
  },
];
