/** The child_process IPC alternative: echoes every message back with process.send. */
import process from "node:process";

process.on("message", (message) => process.send!(message));
process.on("disconnect", () => process.exit(0));
