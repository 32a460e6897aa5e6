/**
 * How a gathered batch of token sequences is split into text-encoder runs. A run pads every row
 * to its longest one, so a 6-token query run with a 40-token one pays for 40 tokens; a run also
 * has a fixed cost of its own. Measured in process (onnxruntime-node, CPU time per run over rows
 * n ≤ 32 × padded length L ≤ 40, 2 shared cores, one intra-op thread), a run costs `a + b·n·L`
 * to within 6 % — the attention's L² term is under 5 % of a token's cost at L ≤ 40: a ≈ 2.9 ms
 * for both MiniLM exports, b ≈ 0.36 ms per token for the int8w one (a/b ≈ 8 tokens) and 0.18 for
 * the int8-kernel one (a/b ≈ 16). So the cost of a grouping, in tokens, is
 *
 *   Σ over runs (overhead + rows × longest row)
 *
 * and the cheapest grouping is a split of the sequences sorted by length into consecutive runs
 * (a run's rows are best the shortest ones that share its width), found exactly by dynamic
 * programming in O(n · maxRun). A short query joins a longer neighbour only when the padding it
 * would compute costs less than a run of its own.
 *
 * Chosen against the alternatives on the encoders themselves: k = 4, 8, 16, 32 queries gathered,
 * drawn from the Flickr8K captions or short queries with one long caption in four; CPU ms per
 * query, medians of 5 interleaved rounds. Int8-kernel export: sorted runs of 8 (the previous
 * rule) 1.8–2.5, a run per exact length 1.8–2.7 (many small runs at small k), this 1.5–2.3 —
 * 8 gathered short and long: 2.53 → 1.82 ms (−28 %), 8 captions 2.48 → 2.17, 32 captions
 * 1.97 → 1.91. Int8w export: 3.5–4.9, 3.3–5.1, 3.0–4.3. One padded run: 2.4–3.1 and 4.7–6.0.
 * Overheads 8, 12 and 16 were within 3 % of each other in every cell of both; 12 is between the
 * two exports' a/b.
 */

/** The measured fixed cost of a text-encoder run, in tokens of padded input (see above). */
export const DEFAULT_RUN_OVERHEAD = 12;

export interface GroupingOptions {
  /** A run's fixed cost, in tokens (default DEFAULT_RUN_OVERHEAD). */
  overhead?: number;
  /** Most rows in one run (default: no limit). */
  maxRun?: number;
}

/** The padded cost of running `lengths` as the given groups, in tokens: Σ (overhead + rows × longest). */
export function groupingCost(lengths: readonly number[], groups: readonly (readonly number[])[], overhead = DEFAULT_RUN_OVERHEAD): number {
  return groups.reduce((sum, g) => sum + overhead + g.length * Math.max(1, ...g.map((i) => lengths[i]!)), 0);
}

/**
 * The cheapest split of sequences of these lengths into runs: groups of indices into `lengths`,
 * each index in exactly one, shortest group first, arrival order kept among equal lengths.
 */
export function groupByLength(lengths: readonly number[], opts: GroupingOptions = {}): number[][] {
  const n = lengths.length;
  if (n === 0) return [];
  const overhead = opts.overhead ?? DEFAULT_RUN_OVERHEAD;
  const maxRun = Math.max(1, opts.maxRun ?? n);
  // stable: equal lengths keep their arrival order
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a]! - lengths[b]!);
  const width = (k: number) => Math.max(1, lengths[order[k]!]!);
  // best[i]: the cheapest cost of the first i sorted sequences; cut[i]: where its last run starts
  const best = new Float64Array(n + 1);
  const cut = new Int32Array(n + 1);
  for (let i = 1; i <= n; i++) {
    best[i] = Infinity;
    // the last run is sorted[j..i), padded to the width of its longest (last) row; the largest
    // run wins a tie (fewer runs for the same padded tokens)
    for (let j = Math.max(0, i - maxRun); j < i; j++) {
      const c = best[j]! + overhead + (i - j) * width(i - 1);
      if (c < best[i]!) {
        best[i] = c;
        cut[i] = j;
      }
    }
  }
  const groups: number[][] = [];
  for (let i = n; i > 0; i = cut[i]!) groups.push(order.slice(cut[i]!, i));
  return groups.reverse();
}
