#!/usr/bin/python3
"""NAS-Bench-201 PyTorch reference for epsinas (spec section 3), C=16, N=5, ONE logit.

Written from /work/shared/spec/metric.md only.  Usage (run with /usr/bin/python3):

  nb201_ref.py goldens [--out ../golden/nb201.json] [--shared DIR]
  nb201_ref.py dataset-goldens [--out ../golden/nb201_datasets.json]
  nb201_ref.py score --arch STR --batch SPEC --batch-size N [--weights A,B] [--dataset NAME] [--shared DIR]
  nb201_ref.py time  --arch STR --batch ramp --batch-size 256 [--repeat R]
  nb201_ref.py check-nan [--n 100] [--batch ramp] [--batch-size 32] [--seed 7] [--dataset NAME]

Datasets (DATASETS): cifar10 and cifar100 feed 3x32x32 images, imagenet16-120
3x16x16 (NAS-Bench-201's downsampled ImageNet); the network is the same
C=16, N=5 stack with ONE output unit for all three (spec sections 1 and 3: the
classifier has one output whatever the dataset's classes), so params do not
depend on the dataset and MACs scale with the input area.

Python API: parse_arch(s), NB201Net(arch), param_count(arch), mac_count(arch, shape),
has_free_path(arch), score_arch(arch, x, weights), OPS, DATASETS.
"""
import argparse
import datetime
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

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_WEIGHTS = (1e-7, 1.0)
DEFAULT_SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared"))
CIFAR_SPEC = "cifar10:$SHARED/data/cifar10/cifar10_test_sample260.bin"

# dataset -> (image shape C, H, W; classes of the dataset, informative only)
DATASETS = {
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "imagenet16-120": ((3, 16, 16), 120),
}

EXAMPLE_1 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
EXAMPLE_2 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


# ---------------------------------------------------------------- arch strings
def parse_arch(s):
    """'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' -> [[(op, src)], [(op,0),(op,1)], [...]]."""
    groups = s.strip().split("+")
    if len(groups) != 3:
        raise ValueError("arch needs 3 groups: %r" % s)
    nodes = []
    for j, g in enumerate(groups, start=1):
        if not (g.startswith("|") and g.endswith("|")):
            raise ValueError("bad group %r" % g)
        items = [t for t in g[1:-1].split("|")]
        if len(items) != j:
            raise ValueError("node %d needs %d edges: %r" % (j, j, g))
        edges = []
        for i, it in enumerate(items):
            op, _, src = it.partition("~")
            if op not in OPS:
                raise ValueError("unknown op %r" % op)
            if src != str(i):
                raise ValueError("edge %r into node %d must have source %d" % (it, j, i))
            edges.append((op, i))
        nodes.append(edges)
    return nodes


def arch_str(ops6):
    """6 ops in string order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2) -> arch string."""
    o = list(ops6)
    return "|%s~0|+|%s~0|%s~1|+|%s~0|%s~1|%s~2|" % tuple(o)


def arch_ops(s):
    return [op for edges in parse_arch(s) for op, _ in edges]


def has_live_path(s):
    """True if some input->output path avoids `none` edges (output not identically 0)."""
    reach = {0}
    for j, edges in enumerate(parse_arch(s), start=1):
        if any(src in reach and op != "none" for op, src in edges):
            reach.add(j)
    return 3 in reach


def has_free_path(s):
    """True if some input->output path uses only skip_connect/avg_pool_3x3 edges."""
    reach = {0}
    for j, edges in enumerate(parse_arch(s), start=1):
        if any(src in reach and op in ("skip_connect", "avg_pool_3x3") for op, src in edges):
            reach.add(j)
    return 3 in reach


# ---------------------------------------------------------------- modules
class ReLUConvBN(nn.Module):
    def __init__(self, cin, cout, k, stride, pad):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(inplace=False),
                                nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False),
                                make_bn(cout))

    def forward(self, x):
        return self.op(x)


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


