#!/usr/bin/env bash
# deno doc --lint over the public entry points given as arguments, linted together (a type exported by one entry
# is public for all). Fails on every problem except a public member typed with a third-party npm class, which
# deno doc calls "private" because it is not ours to export: re-exporting it would drag the package's own
# undocumented internals into the lint. Also the table generated from zig/status.zig (zig build gen), whose
# literal type nativeStatusCodes reuses. Those are listed here, by exact message, so any new one still fails.
set -uo pipefail
deno="$1"
shift
allowed=(
  "public type 'createAdminApp' references private type 'Hono'"
  "public type 'PluginMetrics.prototype.registry' references private type 'Registry'"
  "public type 'LogStore.prototype.sink' references private type 'Sink'"
  "public type 'ManifestSchemaOptions[\"extraFields\"]' references private type 'ZodType'"
  "public type 'permissionsSchema' references private type 'ZodType'"
  "public type 'limitsSchema' references private type 'ZodType'"
  "public type 'SignResult[\"bundle\"]' references private type 'SerializedBundle'"
  "public type 'CompiledTrust[\"root\"]' references private type 'TrustedRoot'"
  "public type 'parseTrustedRoot' references private type 'TrustedRoot'"
  "public type 'parseBundle' references private type 'bundleFromJSON'"
  "public type 'HostTracingOptions[\"tracer\"]' references private type 'Tracer'"
  "public type 'contextFromTraceparent' references private type 'Context'"
  "public type 'traceparentOf' references private type 'Span'"
  "public type 'nativeStatusCodes' references private type 'statusNames'"
)
output=$(NO_COLOR=1 "$deno" doc --lint "$@" 2>&1)
status=$?
[ "$status" -eq 0 ] && { echo "doc-lint: $* clean"; exit 0; }
problems=$(printf '%s\n' "$output" | grep -E '^error\[' | grep -v '^error: Found')
remaining=$(printf '%s\n' "$problems" | grep -vF -f <(printf '%s\n' "${allowed[@]}"))
if [ -n "$problems" ] && [ -z "$remaining" ]; then
  echo "doc-lint: $* clean except $(printf '%s\n' "$problems" | wc -l) allowed third-party type reference(s)"
  exit 0
fi
printf '%s\n' "$output"
exit 1
