/** A plugin-like start: loads the SDK (msgpackr, the native library) and exits; for the cold-start smoke. */
import { getNative } from "../../mod.ts";
getNative();
console.log("started");
