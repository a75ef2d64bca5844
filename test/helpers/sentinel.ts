/**
 * Sentinel-guarded outputs for parity tests (ggml test-backend-ops style): the output view sits between guard
 * regions, and everything is pre-filled with a NaN carrying a recognisable payload. After an op, a sentinel left
 * inside the view means an element was never written; a changed guard means an out-of-bounds write.
 */
export const SENTINEL_BITS = 0x7fc0dead;
export const GUARD = 16;

export interface Guarded {
  view: Float32Array;
  /** Indices (within the view) still holding the sentinel. */
  unwritten(): number[];
  /** Guard elements that changed. */
  guardsBroken(): number;
}

export function guarded(n: number): Guarded {
  const buf = new Float32Array(n + 2 * GUARD);
  const bits = new Uint32Array(buf.buffer);
  bits.fill(SENTINEL_BITS);
  const view = buf.subarray(GUARD, GUARD + n);
  return {
    view,
    unwritten: () => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) if (bits[GUARD + i] === SENTINEL_BITS) out.push(i);
      return out;
    },
    guardsBroken: () => {
      let c = 0;
      for (let i = 0; i < GUARD; i++) {
        if (bits[i] !== SENTINEL_BITS) c++;
        if (bits[GUARD + n + i] !== SENTINEL_BITS) c++;
      }
      return c;
    },
  };
}
