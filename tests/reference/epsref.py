"""epsref -- shared PyTorch reference helpers for the epsinas score.

Written from /work/shared/spec/metric.md (sections 1-3, 6-8), independently
of the C engine.  Other references (NB101, graph, NLP) import this module, so
the API below is kept stable.

Run with Debian's interpreter: /usr/bin/python3 (torch 1.13, numpy).

API
---
setup_torch(threads=2)
    torch.set_num_threads(threads); torch.set_flush_denormal(False)
    (gradual underflow is part of the metric, spec section 7).  Called on import
    with 2 threads.

load_batch(spec: str, n: int, shape=(3, 32, 32)) -> torch.Tensor   (float32, n x C x H x W, NCHW)
    shape is the image shape the network takes (NB201 ImageNet16-120: 3x16x16).
    ramp and gaussian are drawn at that shape; cifar10 records are 3x32x32 only
    (ValueError for another shape).
    "ramp"          image i of n: every value = float32(i) / float32(n); not normalised.
    "cifar10:PATH"  CIFAR-10 binary records (3073 bytes: label, 1024 R, 1024 G,
                    1024 B, row-major 32x32); the first n records (ValueError if
                    fewer).  v = float32(byte) / float32(255);
                    v = (v - mean_c) / std_c in float32, mean_c = float32(m/255.0),
                    std_c = float32(s/255.0), m = (125.3, 123.0, 113.9),
                    s = (63.0, 62.1, 66.7).  "$SHARED" in PATH is replaced by the
                    `shared` argument (or env EPS_SHARED, default /work/shared).
    "gaussian:SEED" splitmix64 (state = SEED) -> uniforms u = (z >> 11) * 2^-53;
                    Box-Muller in double per pair: u1 = 1 - next(), u2 = next(),
                    r = sqrt(-2 ln u1), r cos(2 pi u2), r sin(2 pi u2); the values
                    fill the tensor in flat NCHW order, each rounded to float32
                    (an odd total drops the last sine).
                    Transcendentals use Python's math (the platform libm).
    batch_key(spec, n) gives a stable string used for caching.

make_bn(c) -> nn.BatchNorm2d(c, eps=1e-5, affine=True, track_running_stats=False)
    Every BatchNorm in the references must be built with this (batch statistics
    always, train/eval mode irrelevant).

constant_init(model, w)
    Every Conv/Linear weight and every BatchNorm gamma := w; every bias and BN
    beta := 0.  (Other parameter types raise; NLP models handle their own init.)

output_stats(y) -> {"min", "max", "mean"}
    NaN-aware min/max and plain mean (float64 accumulation) of the raw output.

epsilon(y1, y2, weights=None) -> (eps, info)
    Spec section 1 steps 1-3, computed in float32 numpy exactly like the paper's
    reference: p = (y - nanmin y) / (nanmax y - nanmin y); P = [p1; p2];
    P[P == 0] = NaN; eps = nanmean(|p1 - p2|) / nanmean(P).  eps is a Python
    float, NaN (never an exception) when undefined.
    info = {"y": [stats1, stats2], "nan_reason": "" or a short reason,
            "notes": [...] (non-fatal observations such as non-finite entries)}.

score_model(model, x, weights) -> (eps, info)
    For each w: constant_init(model, w); y = model(x).flatten() (no_grad);
    then epsilon(y1, y2, weights).  info also gets "seconds" (forward time).

json_num(v) -> float or None (None for NaN/inf, for JSON goldens).
"""
import math
import os
import warnings

import numpy as np
import torch
import torch.nn as nn

__all__ = ["setup_torch", "load_batch", "batch_key", "make_bn", "constant_init",
           "output_stats", "epsilon", "score_model", "json_num",
           "CIFAR_MEAN", "CIFAR_STD", "DEFAULT_SHARED"]

CIFAR_MEAN = (125.3, 123.0, 113.9)
CIFAR_STD = (63.0, 62.1, 66.7)
DEFAULT_SHARED = os.environ.get("EPS_SHARED", "/work/shared")

_M64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB


def setup_torch(threads=2):
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


setup_torch(2)


# ---------------------------------------------------------------- batches
def _ramp(n, shape=(3, 32, 32)):
    v = np.arange(n, dtype=np.float32) / np.float32(n)          # float32 division
    x = np.empty((n,) + tuple(shape), dtype=np.float32)
    x[...] = v[:, None, None, None]
    return x


