/** A test program that only loads the native library and reports the result. */
import { getNative } from "../../mod.ts";

try {
  console.log(`loaded for ${getNative().runtime}`);
} catch (error) {
  console.error(`${(error as Error).name}: ${(error as Error).message}`);
  (globalThis as unknown as { process: { exit(code: number): never } }).process.exit(3);
}
