import assert from "node:assert/strict";
import { ProtocolError } from "../src/errors.ts";
import {
  argsCountMax,
  BadRequestError,
  payloadDepthMax,
  traceparentChars,
  validateEmpty,
  validateError,
  validateEvent,
  validateHello,
  validatePing,
  validateRequest,
  validateStreamCredit,
  validateStreamEnd,
  validateStreamOpen,
  validateValue,
  validateWelcome,
} from "../src/protocol/_payload.ts";
import { test } from "./_harness.ts";

/** `depth` nested arrays around 0 (depth 1 = `[0]`). */
function nested(depth: number): unknown {
  let value: unknown = 0;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

function throwsNaming(fn: () => unknown, type: typeof ProtocolError, ...words: string[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof type, `${error} is not a ${type.name}`);
    assert.equal((error as ProtocolError).code, "protocol");
    for (const word of words) assert.ok((error as Error).message.includes(word), `"${word}" in ${error}`);
    return true;
  });
}

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

test("a REQUEST is [method, args, deadline] with an optional W3C traceparent", () => {
  assert.deepEqual(validateRequest(["m", [1], null]), { method: "m", args: [1], deadlineMs: null });
  assert.deepEqual(validateRequest(["m", [], 5, traceparent]), { method: "m", args: [], deadlineMs: 5, traceparent });
  assert.equal(traceparent.length, traceparentChars);
  assert.equal(validateRequest(["m", [], null, null]).traceparent, undefined);
});

test("a malformed REQUEST is a BadRequestError that names what was wrong", () => {
  throwsNaming(() => validateRequest(7), BadRequestError, "REQUEST", "a number");
  throwsNaming(() => validateRequest(["m", []]), BadRequestError, "REQUEST", "an array of 2");
  throwsNaming(() => validateRequest([1, [], null]), BadRequestError, "method");
  throwsNaming(() => validateRequest(["m", {}, null]), BadRequestError, "args");
  throwsNaming(() => validateRequest(["m", new Array(argsCountMax + 1).fill(0), null]), BadRequestError, "args");
  throwsNaming(() => validateRequest(["m", [], -1]), BadRequestError, "deadline");
  throwsNaming(() => validateRequest(["m", [], 1.5]), BadRequestError, "deadline");
  throwsNaming(() => validateRequest(["m", [], null, 3]), BadRequestError, "traceparent");
  throwsNaming(
    () => validateRequest(["m", [], null, "00-abc-01"]),
    BadRequestError,
    "traceparent",
  );
  throwsNaming(() => validateRequest(["m", [nested(payloadDepthMax)], null]), BadRequestError, "deep");
});

test("a malformed STREAM_OPEN is a BadRequestError; its optional fourth element must be a W3C traceparent", () => {
  assert.deepEqual(validateStreamOpen(["s", [], true]), { method: "s", args: [], hasInput: true });
  assert.deepEqual(validateStreamOpen(["s", [], true, null]), { method: "s", args: [], hasInput: true });
  const traceparent = `00-${"a".repeat(32)}-${"b".repeat(16)}-01`;
  assert.deepEqual(validateStreamOpen(["s", [], false, traceparent]), {
    method: "s",
    args: [],
    hasInput: false,
    traceparent,
  });
  throwsNaming(() => validateStreamOpen(["s", [], 1]), BadRequestError, "STREAM_OPEN", "hasInput");
  throwsNaming(() => validateStreamOpen(["s", [], true, "00-nope"]), BadRequestError, "STREAM_OPEN", "traceparent");
  throwsNaming(() => validateStreamOpen(["s", [], true, null, 1]), BadRequestError, "STREAM_OPEN");
});