def _cifar10(path, n):
    rec = 3073
    with open(path, "rb") as f:
        data = f.read(rec * n)
    if len(data) < rec * n:
        raise ValueError("cifar10: %s has %d records, need %d" % (path, len(data) // rec, n))
    raw = np.frombuffer(data, dtype=np.uint8).reshape(n, rec)[:, 1:].reshape(n, 3, 32, 32)
    v = raw.astype(np.float32) / np.float32(255)
    mean = np.array([m / 255.0 for m in CIFAR_MEAN], dtype=np.float32)[None, :, None, None]
    std = np.array([s / 255.0 for s in CIFAR_STD], dtype=np.float32)[None, :, None, None]
    v = (v - mean) / std
    assert v.dtype == np.float32
    return np.ascontiguousarray(v)


def splitmix64_uniforms(seed, count):
    """`count` uniforms in [0,1) (float64) from splitmix64 with state = seed."""
    if not (0 <= seed <= _M64):
        raise ValueError("gaussian seed must be in [0, 2^64)")
    with np.errstate(over="ignore"):
        k = np.arange(1, count + 1, dtype=np.uint64)
        z = np.uint64(seed) + k * np.uint64(_GAMMA)           # wraps mod 2^64
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_MUL1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MUL2)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)   # exact


def _splitmix64_scalar(seed, count):
    """Pure-Python check of splitmix64_uniforms (used by self_test)."""
    s = seed
    out = []
    for _ in range(count):
        s = (s + _GAMMA) & _M64
        z = s
        z = ((z ^ (z >> 30)) * _MUL1) & _M64
        z = ((z ^ (z >> 27)) * _MUL2) & _M64
        z ^= z >> 31
        out.append((z >> 11) * 2.0 ** -53)
    return out


def _gaussian(seed, n, shape=(3, 32, 32)):
    total = n * shape[0] * shape[1] * shape[2]
    pairs = (total + 1) // 2
    u = splitmix64_uniforms(seed, 2 * pairs).tolist()
    out = [0.0] * (2 * pairs)
    two_pi = 2.0 * math.pi
    log, sqrt, cos, sin = math.log, math.sqrt, math.cos, math.sin
    for j in range(0, 2 * pairs, 2):
        u1 = 1.0 - u[j]
        t = two_pi * u[j + 1]
        r = sqrt(-2.0 * log(u1))
        out[j] = r * cos(t)
        out[j + 1] = r * sin(t)
    return np.array(out[:total], dtype=np.float64).astype(np.float32).reshape((n,) + tuple(shape))


def _expand(path, shared):
    shared = shared or DEFAULT_SHARED
    return path.replace("$SHARED", shared).replace("${SHARED}", shared)


def load_batch(spec, n, shared=None, shape=(3, 32, 32)):
    """Batch `spec` of `n` images of `shape` (C, H, W) as a float32 NCHW torch tensor (see module doc)."""
    n = int(n)
    shape = tuple(int(v) for v in shape)
    if n <= 0:
        raise ValueError("batch size must be positive")
    if spec == "ramp":
        x = _ramp(n, shape)
    elif spec.startswith("cifar10:"):
        if shape != (3, 32, 32):
            raise ValueError("cifar10 records are 3x32x32, not %dx%dx%d" % shape)
        x = _cifar10(_expand(spec[len("cifar10:"):], shared), n)
    elif spec.startswith("gaussian:"):
        s = spec[len("gaussian:"):]
        if not s.isdigit():
            raise ValueError("gaussian:SEED needs a non-negative integer")
        x = _gaussian(int(s), n, shape)
    else:
        raise ValueError("unknown batch spec %r" % spec)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def batch_key(spec, n, shape=(3, 32, 32)):
    if tuple(shape) == (3, 32, 32):
        return "%s#%d" % (spec, int(n))
    return "%s#%d#%s" % (spec, int(n), "x".join(str(int(v)) for v in shape))


# ---------------------------------------------------------------- model helpers
def make_bn(c):
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1, affine=True, track_running_stats=False)


def constant_init(model, w):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                m.weight.fill_(w)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                if m.weight is not None:
                    m.weight.fill_(w)
                if m.bias is not None:
                    m.bias.zero_()
            else:
                if any(True for _ in m.parameters(recurse=False)):
                    raise TypeError("constant_init: unsupported parameterised module %s"
                                    % type(m).__name__)
    return model


# ---------------------------------------------------------------- the score
def _np32(y):
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    return np.asarray(y, dtype=np.float32).reshape(-1)


