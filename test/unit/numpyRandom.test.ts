import { describe, expect, it } from 'vitest';
import { NumpyRandomState, WsfError, sklearnTrainTestSplit } from '../../lib/index.js';

// Expected values printed by NumPy 2.4.6 (`np.random.RandomState(seed)`), and by scikit-learn's ShuffleSplit rule
// (`test = permutation[:ceil(f·n)]`, `train = permutation[ceil(f·n):]`) applied to those permutations; plus the
// published MT19937 reference value (init_genrand(5489) → 3499211612 first).
describe('NumpyRandomState (MT19937, NumPy legacy seeding and permutation)', () => {
  it('matches the MT19937 reference output and NumPy state words', () => {
    expect(new NumpyRandomState(5489).nextUint32()).toBe(3499211612);
    // np.random.RandomState(42).get_state()[1][:3] = [42, 3107752595, 1895908407]: the seeding recurrence.
    const r = new NumpyRandomState(42) as unknown as { mt: Uint32Array };
    expect(Array.from(r.mt.subarray(0, 3))).toEqual([42, 3107752595, 1895908407]);
  });

  it('reproduces NumPy permutations for several seeds and sizes', () => {
    expect(Array.from(new NumpyRandomState(42).permutation(10))).toEqual([8, 1, 5, 0, 7, 2, 9, 4, 3, 6]);
    // The well-known iris test rows of train_test_split(test_size=0.2, random_state=42).
    expect(Array.from(new NumpyRandomState(42).permutation(150).subarray(0, 30))).toEqual([
      73, 18, 118, 78, 76, 31, 64, 141, 68, 82, 110, 12, 36, 9, 19, 56, 104, 69, 55, 132, 29, 127, 26, 128, 131, 145, 108, 143, 45, 30,
    ]);
    expect(Array.from(new NumpyRandomState(7).permutation(1000).subarray(995))).toEqual([579, 502, 537, 196, 175]);
    expect(Array.from(new NumpyRandomState(2 ** 32 - 1).permutation(70000).subarray(0, 5))).toEqual([14972, 66828, 49490, 22806, 60806]);
    const p = new NumpyRandomState(3).permutation(257);
    expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: 257 }, (_, i) => i));
  });

  it('rebuilds the published WDBC split (train_test_split 0.2, then 0.5, random_state 42)', () => {
    const first = sklearnTrainTestSplit(569, 0.2, 42);
    expect(first.test.length).toBe(114);
    expect(first.train.length).toBe(455);
    expect(Array.from(first.train.subarray(0, 20))).toEqual([68, 181, 63, 248, 60, 15, 290, 137, 155, 517, 88, 449, 117, 470, 364, 33, 0, 562, 298, 310]);
    expect(first.train.reduce((s, v) => s + v, 0)).toBe(128983);
    const second = sklearnTrainTestSplit(114, 0.5, 42);
    expect([second.train.length, second.test.length]).toEqual([57, 57]);
    expect(Array.from(second.test.subarray(0, 3), (k) => first.test[k])).toEqual([132, 540, 104]);
  });

  it('refuses seeds NumPy refuses and splits with an empty part', () => {
    expect(() => new NumpyRandomState(-1)).toThrow(WsfError);
    expect(() => new NumpyRandomState(2 ** 32)).toThrow(WsfError);
    expect(() => new NumpyRandomState(1.5)).toThrow(WsfError);
    expect(() => sklearnTrainTestSplit(10, 1, 0)).toThrow(/at least one/);
    expect(() => sklearnTrainTestSplit(10, 0, 0)).toThrow(/at least one/);
  });
});
