/**
 * "Did you mean …?" for misspelt names: flags, commands, manifest keys.
 *
 * @module
 */

/** Edits (insert, delete, substitute, swap adjacent) between `a` and `b`. */
export function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
      }
    }
  }
  return rows[a.length][b.length];
}

/**
 * The candidate closest to `input`, if it is close enough to be a typo: within
 * a third of the longer name's length, or one name containing the other
 * (`entrypoint` → `entry`).
 */
export function closest(input: string, candidates: Iterable<string>): string | undefined {
  const needle = input.toLowerCase();
  let best: string | undefined;
  let bestScore = Infinity;
  for (const candidate of candidates) {
    const hay = candidate.toLowerCase();
    const distance = editDistance(needle, hay);
    const contained = hay.length >= 3 && needle.length >= 3 && (needle.includes(hay) || hay.includes(needle));
    const allowed = Math.max(1, Math.floor(Math.max(needle.length, hay.length) / 3));
    if (distance > allowed && !contained) continue;
    const score = contained ? Math.min(distance, allowed) : distance;
    if (score < bestScore) [best, bestScore] = [candidate, score];
  }
  return best;
}

/** `; did you mean "x"?` or "" when nothing is close. */
export function didYouMean(input: string, candidates: Iterable<string>, quote = (s: string) => `"${s}"`): string {
  const match = closest(input, candidates);
  return match === undefined ? "" : `; did you mean ${quote(match)}?`;
}
