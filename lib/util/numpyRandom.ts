/**
 * NumPy's legacy `RandomState` permutation and scikit-learn's `train_test_split`, reimplemented from their
 * documented algorithms so that a split the published code made with `random_state=42` can be rebuilt offline,
 * index for index:
 * - `RandomState(seed)` with an integer seed is MT19937 seeded by Matsumoto–Nishimura's `init_genrand`;
 * - `permutation(n)` shuffles `0 … n−1` by Fisher–Yates from the top, drawing each index in `[0, i]` by masked
 *   rejection sampling of 32-bit outputs (NumPy's `random_interval`);
 * - `train_test_split(…, test_size=f, random_state=s)` (no stratification) takes `nTest = ceil(f·n)`; the test rows
 *   are the first `nTest` entries of `RandomState(s).permutation(n)`, the train rows the rest, in that order.
 * Checked against NumPy 2.4 output in test/unit/numpyRandom.test.ts.
 */
import { WsfError } from '../errors.js';
import { checkInt, checkNumber } from './validate.js';

const N = 624;
const M = 397;

/** MT19937 with NumPy's integer seeding; only what `permutation` needs. */
export class NumpyRandomState {
  private readonly mt = new Uint32Array(N);
  private pos = N;

  /** @param seed an integer in [0, 2³²) (NumPy refuses others) */
  constructor(seed: number) {
    checkInt('seed', seed, 0, 2 ** 32 - 1);
    const mt = this.mt;
    mt[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1]!;
      mt[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
  }

  private twist(): void {
    const mt = this.mt;
    for (let i = 0; i < N; i++) {
      const y = (mt[i]! & 0x80000000) | (mt[(i + 1) % N]! & 0x7fffffff);
      mt[i] = mt[(i + M) % N]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.pos = 0;
  }

  /** The next 32-bit output (tempered), as `genrand_int32`. */
  nextUint32(): number {
    if (this.pos >= N) this.twist();
    let y = this.mt[this.pos++]!;
    y ^= y >>> 11;
    y = (y ^ ((y << 7) & 0x9d2c5680)) >>> 0;
    y = (y ^ ((y << 15) & 0xefc60000)) >>> 0;
    return (y ^ (y >>> 18)) >>> 0;
  }

  /** A uniform integer in [0, max] by masked rejection, as NumPy's `random_interval` (max < 2³²). */
  interval(max: number): number {
    if (max === 0) return 0;
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    for (;;) {
      const v = (this.nextUint32() & mask) >>> 0;
      if (v <= max) return v;
    }
  }

  /** `RandomState.permutation(n)`: a shuffled `0 … n−1`. */
  permutation(n: number): Int32Array {
    checkInt('n', n, 0, 2 ** 31 - 1);
    const a = new Int32Array(n);
    for (let i = 0; i < n; i++) a[i] = i;
    for (let i = n - 1; i >= 1; i--) {
      const j = this.interval(i);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }
}

/**
 * Row indices of scikit-learn's `train_test_split(range(n), test_size=testFraction, random_state=seed)` (shuffled,
 * not stratified), in the order the function returns them.
 * @throws WsfError ERR_INVALID when a split would be empty
 */
export function sklearnTrainTestSplit(n: number, testFraction: number, seed: number): { train: Int32Array; test: Int32Array } {
  checkInt('n', n, 2, 2 ** 31 - 1);
  checkNumber('testFraction', testFraction, 0, 1);
  const nTest = Math.ceil(testFraction * n);
  if (nTest < 1 || nTest >= n) throw new WsfError(`test fraction ${testFraction} of ${n} rows gives ${nTest} test rows; both parts need at least one`, 'ERR_INVALID');
  const perm = new NumpyRandomState(seed).permutation(n);
  return { train: perm.slice(nTest), test: perm.slice(0, nTest) };
}
