#!/usr/bin/python3
"""NAS-Bench-101 PyTorch reference for epsinas (spec section 4), ONE logit.

Written from /work/shared/spec/metric.md section 4 and NAS-Bench-101's
published semantics (ModelSpec pruning, compute_vertex_channels, hash_module),
independently of the C code.  Run with /usr/bin/python3 (torch, numpy).

  nb101_ref.py goldens [--out ../golden/nb101.json] [--shared DIR] [-v]
  nb101_ref.py annotate [--out FILE] [--force] [-v]   adds epsilon_f64 / noise to small-epsilon cases
  nb101_ref.py check-records [--shared DIR]     hash + parameter count vs the 30 dataset records
  nb101_ref.py score --matrix JSON --ops JSON [--batch SPEC] [--batch-size N] [--weights A,B]

Python API: prune(matrix, ops), module_hash(matrix, ops), vertex_channels(...),
NB101Net(matrix, ops) (expects a pruned spec), score_spec(matrix, ops, x, weights).

Bias choice: no bias in any conv (stem, cell ops, projections) and a bias in
the final Linear. With it, params + 9*512 + 9 equals the dataset's
trainable_parameters (10-class head) for all 30 shared records
(check-records verifies this).
"""
import argparse
import datetime
import hashlib
import json
import os
import random
import sys
import time

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import epsref  # noqa: E402
from epsref import make_bn  # noqa: E402

NB101_WEIGHTS = (1e-4, 10.0)
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
DEFAULT_SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared"))
CIFAR_SPEC = "cifar10:$SHARED/data/cifar10/cifar10_test_sample260.bin"
HEAD_EXTRA = 9 * 512 + 9          # dataset counts Linear(512 -> 10)


# ---------------------------------------------------------------- spec handling
def _reach(start, neighbours):
    """The vertices reachable from start, following neighbours(vertex)."""
    seen = {start}
    stack = [start]
    while stack:
        for v in neighbours(stack.pop()):
            if v not in seen:
                seen.add(v)
                stack.append(v)
    return seen


def prune(matrix, ops):
    """Keep vertices reachable from the input that also reach the output.
    Returns (matrix, ops) or None when the input does not reach the output."""
    n = len(matrix)
    fwd = _reach(0, lambda u: [v for v in range(n) if matrix[u][v]])
    bwd = _reach(n - 1, lambda v: [u for u in range(n) if matrix[u][v]])
    if n - 1 not in fwd:
        return None
    keep = sorted(fwd & bwd)
    return [[matrix[i][j] for j in keep] for i in keep], [ops[i] for i in keep]


def module_hash(matrix, ops):
    """NAS-Bench-101 graph_util.hash_module with labels -1 input, -2 output,
    OPS.index(op) otherwise; Python-3 str() formatting of tuples and lists."""
    n = len(matrix)
    labels = [-1] + [OPS.index(o) for o in ops[1:-1]] + [-2]
    ins = [sum(matrix[u][v] for u in range(n)) for v in range(n)]
    outs = [sum(matrix[v][u] for u in range(n)) for v in range(n)]
    md5 = lambda s: hashlib.md5(s.encode("utf-8")).hexdigest()  # noqa: E731
    h = [md5(str((outs[v], ins[v], labels[v]))) for v in range(n)]
    for _ in range(n):
        h = [md5("".join(sorted(h[u] for u in range(n) if matrix[u][v])) + "|" +
                 "".join(sorted(h[w] for w in range(n) if matrix[v][w])) + "|" + h[v])
             for v in range(n)]
    return md5(str(sorted(h)))


def vertex_channels(matrix, cin, cout):
    n = len(matrix)
    ch = [0] * n
    ch[0], ch[n - 1] = cin, cout
    if n == 2:
        return ch
    feeders = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    base, extra = divmod(cout, len(feeders))
    for k, v in enumerate(feeders):
        ch[v] = base + (1 if k < extra else 0)
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            ch[v] = max(ch[d] for d in range(v + 1, n - 1) if matrix[v][d])
    return ch


