/**
 * R independent ReLU MLPs of one architecture, trained in lockstep with TF.js: each run has its own weights, its
 * own mini-batch and its own optimiser state, and the runs share every TF.js kernel call.
 *
 * Forward/backward are written out (no autograd tape), on tensors stacked over runs:
 *   z_l = h_{l−1} W_l + b_l  ([R, b, n_{l−1}] × [R, n_{l−1}, n_l], batched matMul), h_l = ReLU(z_l), logits = z_L,
 *   loss_r = mean_b CE(logits_r, y_r),  dz_L = (softmax(z_L) − onehot(y)) / b,
 *   dW_l = h_{l−1}ᵀ dz_l,  db_l = Σ_b dz_l,  dz_{l−1} = (dz_l W_lᵀ) ⊙ [z_{l−1} > 0].
 * Each run's gradient is exactly the gradient of its own mean loss (no term couples runs). When the first layer is
 * large (n_0·n_1 ≥ 4096, e.g. MNIST), it runs as R two-dimensional matMuls instead (TF.js-wasm sends only
 * untransposed 2-D matMuls to XNNPACK, ~5× faster than its batched kernel), with dW_1 = (X_rᵀ) dz_r from an
 * uploaded transposed copy of each run's batch.
 *
 * Weights and optimiser state live in JS `Float32Array`s in the flat layout (R × P), so checkpoints are copies,
 * and the optimiser step is plain elementwise code with PyTorch semantics (computed in f64, stored in f32):
 * - Adam: g ← ∇ + λθ; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; θ ← θ − lr · (m/(1−β1^t)) / (√(v/(1−β2^t)) + ε)
 * - SGD:  g ← ∇ + λθ; u ← μ u + g; θ ← θ − lr · u
 * (TF.js `tf.train.adam(lr, β1, β2, ε)` and `tf.train.momentum(lr, μ)` compute the same updates in f32.)
 */
import type { Architecture } from '../arch/Architecture.js';
import type { TF } from '../interop/tf.js';

type Tensor = import('@tensorflow/tfjs').Tensor;
type Tensor2D = import('@tensorflow/tfjs').Tensor2D;
type Tensor3D = import('@tensorflow/tfjs').Tensor3D;

/** A normalised optimiser: every field set. */
export type OptimizerSpec =
  | { readonly name: 'adam'; readonly lr: number; readonly beta1: number; readonly beta2: number; readonly eps: number; readonly weightDecay: number }
  | { readonly name: 'sgd'; readonly lr: number; readonly momentum: number; readonly weightDecay: number };

/** Elementwise optimiser over a flat Float32Array of parameters (all runs side by side). */
export class FlatOptimizer {
  private readonly m: Float32Array;
  private readonly v: Float32Array | null;
  private t = 0;

  constructor(
    readonly spec: OptimizerSpec,
    size: number,
  ) {
    this.m = new Float32Array(size);
    this.v = spec.name === 'adam' ? new Float32Array(size) : null;
  }

  /** One update of `theta` in place from `grad` (same length). */
  step(theta: Float32Array, grad: Float32Array): void {
    this.t++;
    const s = this.spec;
    const m = this.m;
    const wd = s.weightDecay;
    if (s.name === 'adam') {
      const v = this.v!;
      const { lr, beta1: b1, beta2: b2, eps } = s;
      const c1 = 1 - Math.pow(b1, this.t);
      const c2 = 1 - Math.pow(b2, this.t);
      for (let i = 0; i < theta.length; i++) {
        const g = grad[i]! + wd * theta[i]!;
        const mi = b1 * m[i]! + (1 - b1) * g;
        const vi = b2 * v[i]! + (1 - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        theta[i] = theta[i]! - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
      }
    } else {
      const { lr, momentum: mu } = s;
      for (let i = 0; i < theta.length; i++) {
        const g = grad[i]! + wd * theta[i]!;
        m[i] = mu * m[i]! + g;
        theta[i] = theta[i]! - lr * m[i]!;
      }
    }
  }
}

/** How the first layer is computed: batched over runs, or one 2-D matMul per run. */
export type FirstLayerMode = 'stacked' | 'per-run';

/** The automatic choice: per run when n_0·n_1 ≥ 4096. */
export function autoFirstLayer(arch: Architecture): FirstLayerMode {
  return arch.widths[0]! * arch.widths[1]! >= 4096 ? 'per-run' : 'stacked';
}

/** R MLPs evaluated and differentiated together. Holds no tensors between calls. */
export class BatchedMlp {
  readonly P: number;

