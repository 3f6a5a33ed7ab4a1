import assert from "node:assert/strict";
import { test } from "../../tests/_harness.ts";
import { layoutFields } from "./layout.ts";
import { getNative } from "./native.ts";

test("every layout constant in TypeScript matches the Zig library", () => {
  const native = getNative();
  for (const [name, [field, expected]] of Object.entries(layoutFields)) {
    assert.equal(native.layout(field), expected, `layout field ${name}`);
  }
});

test("an unknown layout field is refused", () => {
  assert.ok(getNative().layout(9999) < 0);
});
