/**
 * The demo's baseline: a plain unix-socket echo server in its own process, so
 * the demo can show a raw socket round trip beside a plugin call measured in
 * the same run. Plain JavaScript, so Deno, Bun and Node all run it as is.
 * Usage: unix_echo.mjs <socket-path>; prints "listening" when ready.
 */
import { createServer } from "node:net";
import process from "node:process";

const path = process.argv.at(-1);
const server = createServer((socket) => socket.pipe(socket));
server.listen(path, () => console.log("listening"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