  constructor(
    private readonly tf: TF,
    readonly arch: Architecture,
    readonly R: number,
    readonly firstLayer: FirstLayerMode = autoFirstLayer(arch),
  ) {
    this.P = arch.numParams;
  }

  /** Layer l's weights of all runs, stacked [R, n_{l−1}, n_l]. */
  private packWeights(theta: Float32Array, l: number): Tensor3D {
    const a = this.arch;
    const [nin, nout] = [a.widths[l - 1]!, a.widths[l]!];
    const sz = nin * nout;
    const off = a.weightOffset(l);
    const buf = new Float32Array(this.R * sz);
    for (let r = 0; r < this.R; r++) buf.set(theta.subarray(r * this.P + off, r * this.P + off + sz), r * sz);
    return this.tf.tensor3d(buf, [this.R, nin, nout]);
  }

  /** Layer l's biases of all runs [R, 1, n_l]. */
  private packBiases(theta: Float32Array, l: number): Tensor3D {
    const a = this.arch;
    const nout = a.widths[l]!;
    const off = a.biasOffset(l);
    const buf = new Float32Array(this.R * nout);
    for (let r = 0; r < this.R; r++) buf.set(theta.subarray(r * this.P + off, r * this.P + off + nout), r * nout);
    return this.tf.tensor3d(buf, [this.R, 1, nout]);
  }

  /** Copies a stacked [R, …] block (one contiguous chunk per run) into the flat gradient at `off`. */
  private scatter(grad: Float32Array, data: Float32Array, off: number, per: number): void {
    for (let r = 0; r < this.R; r++) grad.set(data.subarray(r * per, (r + 1) * per), r * this.P + off);
  }

  /**
   * Mean cross-entropy of every run on its own mini-batch and its gradient.
   * @param theta R × P flat weights
   * @param xb R × b × n_0 inputs (run r's batch in rows r·b … r·b+b−1)
   * @param yb R × b labels
   * @param b batch size (the same for every run)
   * @returns per-run losses (R) and the flat gradient (R × P)
   */
  lossAndGrad(theta: Float32Array, xb: Float32Array, yb: Int32Array, b: number): { loss: Float64Array; grad: Float32Array } {
    const tf = this.tf;
    const { R, P, arch } = this;
    const L = arch.numLayers;
    const w = arch.widths;
    const C = w[L]!;
    const grad = new Float32Array(R * P);
    const loss = new Float64Array(R);
    tf.tidy(() => {
      const perRun = this.firstLayer === 'per-run';
      const Xs: Tensor2D[] = [];
      const XTs: Tensor2D[] = [];
      let X: Tensor | null = null;
      if (perRun) {
        const n0 = w[0]!;
        const xt = new Float32Array(b * n0);
        for (let r = 0; r < R; r++) {
          const xr = xb.subarray(r * b * n0, (r + 1) * b * n0);
          Xs.push(tf.tensor2d(xr, [b, n0]));
          for (let k = 0; k < b; k++) for (let i = 0; i < n0; i++) xt[i * b + k] = xr[k * n0 + i]!;
          XTs.push(tf.tensor2d(xt, [n0, b])); // copied into the backend, so xt can be reused
        }
      } else X = tf.tensor3d(xb, [R, b, w[0]!]);
      const Ws: Tensor[] = [];
      const Bs: Tensor[] = [];
      for (let l = 1; l <= L; l++) {
        Ws.push(l === 1 && perRun ? tf.tensor(0) : this.packWeights(theta, l));
        Bs.push(this.packBiases(theta, l));
      }
      // Forward, keeping pre-activations z_l and activations h_l.
      const zs: Tensor[] = [];
      const hs: Tensor[] = [];
      let z1: Tensor;
      if (perRun) {
        const off = arch.weightOffset(1);
        const sz = w[0]! * w[1]!;
        z1 = tf.stack(Xs.map((x, r) => tf.matMul(x, tf.tensor2d(theta.subarray(r * P + off, r * P + off + sz), [w[0]!, w[1]!]))));
      } else z1 = tf.matMul(X as Tensor3D, Ws[0] as Tensor3D);
      let z = tf.add(z1, Bs[0]!);
      for (let l = 1; l <= L; l++) {
        if (l > 1) z = tf.add(tf.matMul(hs[l - 2] as Tensor3D, Ws[l - 1] as Tensor3D), Bs[l - 1]!);
        zs.push(z);
        if (l < L) hs.push(tf.relu(z));
      }
      const logp = tf.logSoftmax(zs[L - 1]!);
      // One-hot targets built here: TF.js-wasm 4.22's OneHot kernel ignores dtype 'float32' (writes int32 bits).
      const oh = new Float32Array(R * b * C);
      for (let k = 0; k < R * b; k++) oh[k * C + yb[k]!] = 1;
      const onehot = tf.tensor3d(oh, [R, b, C]);
      const lossT = tf.div(tf.neg(tf.sum(tf.mul(logp, onehot), [1, 2])), b);
      // Backward.
      let dz = tf.div(tf.sub(tf.exp(logp), onehot), b);
      for (let l = L; l >= 1; l--) {
        const [nin, nout] = [w[l - 1]!, w[l]!];
        this.scatter(grad, tf.sum(dz, 1).dataSync() as Float32Array, arch.biasOffset(l), nout);
        if (l === 1 && perRun) {
          // dW_1 = X_rᵀ dz_r per run, with X_rᵀ uploaded untransposed-for-XNNPACK ([n0, b] × [b, n1]).
          const parts = tf.unstack(dz) as Tensor2D[]; // R × [b, n1]
          const dW1 = tf.concat(parts.map((p, r) => tf.matMul(XTs[r]!, p).reshape([-1])));
          this.scatter(grad, dW1.dataSync() as Float32Array, arch.weightOffset(1), nin * nout);
        } else {
          const a = l === 1 ? (X as Tensor3D) : (hs[l - 2] as Tensor3D);
          this.scatter(grad, tf.matMul(a, dz as Tensor3D, true, false).dataSync() as Float32Array, arch.weightOffset(l), nin * nout);
        }
        if (l > 1) dz = tf.mul(tf.matMul(dz as Tensor3D, Ws[l - 1] as Tensor3D, false, true), tf.step(zs[l - 2]!));
      }
      loss.set(lossT.dataSync());
    });
    return { loss, grad };
  }

