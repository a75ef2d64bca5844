/**
 * Elementwise closeness of two arrays, shared by the test matcher (test/helpers/allClose.ts) and the backend
 * parity checks (lib/internal/backendParity.ts): |a − e| ≤ atol + rtol·|e| after checking that NaN/Inf positions
 * agree, with a report of the mismatch count, the first few mismatches, the worst index, the max absolute and
 * relative errors and the NMSE.
 */
type Arr = ArrayLike<number>;

/** The outcome of {@link compareArrays}. */
export interface Comparison {
  pass: boolean;
  /** Mismatch count, worst index, max errors, NMSE and the first few mismatches (always filled). */
  report: string;
  /** Σ(a−e)²/Σe² over the elements finite in both (Σ(a−e)² when Σe² = 0). */
  nmse: number;
  /** Index of the element furthest outside the tolerance (or the first non-finite mismatch); −1 if none. */
  worst: number;
}

/** Compares `actual` with `expected` elementwise (non-finite positions must agree). */
export function compareArrays(actual: Arr, expected: Arr, atol: number, rtol: number): Comparison {
  if (actual.length !== expected.length) {
    return { pass: false, report: `length ${actual.length} vs expected ${expected.length}`, nmse: Infinity, worst: -1 };
  }
  let bad = 0;
  let worst = -1;
  let worstExcess = -Infinity;
  let maxAbs = 0;
  let maxRel = 0;
  let se = 0;
  let ss = 0;
  const firsts: string[] = [];
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const aFin = Number.isFinite(a);
    const eFin = Number.isFinite(e);
    if (!aFin || !eFin) {
      const same = (Number.isNaN(a) && Number.isNaN(e)) || a === e;
      if (!same) {
        bad++;
        if (firsts.length < 5) firsts.push(`[${i}] ${a} vs ${e} (non-finite mismatch)`);
        if (worst < 0) worst = i;
      }
      continue;
    }
    const d = Math.abs(a - e);
    se += d * d;
    ss += e * e;
    maxAbs = Math.max(maxAbs, d);
    if (e !== 0) maxRel = Math.max(maxRel, d / Math.abs(e));
    const tol = atol + rtol * Math.abs(e);
    if (d > tol) {
      bad++;
      if (firsts.length < 5) firsts.push(`[${i}] ${a} vs ${e} (|diff| ${d.toExponential(3)} > tol ${tol.toExponential(3)})`);
      if (d - tol > worstExcess) {
        worstExcess = d - tol;
        worst = i;
      }
    }
  }
  const nmse = ss > 0 ? se / ss : se;
  const report =
    `${bad} of ${actual.length} elements differ (atol ${atol}, rtol ${rtol}); worst index ${worst}; ` +
    `max abs err ${maxAbs.toExponential(3)}, max rel err ${maxRel.toExponential(3)}, NMSE ${nmse.toExponential(3)}` +
    (firsts.length > 0 ? `\n  ${firsts.join('\n  ')}` : '');
  return { pass: bad === 0, report, nmse, worst };
}

