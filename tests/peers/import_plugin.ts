/**
 * Imports a plugin module as a value, the way a unit test of its methods
 * would, and calls its methods directly. Before the launch entry existed this
 * process exited with code 2 on import.
 */
import introspect from "../fixtures/introspect/main.ts";

const methods = introspect.methods as unknown as { cwd(): string; session(): unknown };
console.log(JSON.stringify({ name: introspect.name, cwd: methods.cwd(), session: methods.session.call({}) }));