class Identity(nn.Module):
    def forward(self, x):
        return x


def make_op(name, c):
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(name)


class Cell(nn.Module):
    def __init__(self, nodes, c):
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList()
        for edges in nodes:
            for op, _ in edges:
                self.edges.append(make_op(op, c))

    def forward(self, x):
        states = [x]
        k = 0
        for edges in self.nodes:
            acc = None
            for _, src in edges:
                t = self.edges[k](states[src])
                k += 1
                acc = t if acc is None else acc + t
            states.append(acc)
        return states[-1]


class ResNetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, 2, 1)
        self.conv_b = ReLUConvBN(cout, cout, 3, 1, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2, padding=0),
                                      nn.Conv2d(cin, cout, 1, stride=1, padding=0, bias=False))

    def forward(self, x):
        b = self.conv_b(self.conv_a(x))
        return self.shortcut(x) + b


class NB201Net(nn.Module):
    def __init__(self, arch, C=16, N=5, num_classes=1):
        super().__init__()
        nodes = parse_arch(arch) if isinstance(arch, str) else arch
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), make_bn(C))
        layers = []
        c = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetBlock(c, 2 * c))
                c *= 2
            for _ in range(N):
                layers.append(Cell(nodes, c))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(make_bn(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.cells(x)
        x = self.lastact(x)
        x = self.pool(x).flatten(1)
        return self.classifier(x)


def param_count(arch):
    return sum(p.numel() for p in NB201Net(arch).parameters())


def mac_count(arch, shape=(3, 32, 32)):
    """Multiply-accumulates per image of the Conv2d and Linear layers, from
    the shapes a forward pass at `shape` produces (PyTorch's own shapes)."""
    net = NB201Net(arch)
    total = [0]

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total[0] += out.shape[1] * out.shape[2] * out.shape[3] * k

    def lin_hook(m, inp, out):
        total[0] += m.in_features * m.out_features

    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(lin_hook)
    with torch.no_grad():
        net(torch.zeros((2,) + tuple(shape)))      # 2 images: BN needs > 1 value per channel
    return total[0]


assert param_count(EXAMPLE_1) == 128721, param_count(EXAMPLE_1)
assert param_count(EXAMPLE_2) == 801841, param_count(EXAMPLE_2)


# ---------------------------------------------------------------- scoring
def score_arch(arch, x, weights=NB201_WEIGHTS):
    net = NB201Net(arch)
    net.eval()
    params = sum(p.numel() for p in net.parameters())
    eps, info = epsref.score_model(net, x, weights)
    info["params"] = params
    return eps, info


def case_record(arch, batch, n, weights, eps, info):
    return {"space": "nb201", "arch": arch, "batch": batch, "batch_size": n,
            "weights": [float(w) for w in weights],
            "epsilon": epsref.json_num(eps), "nan_reason": info["nan_reason"],
            "params": info["params"],
            "y": [{k: epsref.json_num(v) for k, v in s.items()} for s in info["y"]]}


# ---------------------------------------------------------------- golden set
RANDOM_SEED = 201          # random.Random(RANDOM_SEED): 25 cells, 6 uniform draws from OPS each


def golden_archs():
    A = arch_str
    fixed = [
        # uniform cells
        A(["none"] * 6), A(["skip_connect"] * 6), A(["avg_pool_3x3"] * 6),
        A(["nor_conv_3x3"] * 6), A(["nor_conv_1x1"] * 6),
        # the spec examples
        EXAMPLE_1, EXAMPLE_2,
        # only one live path
        A(["none", "none", "none", "skip_connect", "none", "none"]),          # 0->3 skip
        A(["none", "none", "none", "nor_conv_3x3", "none", "none"]),          # 0->3 conv3
        A(["none", "none", "none", "avg_pool_3x3", "none", "none"]),          # 0->3 pool
        A(["none", "none", "none", "nor_conv_1x1", "none", "none"]),          # 0->3 conv1
        A(["skip_connect", "none", "skip_connect", "none", "none", "skip_connect"]),  # 0-1-2-3 skips
        A(["nor_conv_3x3", "none", "nor_conv_1x1", "none", "none", "avg_pool_3x3"]),  # 0-1-2-3 mixed
        A(["avg_pool_3x3", "none", "none", "none", "avg_pool_3x3", "none"]),  # 0-1-3 pools
        A(["skip_connect", "none", "none", "none", "nor_conv_3x3", "none"]),  # 0-1-3 skip,conv
        # node 3 only sees none
        A(["nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none", "none", "none"]),
        A(["skip_connect", "skip_connect", "skip_connect", "none", "none", "none"]),
        A(["avg_pool_3x3", "nor_conv_1x1", "skip_connect", "none", "none", "none"]),
        # node 3 fed only by dead nodes (no edge from 0 reaches them)
        A(["none", "none", "skip_connect", "none", "skip_connect", "skip_connect"]),
        # skip-only paths plus convs
        A(["nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_3x3"]),
        A(["skip_connect", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1", "nor_conv_3x3", "skip_connect"]),
        A(["nor_conv_1x1", "skip_connect", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1", "skip_connect"]),
        A(["skip_connect", "nor_conv_1x1", "skip_connect", "nor_conv_3x3", "nor_conv_1x1", "nor_conv_3x3"]),
        A(["avg_pool_3x3", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3"]),
        # mixtures without a free path (expected NaN at 1e-7)
        A(["nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_3x3"]),
        A(["nor_conv_3x3", "avg_pool_3x3", "skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1"]),
        A(["skip_connect", "avg_pool_3x3", "nor_conv_3x3", "none", "nor_conv_1x1", "nor_conv_3x3"]),
        # mixtures with a free path
        A(["nor_conv_3x3", "avg_pool_3x3", "nor_conv_1x1", "none", "none", "skip_connect"]),
        A(["skip_connect", "nor_conv_3x3", "none", "avg_pool_3x3", "nor_conv_1x1", "none"]),
        A(["avg_pool_3x3", "skip_connect", "avg_pool_3x3", "skip_connect", "avg_pool_3x3", "skip_connect"]),
        A(["none", "avg_pool_3x3", "none", "none", "none", "skip_connect"]),
    ]
    rng = random.Random(RANDOM_SEED)
    out = []
    for a in fixed:
        if a not in out:
            out.append(a)
    n_rand = 0
    while n_rand < 25:
        a = A([rng.choice(OPS) for _ in range(6)])
        if a not in out:
            out.append(a)
            n_rand += 1
    return out


def cached_batch(batches, spec, n, shared, shape=(3, 32, 32)):
    """The batch (spec, n, shape), loaded once per golden run."""
    key = epsref.batch_key(spec, n, shape)
    if key not in batches:
        batches[key] = epsref.load_batch(spec, n, shared=shared, shape=shape)
    return batches[key]


def write_goldens(doc, out, t0):
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote %d cases to %s in %.1f s" % (len(doc["cases"]), out, time.time() - t0))


def cmd_goldens(args):
    archs = golden_archs()
    assert len(set(archs)) == len(archs) >= 48
    # (batch, n, weights, arch list)
    small = archs[:12] + archs[-8:]                    # ~20 cells at batch 32
    conv_free = [a for a in archs if has_free_path(a)]
    conv_dead = [a for a in archs if not has_free_path(a) and has_live_path(a)]
    alt_w = (conv_dead[:7] + conv_free[:3])[:10]      # weights (1e-3, 1): mostly NaN at 1e-7
    plan = []
    for b in ("ramp", "gaussian:42", CIFAR_SPEC):
        plan += [(b, 256, NB201_WEIGHTS, a) for a in archs]
    for b in ("ramp", "gaussian:42"):
        plan += [(b, 32, NB201_WEIGHTS, a) for a in small]
    plan += [("ramp", 256, (1e-3, 1.0), a) for a in alt_w]

    batches = {}
    cases = []
    t0 = time.time()
    for k, (b, n, w, a) in enumerate(plan):
        eps, info = score_arch(a, cached_batch(batches, b, n, args.shared), w)
        cases.append(case_record(a, b, n, w, eps, info))
        if args.verbose:
            print("[%3d/%d %6.1fs] %-12s %3d %-8s eps=%-22r %s %s" % (
                k + 1, len(plan), time.time() - t0, b.split(":")[0], n, w[0], eps, a,
                info["nan_reason"]), file=sys.stderr, flush=True)
    doc = {"generator": "tests/reference/nb201_ref.py goldens",
           "torch": torch.__version__,
           "created": datetime.date.today().isoformat(),
           "notes": ("NB201 C=16 N=5, one logit; BN track_running_stats=False; "
                     "torch %d threads, flush-denormal off; random cells: random.Random(%d), "
                     "6 uniform choices from %s; generation took %.0f s"
                     % (torch.get_num_threads(), RANDOM_SEED, list(OPS), time.time() - t0)),
           "cases": cases}
    write_goldens(doc, args.out or os.path.join(HERE, "..", "golden", "nb201.json"), t0)


def dataset_archs():
    """16 cells of the golden set: the 12 first hand-picked (uniform cells,
    the spec examples, single live paths) and the last 4 random ones."""
    archs = golden_archs()
    return archs[:12] + archs[-4:]


def cmd_dataset_goldens(args):
    """Goldens for the datasets beyond CIFAR-10 (tests/golden/nb201_datasets.json)."""
    archs = dataset_archs()
    # gaussian at batch 32: float32 denormals at w = 1e-7 make its passes
    # several times slower than ramp's (tests/reference/README.md)
    plan = []                                       # (dataset, batch, n, arch)
    plan += [("imagenet16-120", "ramp", 64, a) for a in archs]
    plan += [("imagenet16-120", "gaussian:42", 32, a) for a in archs]
    plan += [("imagenet16-120", "ramp", 256, a) for a in archs[:8]]
    plan += [("cifar100", "ramp", 64, a) for a in archs[:8]]
    plan += [("cifar100", "gaussian:42", 32, a) for a in archs[:4]]
    batches, cases, macs = {}, [], {}
    t0 = time.time()
    for k, (ds, b, n, a) in enumerate(plan):
        shape = DATASETS[ds][0]
        eps, info = score_arch(a, cached_batch(batches, b, n, args.shared, shape), NB201_WEIGHTS)
        rec = case_record(a, b, n, NB201_WEIGHTS, eps, info)
        rec["dataset"] = ds
        if (a, shape) not in macs:
            macs[(a, shape)] = mac_count(a, shape)
        rec["macs"] = macs[(a, shape)]
        cases.append(rec)
        if args.verbose:
            print("[%3d/%d %6.1fs] %-14s %-11s %3d eps=%-22r %s %s" % (
                k + 1, len(plan), time.time() - t0, ds, b, n, eps, a, info["nan_reason"]),
                file=sys.stderr, flush=True)
    doc = {"generator": "tests/reference/nb201_ref.py dataset-goldens",
           "torch": torch.__version__,
           "created": datetime.date.today().isoformat(),
           "notes": ("NB201 C=16 N=5, one logit for every dataset (spec sections 1, 3); "
                     "imagenet16-120 input 3x16x16, cifar100 3x32x32; ramp and gaussian:42 drawn "
                     "at the input shape (epsref.load_batch); macs = Conv2d + Linear "
                     "multiply-accumulates per image from PyTorch's shapes; torch %d threads, "
                     "flush-denormal off; generation took %.0f s"
                     % (torch.get_num_threads(), time.time() - t0)),
           "cases": cases}
    write_goldens(doc, args.out or os.path.join(HERE, "..", "golden", "nb201_datasets.json"), t0)


def parse_weights(s):
    w = tuple(float(v) for v in s.split(","))
    if len(w) != 2:
        raise ValueError("--weights needs A,B")
    return w


def cmd_score(args):
    shape = DATASETS[args.dataset][0]
    x = epsref.load_batch(args.batch, args.batch_size, shared=args.shared, shape=shape)
    w = parse_weights(args.weights)
    eps, info = score_arch(args.arch, x, w)
    rec = case_record(args.arch, args.batch, args.batch_size, w, eps, info)
    rec["dataset"] = args.dataset
    rec["macs"] = mac_count(args.arch, shape)
    rec["free_path"] = has_free_path(args.arch)
    rec["seconds"] = info["seconds"]
    print(json.dumps(rec, allow_nan=False))


def cmd_time(args):
    x = epsref.load_batch(args.batch, args.batch_size, shared=args.shared)
    w = parse_weights(args.weights)
    times = []
    with torch.no_grad():
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            net = NB201Net(args.arch)
            net.eval()
            for wi in w:
                epsref.constant_init(net, wi)
                net(x)
            times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"arch": args.arch, "batch": args.batch, "batch_size": args.batch_size,
                      "threads": torch.get_num_threads(), "repeat": args.repeat,
                      "seconds_per_arch": times[0],
                      "median_seconds": times[len(times) // 2]}))


def cmd_check_nan(args):
    """Spec section 7: NaN at (1e-7, 1) iff no skip/avg-pool-only input->output path."""
    rng = random.Random(args.seed)
    x = epsref.load_batch(args.batch, args.batch_size, shared=args.shared, shape=DATASETS[args.dataset][0])
    seen, bad, n_nan = set(), [], 0
    while len(seen) < args.n:
        a = arch_str([rng.choice(OPS) for _ in range(6)])
        if a in seen:
            continue
        seen.add(a)
        eps, info = score_arch(a, x, NB201_WEIGHTS)
        isnan = eps != eps
        n_nan += isnan
        if isnan == has_free_path(a):
            bad.append({"arch": a, "epsilon": epsref.json_num(eps),
                        "nan_reason": info["nan_reason"], "free_path": has_free_path(a)})
    print(json.dumps({"dataset": args.dataset, "checked": len(seen), "nan": n_nan, "counter_examples": bad}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, batch=None, n=None):
        sp.add_argument("--shared", default=DEFAULT_SHARED, help="path substituted for $SHARED")
        sp.add_argument("--threads", type=int, default=2)
        if batch is not None:
            sp.add_argument("--batch", default=batch)
            sp.add_argument("--batch-size", type=int, default=n)

    g = sub.add_parser("goldens")
    common(g)
    g.add_argument("--out", default=None)
    g.add_argument("-v", "--verbose", action="store_true")
    dg = sub.add_parser("dataset-goldens")
    common(dg)
    dg.add_argument("--out", default=None)
    dg.add_argument("-v", "--verbose", action="store_true")
    s = sub.add_parser("score")
    common(s, "ramp", 256)
    s.add_argument("--arch", required=True)
    s.add_argument("--weights", default="1e-7,1")
    s.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    t = sub.add_parser("time")
    common(t, "ramp", 256)
    t.add_argument("--arch", required=True)
    t.add_argument("--weights", default="1e-7,1")
    t.add_argument("--repeat", type=int, default=3)
    c = sub.add_parser("check-nan")
    common(c, "ramp", 32)
    c.add_argument("--n", type=int, default=100)
    c.add_argument("--seed", type=int, default=7)
    c.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    args = p.parse_args(argv)
    epsref.setup_torch(args.threads)
    {"goldens": cmd_goldens, "dataset-goldens": cmd_dataset_goldens, "score": cmd_score, "time": cmd_time,
     "check-nan": cmd_check_nan}[args.cmd](args)


if __name__ == "__main__":
    main()