# ---------------------------------------------------------------- modules
class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=1, padding=k // 2, bias=False)
        self.bn = make_bn(cout)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Cell(nn.Module):
    def __init__(self, matrix, ops, cin, cout):
        super().__init__()
        self.m, self.n = matrix, len(matrix)
        self.ch = vertex_channels(matrix, cin, cout)
        n = self.n
        self.proj = nn.ModuleDict()
        self.ops = nn.ModuleDict()
        for t in range(1, n - 1):
            if matrix[0][t]:
                self.proj[str(t)] = ConvBNReLU(cin, self.ch[t], 1)
            c = self.ch[t]
            self.ops[str(t)] = {"conv3x3-bn-relu": lambda: ConvBNReLU(c, c, 3),
                                "conv1x1-bn-relu": lambda: ConvBNReLU(c, c, 1),
                                "maxpool3x3": lambda: nn.MaxPool2d(3, stride=1, padding=1)}[ops[t]]()
        self.out_proj = ConvBNReLU(cin, cout, 1) if matrix[0][n - 1] else None

    def forward(self, x):
        m, n, ch = self.m, self.n, self.ch
        tensors = [x]
        cat = []
        for t in range(1, n - 1):
            terms = [tensors[s][:, :ch[t]] for s in range(1, t) if m[s][t]]
            if m[0][t]:
                terms.append(self.proj[str(t)](x))
            v = terms[0]
            for u in terms[1:]:
                v = v + u
            tensors.append(self.ops[str(t)](v))
            if m[t][n - 1]:
                cat.append(tensors[t])
        if not cat:
            return self.out_proj(x)
        out = cat[0] if len(cat) == 1 else torch.cat(cat, 1)
        if self.out_proj is not None:
            out = out + self.out_proj(x)
        return out


class NB101Net(nn.Module):
    """Stem Conv3x3(3->128)-BN-ReLU, 3 stacks x 3 cells (128, 256, 512), MaxPool 2x2/2
    before stacks 2 and 3, global average pool, Linear(512 -> 1). Pruned spec expected."""

    def __init__(self, matrix, ops, stem=128, stacks=3, cells=3):
        super().__init__()
        self.stem = ConvBNReLU(3, stem, 3)
        layers = []
        cin = c = stem
        for s in range(stacks):
            if s > 0:
                layers.append(nn.MaxPool2d(2, stride=2))
                c *= 2
            for _ in range(cells):
                layers.append(Cell(matrix, ops, cin, c))
                cin = c
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(c, 1)

    def forward(self, x):
        x = self.body(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))


def param_count(matrix, ops):
    return sum(p.numel() for p in NB101Net(matrix, ops).parameters())


def score_spec(matrix, ops, x, weights=NB101_WEIGHTS):
    p = prune(matrix, ops)
    if p is None:
        raise ValueError("no input->output path")
    net = NB101Net(*p)
    net.eval()
    eps, info = epsref.score_model(net, x, weights)
    info["params"] = sum(q.numel() for q in net.parameters())
    return eps, info


# ---------------------------------------------------------------- records
def load_records(shared):
    with open(os.path.join(shared, "data", "nb101", "nb101_30_archs.json")) as f:
        return json.load(f)


def cmd_check_records(args):
    recs = load_records(args.shared)
    bad = 0
    for r in recs:
        p = prune(r["matrix"], r["ops"])
        h = module_hash(*p)
        pc = param_count(*p) + HEAD_EXTRA
        ok = h == r["hash"] and pc == r["trainable_parameters"]
        bad += not ok
        print("%s %s params %d/%d" % ("ok " if ok else "BAD", r["hash"], pc, r["trainable_parameters"]))
    print("%d records, %d mismatches" % (len(recs), bad))
    return 1 if bad else 0


# ---------------------------------------------------------------- golden set
def I(ops):  # noqa: E743
    return ["input"] + list(ops) + ["output"]


def chain(ops):
    n = len(ops) + 2
    return [[1 if j == i + 1 else 0 for j in range(n)] for i in range(n)]


