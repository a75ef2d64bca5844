/**
 * Exact linear assignment (the Hungarian method in its shortest-augmenting-path form with dual potentials, as in
 * Jonker–Volgenant): given a rows × cols cost matrix, finds the one-to-one assignment of rows to columns with the
 * minimum (or maximum) total cost. O(rows²·cols) time, O(rows + cols) extra memory; exact for any finite costs.
 */
import { WsfError } from '../errors.js';
import { checkInt, invalidArgument } from '../util/validate.js';

/** Reusable scratch buffers, grown on demand (alignment calls the solver thousands of times). */
class Scratch {
  u = new Float64Array(0);
  v = new Float64Array(0);
  minv = new Float64Array(0);
  p = new Int32Array(0);
  way = new Int32Array(0);
  used = new Uint8Array(0);

  ensure(n: number, m: number): void {
    if (this.u.length < n + 1) this.u = new Float64Array(n + 1);
    if (this.v.length < m + 1) {
      this.v = new Float64Array(m + 1);
      this.minv = new Float64Array(m + 1);
      this.p = new Int32Array(m + 1);
      this.way = new Int32Array(m + 1);
      this.used = new Uint8Array(m + 1);
    }
  }
}
const scratch = new Scratch();

/**
 * Core solver for n ≤ m, minimisation, row-major `a` (n × m), no validation. Writes `rowToCol` (length n).
 * @internal
 */
export function solveAssignment(a: ArrayLike<number>, n: number, m: number, rowToCol: Int32Array, sign = 1): void {
  scratch.ensure(n, m);
  const { u, v, minv, p, way, used } = scratch;
  u.fill(0, 0, n + 1);
  v.fill(0, 0, m + 1);
  p.fill(0, 0, m + 1);
  way.fill(0, 0, m + 1);
  for (let i = 1; i <= n; i++) {
    // Grow the matching by row i along a shortest augmenting path (Dijkstra on reduced costs).
    p[0] = i;
    let j0 = 0;
    minv.fill(Infinity, 0, m + 1);
    used.fill(0, 0, m + 1);
    do {
      used[j0] = 1;
      const i0 = p[j0]!;
      const rowBase = (i0 - 1) * m - 1;
      const ui0 = u[i0]!;
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= m; j++) {
        if (used[j] === 0) {
          const cur = sign * a[rowBase + j]! - ui0 - v[j]!;
          if (cur < minv[j]!) {
            minv[j] = cur;
            way[j] = j0;
          }
          if (minv[j]! < delta) {
            delta = minv[j]!;
            j1 = j;
          }
        }
      }
      // Update the potentials so reduced costs stay non-negative and the tree edges stay tight.
      for (let j = 0; j <= m; j++) {
        if (used[j] === 1) {
          u[p[j]!]! += delta;
          v[j]! -= delta;
        } else {
          minv[j]! -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] !== 0);
    // Augment: flip the matching along the path back to the root.
    do {
      const j1 = way[j0]!;
      p[j0] = p[j1]!;
      j0 = j1;
    } while (j0 !== 0);
  }
  rowToCol.fill(-1, 0, n);
  for (let j = 1; j <= m; j++) if (p[j]! > 0) rowToCol[p[j]! - 1] = j - 1;
}

/**
 * Solves the linear assignment problem exactly.
 * @param cost row-major rows × cols matrix (Float64Array or Float32Array of length rows·cols), finite values
 * @param rows number of rows (≥ 1)
 * @param cols number of columns (≥ 1)
 * @param opts.maximize maximise the total instead of minimising it (default false)
 * @returns `rowToCol` (Int32Array, length rows): the column assigned to each row, −1 for the rows − cols rows
 *   left unassigned when rows > cols; and the optimal `total` of the assigned entries.
 * @throws WsfError ERR_DTYPE / ERR_SHAPE for a bad `cost`, ERR_INVALID for bad sizes, ERR_NUMERIC for non-finite costs
 */
export function linearSumAssignment(
  cost: Float64Array | Float32Array,
  rows: number,
  cols: number,
  opts: { maximize?: boolean } = {},
): { rowToCol: Int32Array; total: number } {
  checkInt('rows', rows, 1);
  checkInt('cols', cols, 1);
  if (!(cost instanceof Float64Array) && !(cost instanceof Float32Array)) {
    throw invalidArgument('cost', `Float64Array or Float32Array of length ${rows}·${cols}`, cost, 'ERR_DTYPE');
  }
  if (cost.length !== rows * cols) throw invalidArgument('cost', `an array of length rows·cols = ${rows * cols}`, cost, 'ERR_SHAPE');
  for (let k = 0; k < cost.length; k++) {
    if (!Number.isFinite(cost[k]!)) throw new WsfError(`Expected finite costs but cost[${Math.floor(k / cols)}, ${k % cols}] is ${cost[k]}`, 'ERR_NUMERIC');
  }
  const sign = opts.maximize === true ? -1 : 1;
  const rowToCol = new Int32Array(rows);
  if (rows <= cols) {
    solveAssignment(cost, rows, cols, rowToCol, sign);
  } else {
    // Solve the transpose (cols ≤ rows) and invert the mapping.
    const t = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = cost[i * cols + j]!;
    const colToRow = new Int32Array(cols);
    solveAssignment(t, cols, rows, colToRow, sign);
    rowToCol.fill(-1);
    for (let j = 0; j < cols; j++) rowToCol[colToRow[j]!] = j;
  }
  let total = 0;
  for (let i = 0; i < rows; i++) if (rowToCol[i]! >= 0) total += cost[i * cols + rowToCol[i]!]!;
  return { rowToCol, total };
}