  /**
   * Accuracy and mean cross-entropy of every run on one shared data set (e.g. the test split), in f64 from the
   * f32 logits. The first layer is one 2-D matMul against all runs' first layers side by side ([N, n_0] × [n_0, R·n_1]).
   * @param x N × n_0 inputs; @param y N labels
   */
  evaluate(theta: Float32Array, x: Float32Array, y: Int32Array): { acc: Float64Array; loss: Float64Array } {
    const tf = this.tf;
    const { R, P, arch } = this;
    const L = arch.numLayers;
    const w = arch.widths;
    const N = y.length;
    const C = w[L]!;
    const n1 = w[1]!;
    const off = arch.weightOffset(1);
    const wcat = new Float32Array(w[0]! * R * n1);
    for (let i = 0; i < w[0]!; i++) for (let r = 0; r < R; r++) wcat.set(theta.subarray(r * P + off + i * n1, r * P + off + (i + 1) * n1), (i * R + r) * n1);
    const logits = tf.tidy(() => {
      let z = tf.transpose(tf.matMul(tf.tensor2d(x, [N, w[0]!]), tf.tensor2d(wcat, [w[0]!, R * n1])).reshape([N, R, n1]), [1, 0, 2]);
      z = tf.add(z, this.packBiases(theta, 1));
      for (let l = 2; l <= L; l++) z = tf.add(tf.matMul(tf.relu(z) as Tensor3D, this.packWeights(theta, l)), this.packBiases(theta, l));
      return z;
    });
    const lg = logits.dataSync() as Float32Array;
    logits.dispose();
    const acc = new Float64Array(R);
    const loss = new Float64Array(R);
    for (let r = 0; r < R; r++) {
      let correct = 0;
      let ce = 0;
      for (let k = 0; k < N; k++) {
        const o = (r * N + k) * C;
        let best = 0;
        let mx = lg[o]!;
        for (let c = 1; c < C; c++) {
          if (lg[o + c]! > mx) {
            mx = lg[o + c]!;
            best = c;
          }
        }
        let s = 0;
        for (let c = 0; c < C; c++) s += Math.exp(lg[o + c]! - mx);
        ce += mx + Math.log(s) - lg[o + y[k]!]!;
        if (best === y[k]) correct++;
      }
      acc[r] = correct / N;
      loss[r] = ce / N;
    }
    return { acc, loss };
  }
}