def golden_specs(recs):
    """(name, matrix, ops) in a fixed order."""
    c3, c1, mp = OPS
    specs = []
    for k in (0, 1, 3, 8, 14, 16, 22, 23):           # dataset records (7- and 6-vertex)
        specs.append(("record %s" % recs[k]["hash"], recs[k]["matrix"], recs[k]["ops"]))
    specs += [
        ("input->output only", [[0, 1], [0, 0]], I([])),
        ("one conv3x3", chain([c3]), I([c3])),
        ("one conv1x1 + direct", [[0, 1, 1], [0, 0, 1], [0, 0, 0]], I([c1])),
        ("one maxpool", chain([mp]), I([mp])),
        ("maxpool + direct", [[0, 1, 1], [0, 0, 1], [0, 0, 0]], I([mp])),
        ("maxpool chain of 3", chain([mp, mp, mp]), I([mp, mp, mp])),
        ("maxpool chain of 5", chain([mp] * 5), I([mp] * 5)),
        ("maxpool chain of 5 + direct",
         [[1 if (j == i + 1 or (i == 0 and j == 6)) else 0 for j in range(7)] for i in range(7)], I([mp] * 5)),
        ("conv chain", chain([c3, c1, c3]), I([c3, c1, c3])),
        ("three parallel (43/43/42 split)",
         [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5], I([c3, c1, mp])),
        ("truncation: wide vertex feeds narrower ones",
         [[0, 1, 0, 0, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5], I([c1, c3, mp])),
        ("unpruned: dead-end and unreachable vertices",
         [[0, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0],
          [0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0, 1], [0] * 7], I([c3, c1, c3, mp, c1])),
        ("unpruned: interior all dead, direct edge",
         [[0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], I([c3, c1])),
        ("interior maxpool projected sum",
         [[0, 1, 1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0] * 5], I([c1, mp, mp])),
    ]
    return specs


def case_record(name, matrix, ops, b, n, w, eps, info):
    return {"space": "nb101", "name": name, "matrix": matrix, "ops": ops, "batch": b, "batch_size": n,
            "weights": [float(v) for v in w], "epsilon": epsref.json_num(eps),
            "nan_reason": info["nan_reason"], "params": info["params"],
            "y": [{k: epsref.json_num(v) for k, v in s.items()} for s in info["y"]]}


def cmd_goldens(args):
    recs = load_records(args.shared)
    specs = golden_specs(recs)
    assert len(specs) >= 20
    for name, m, o in specs:
        p = prune(m, o)
        assert p is not None and sum(map(sum, p[0])) <= 9, name
    rng = random.Random(101)
    # NB101 is heavy (128-512 channels): batch 16 at the paper's weights, where
    # most cells underflow to NaN (spec section 7), and batch 32 at (1e-2, 1)
    # where they mostly give finite numbers.
    plan = [(s, "ramp", 16, NB101_WEIGHTS) for s in specs]
    plan += [(s, "gaussian:42", 16, NB101_WEIGHTS) for s in specs[0::2]]
    plan += [(s, CIFAR_SPEC, 16, NB101_WEIGHTS) for s in specs[1::2]]
    plan += [(s, "ramp", 32, (1e-2, 1.0)) for s in rng.sample(specs, 8)]
    batches, cases = {}, []
    t0 = time.time()
    for k, ((name, m, o), b, n, w) in enumerate(plan):
        key = epsref.batch_key(b, n)
        if key not in batches:
            batches[key] = epsref.load_batch(b, n, shared=args.shared)
        eps, info = score_spec(m, o, batches[key], w)
        cases.append(case_record(name, m, o, b, n, w, eps, info))
        if args.verbose:
            print("[%3d/%d %6.1fs] %-10s %2d %-6s eps=%-22r %s %s" % (
                k + 1, len(plan), time.time() - t0, b.split(":")[0], n, w[0], eps, name, info["nan_reason"]),
                file=sys.stderr, flush=True)
    doc = {"generator": "tests/reference/nb101_ref.py goldens", "torch": torch.__version__,
           "created": datetime.date.today().isoformat(),
           "notes": ("NB101 one logit, no conv biases, Linear bias; BN track_running_stats=False; torch %d threads, "
                     "flush-denormal off; 'name' documents the case; matrix/ops are as requested (unpruned "
                     "where named so); generation took %.0f s" % (torch.get_num_threads(), time.time() - t0)),
           "cases": cases}
    dt = annotate_f64(doc, args.shared, args.verbose)
    doc["notes"] += "; float64 annotation took %.0f s" % dt
    out = args.out or os.path.join(HERE, "..", "golden", "nb101.json")
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote %d cases to %s in %.1f s" % (len(cases), out, time.time() - t0))


# Below this, float32 rounding (~1e-5 absolute in NB101) can exceed the test
# tolerance (1e-4 rel + 1e-5 abs); larger epsilons are safe without a check.
NOISE_BELOW = 0.1


def annotate_f64(doc, shared, verbose=False, force=True):
    """Adds epsilon_f64 (the same forward in float64) to every case whose
    float32 epsilon is finite and below NOISE_BELOW, and "noise": true when the
    float32 reference is further than 1e-4 rel + 2e-6 abs from it: there
    epsilon is float32 rounding noise (spec section 8) and any float32
    implementation lands somewhere near the float64 value."""
    from graph_ref import epsilon64
    batches = {}
    t0 = time.time()
    for c in doc["cases"]:
        e32 = c["epsilon"]
        if e32 is None or e32 >= NOISE_BELOW or ("epsilon_f64" in c and not force):
            continue
        key = epsref.batch_key(c["batch"], c["batch_size"])
        if key not in batches:
            batches[key] = epsref.load_batch(c["batch"], c["batch_size"], shared=shared).double()
        net = NB101Net(*prune(c["matrix"], c["ops"])).double()
        ys = []
        with torch.no_grad():
            for w in c["weights"]:
                epsref.constant_init(net, w)
                ys.append(net(batches[key]).reshape(-1).numpy())
        e64 = epsilon64(*ys)
        c["epsilon_f64"] = epsref.json_num(e64)
        c["noise"] = not (e64 == e64 and abs(e32 - e64) <= 1e-4 * abs(e64) + 2e-6)
        if verbose:
            print("[%6.1fs] f64 %-24r f32 %-24r %s %s" % (time.time() - t0, e64, e32, "NOISE" if c["noise"] else "ok",
                                                        c["name"]), file=sys.stderr, flush=True)
    return time.time() - t0


def cmd_annotate(args):
    path = args.out or os.path.join(HERE, "..", "golden", "nb101.json")
    with open(path) as f:
        doc = json.load(f)
    dt = annotate_f64(doc, args.shared, args.verbose, force=args.force)
    doc["notes"] += "; float64 annotation took %.0f s" % dt
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")
    print("annotated %s in %.1f s" % (path, dt))


def cmd_score(args):
    m, o = json.loads(args.matrix), json.loads(args.ops)
    x = epsref.load_batch(args.batch, args.batch_size, shared=args.shared)
    w = tuple(float(v) for v in args.weights.split(","))
    eps, info = score_spec(m, o, x, w)
    rec = case_record("", m, o, args.batch, args.batch_size, w, eps, info)
    rec["hash"] = module_hash(*prune(m, o))
    rec["seconds"] = info["seconds"]
    print(json.dumps(rec, allow_nan=False))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("goldens", "annotate", "check-records", "score"):
        sp = sub.add_parser(name)
        sp.add_argument("--shared", default=DEFAULT_SHARED, help="path substituted for $SHARED")
        sp.add_argument("--threads", type=int, default=2)
        if name in ("goldens", "annotate"):
            sp.add_argument("--out", default=None)
            sp.add_argument("--force", action="store_true", help="annotate: recompute existing epsilon_f64")
            sp.add_argument("-v", "--verbose", action="store_true")
        if name == "score":
            sp.add_argument("--matrix", required=True)
            sp.add_argument("--ops", required=True)
            sp.add_argument("--batch", default="ramp")
            sp.add_argument("--batch-size", type=int, default=32)
            sp.add_argument("--weights", default="1e-4,10")
    args = p.parse_args(argv)
    epsref.setup_torch(args.threads)
    rc = {"goldens": cmd_goldens, "annotate": cmd_annotate, "check-records": cmd_check_records, "score": cmd_score}[args.cmd](args)
    sys.exit(rc or 0)


if __name__ == "__main__":
    main()
