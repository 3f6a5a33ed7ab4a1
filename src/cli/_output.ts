/**
 * Output discipline: results on stdout, everything else (plugin output,
 * lifecycle, progress, errors) on stderr; colour only on a terminal and never
 * with NO_COLOR; ANSI escapes from plugins' output stripped, so that a
 * plugin's (or Deno's) colours cannot leak into logs or a pipe.
 *
 * @module
 */

import process from "node:process";

// CSI sequences (colours, cursor moves), OSC sequences (titles, links) and lone ESC pairs.
// deno-lint-ignore no-control-regex
const ansiPattern = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

/** `text` without ANSI escape sequences. */
export function stripAnsi(text: string): string {
  return text.replace(ansiPattern, "");
}

/** True when `stream` is a terminal and NO_COLOR is unset or empty (https://no-color.org). */
export function colourWanted(stream: { isTTY?: boolean }): boolean {
  return !!stream.isTTY && !process.env.NO_COLOR;
}

type Paint = (text: string) => string;

/** Where the CLI writes, and whether it may colour. */
export class Output {
  readonly #pending: Promise<void>[] = [];
  readonly #colour: boolean;

  constructor(colour = colourWanted(process.stderr)) {
    this.#colour = colour;
  }

  /** A result, on stdout. */
  result(text: string): void {
    this.#write(process.stdout, text.endsWith("\n") ? text : `${text}\n`);
  }

  /** Progress and logs: stderr. */
  info(text: string): void {
    this.#write(process.stderr, `${text}\n`);
  }

  /** A line a plugin wrote, tagged with its name, escapes stripped: stderr. */
  plugin(name: string, stream: "stdout" | "stderr", line: string): void {
    const tag = stream === "stderr" ? this.yellow(`[${name}]`) : this.dim(`[${name}]`);
    this.info(`${tag} ${stripAnsi(line)}`);
  }

  /** A failure, once, on stderr. */
  error(text: string): void {
    this.#write(process.stderr, `${this.red("error:")} ${stripAnsi(text)}\n`);
  }

  red: Paint = (t) => this.#paint(31, t);
  green: Paint = (t) => this.#paint(32, t);
  yellow: Paint = (t) => this.#paint(33, t);
  dim: Paint = (t) => this.#paint(2, t);
  bold: Paint = (t) => this.#paint(1, t);

  #paint(code: number, text: string): string {
    return this.#colour ? `\x1b[${code}m${text}\x1b[0m` : text;
  }

  #write(stream: NodeJS.WriteStream, text: string): void {
    this.#pending.push(new Promise<void>((resolve) => stream.write(text, () => resolve())));
  }

  /** Resolves once everything written so far reached the OS (before process.exit). */
  async flush(): Promise<void> {
    await Promise.all(this.#pending.splice(0));
  }
}