def output_stats(y):
    y = _np32(y)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        mn = float(np.nanmin(y)) if y.size else float("nan")
        mx = float(np.nanmax(y)) if y.size else float("nan")
        mean = float(np.mean(y.astype(np.float64))) if y.size else float("nan")
    return {"min": mn, "max": mx, "mean": mean}


def _wstr(weights, k):
    if weights is None:
        return "pass %d" % (k + 1)
    return "w=%s" % repr(float(weights[k]))


def epsilon(y1, y2, weights=None):
    """epsilon per spec section 1 (float32, numpy semantics). Returns (eps, info)."""
    ys = [_np32(y1), _np32(y2)]
    if ys[0].shape != ys[1].shape:
        raise ValueError("epsilon: outputs have different sizes")
    info = {"y": [output_stats(y) for y in ys], "nan_reason": "", "notes": []}
    reasons = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ps = []
        for k, y in enumerate(ys):
            fin = np.isfinite(y)
            if not fin.all():
                what = "non-finite output at %s (%d of %d)" % (_wstr(weights, k),
                                                                 int((~fin).sum()), y.size)
                info["notes"].append(what)
                if np.isinf(y).any() or not fin.any():
                    reasons.append("non-finite output at %s" % _wstr(weights, k))
            mn, mx = np.nanmin(y), np.nanmax(y)
            if np.isnan(mn):
                reasons.append("all-NaN output at %s" % _wstr(weights, k))
            elif mx == mn:
                reasons.append("constant output at %s" % _wstr(weights, k))
            ps.append((y - mn) / (mx - mn))
        P = np.stack(ps).astype(np.float32)
        P[P == 0] = np.nan
        num = np.nanmean(np.abs(P[0, :] - P[1, :]))
        den = np.nanmean(P)
        eps = num / den
    eps = float(eps)
    if not math.isfinite(eps):
        if not reasons:
            if np.isnan(num):
                reasons.append("no image position valid in both passes")
            elif np.isnan(den) or den == 0:
                reasons.append("0/0 in epsilon")
            else:
                reasons.append("non-finite epsilon")
        info["nan_reason"] = "; ".join(reasons)
        if math.isinf(eps):
            eps = float("nan")
    info["numerator"] = float(num)
    info["denominator"] = float(den)
    return eps, info


def score_model(model, x, weights):
    import time
    ys = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for w in weights:
            constant_init(model, w)
            ys.append(model(x).reshape(-1).clone())
    dt = time.perf_counter() - t0
    eps, info = epsilon(ys[0], ys[1], weights)
    info["seconds"] = dt
    return eps, info


def json_num(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


# ---------------------------------------------------------------- self test
def self_test():
    u = splitmix64_uniforms(42, 1000)
    assert list(u) == _splitmix64_scalar(42, 1000)
    big = (1 << 64) - 5
    assert list(splitmix64_uniforms(big, 50)) == _splitmix64_scalar(big, 50)
    r = load_batch("ramp", 256)
    assert r.dtype == torch.float32 and tuple(r.shape) == (256, 3, 32, 32)
    assert float(r[3, 2, 5, 7]) == float(np.float32(3) / np.float32(256))
    g = load_batch("gaussian:42", 4)
    g2 = load_batch("gaussian:42", 2)
    assert torch.equal(g[:2], g2)
    # other shapes: the same stream in NCHW order, ramp constant per image
    s = load_batch("gaussian:42", 4, shape=(3, 16, 16))
    assert tuple(s.shape) == (4, 3, 16, 16)
    assert torch.equal(s.reshape(-1)[:1000], g.reshape(-1)[:1000])
    odd = load_batch("gaussian:42", 3, shape=(1, 3, 3))
    assert torch.equal(odd.reshape(-1), g.reshape(-1)[:27])
    r16 = load_batch("ramp", 8, shape=(3, 16, 16))
    assert float(r16[5, 1, 15, 0]) == float(np.float32(5) / np.float32(8))
    e, info = epsilon(np.ones(8, np.float32), np.arange(8, dtype=np.float32), (1e-7, 1.0))
    assert math.isnan(e) and "constant output at w=1e-07" in info["nan_reason"], info
    e, _ = epsilon(np.arange(8, dtype=np.float32), np.arange(8, dtype=np.float32) * 2)
    assert e == 0.0
    return True


if __name__ == "__main__":
    print("self test:", self_test())