test("other frame kinds' payloads are checked and a violation is a ProtocolError naming the kind", () => {
  assert.deepEqual(validateError({ code: "c", message: "m" }), { code: "c", message: "m", stack: "" });
  throwsNaming(() => validateError([1]), ProtocolError, "ERROR", "map");
  throwsNaming(() => validateError({ code: 1, message: "m" }), ProtocolError, "ERROR", "code");
  assert.equal(validateStreamEnd(null), null);
  throwsNaming(() => validateStreamEnd({ code: "c" }), ProtocolError, "STREAM_END", "message");
  assert.equal(validateStreamCredit(3), 3);
  throwsNaming(() => validateStreamCredit(0), ProtocolError, "STREAM_CREDIT");
  assert.deepEqual(validateEvent(["e", { a: 1 }]), { name: "e", data: { a: 1 } });
  throwsNaming(() => validateEvent({ name: "e" }), ProtocolError, "EVENT");
  assert.equal(validatePing(undefined), null);
  throwsNaming(() => validatePing("now", "PONG"), ProtocolError, "PONG", "a string");
  validateEmpty(undefined, "CANCEL");
  throwsNaming(() => validateEmpty(0, "GOODBYE"), ProtocolError, "GOODBYE");
  validateValue("RESPONSE", nested(payloadDepthMax));
  throwsNaming(() => validateValue("STREAM_DATA", nested(payloadDepthMax + 1)), ProtocolError, "STREAM_DATA", "deep");
});

test("HELLO and WELCOME are maps whose fields are checked; unknown keys are ignored", () => {
  const hello = { token: "t", versions: [1, 1], name: "p", version: "1", runtime: "deno", methods: ["a"], extra: 1 };
  assert.deepEqual(validateHello(hello).methods, ["a"]);
  throwsNaming(() => validateHello({ ...hello, versions: [2, 1] }), ProtocolError, "HELLO", "oldest after newest");
  throwsNaming(() => validateHello({ ...hello, methods: [1] }), ProtocolError, "HELLO", "methods");
  assert.deepEqual(validateWelcome({ version: 1, heartbeatIntervalMs: 0, x: 1 }), {
    version: 1,
    heartbeatIntervalMs: 0,
  });
  throwsNaming(() => validateWelcome({ version: 1 }), ProtocolError, "WELCOME", "heartbeatIntervalMs");
});

test("HELLO's compression is a short list of names and WELCOME's names deflate with a threshold, or they are refused", () => {
  const hello = { token: "t", versions: [1, 1], name: "p", version: "1", runtime: "deno", methods: [] };
  assert.equal(validateHello(hello).compression, undefined);
  assert.deepEqual(validateHello({ ...hello, compression: ["deflate", "zstd"] }).compression, ["deflate", "zstd"]);
  throwsNaming(() => validateHello({ ...hello, compression: "deflate" }), ProtocolError, "HELLO", "compression");
  throwsNaming(() => validateHello({ ...hello, compression: [7] }), ProtocolError, "HELLO", "compression");
  throwsNaming(() => validateHello({ ...hello, compression: Array(9).fill("x") }), ProtocolError, "HELLO", "at most 8");
  const welcome = { version: 1, heartbeatIntervalMs: 0 };
  assert.deepEqual(validateWelcome({ ...welcome, compression: { algorithm: "deflate", thresholdBytes: 10, x: 1 } }), {
    ...welcome,
    compression: { algorithm: "deflate", thresholdBytes: 10 },
  });
  for (
    const bad of [
      "deflate",
      { algorithm: "zstd", thresholdBytes: 10 },
      { algorithm: "deflate" },
      { algorithm: "deflate", thresholdBytes: -1 },
      { algorithm: "deflate", thresholdBytes: 1.5 },
      { algorithm: "deflate", thresholdBytes: 2 ** 31 },
    ]
  ) {
    throwsNaming(() => validateWelcome({ ...welcome, compression: bad }), ProtocolError, "WELCOME", "compression");
  }
});

test("a peer's map whose toString is not a function is named by its shape in the error, never converted (found by make fuzz)", () => {
  // MessagePack {toString: ""}: String() of it throws "Cannot convert object to primitive value", which used to
  // escape as an untyped TypeError and close the connection without a ProtocolError.
  const hostile = { toString: "", valueOf: "" };
  throwsNaming(() => validateStreamCredit(hostile), ProtocolError, "STREAM_CREDIT", "a map");
  throwsNaming(() => validateRequest(["m", [], hostile]), BadRequestError, "deadline", "a map");
  throwsNaming(() => validateStreamCredit("x".repeat(1000)), ProtocolError, "STREAM_CREDIT", `"${"x".repeat(40)}…"`);
});
