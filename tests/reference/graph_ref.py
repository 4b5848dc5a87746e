#!/usr/bin/python3
"""Generic layer-graph PyTorch reference for epsinas (space "graph").

Builds a torch model from a graph request (the JSON format documented in
include/epsinas/spaces/gspace.h: input, nodes [{name, op, inputs, ...}], output) with
PyTorch's own layers and defaults, independently of the C code, and scores it
with epsref.  Run with /usr/bin/python3.

  graph_ref.py goldens [--out ../golden/graph.json] [--shared DIR] [-v]
  graph_ref.py score --spec FILE [--batch SPEC] [--batch-size N] [--weights A,B]

Layer semantics (PyTorch): conv2d = nn.Conv2d(cin, out_channels, kernel, stride,
padding, dilation, groups, bias) (defaults stride 1, padding 0, dilation 1,
groups 1, bias True); batchnorm = epsref.make_bn (batch statistics);
avgpool = nn.AvgPool2d(kernel, stride (default kernel), padding,
count_include_pad (default True)); maxpool = nn.MaxPool2d(kernel, stride
(default kernel), padding); global_avgpool = mean over H, W; linear =
nn.Linear(C, out_features, bias (default True)) on a C x 1 x 1 input;
flatten = C x H x W -> C*H*W features; add = left-to-right sum;
concat = torch.cat on channels; zero = x * 0.0; identity.
"""
import argparse
import datetime
import json
import os
import sys
import time

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import epsref  # noqa: E402

GRAPH_WEIGHTS = (1e-7, 1.0)
DEFAULT_SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared"))
CIFAR_SPEC = "cifar10:$SHARED/data/cifar10/cifar10_test_sample260.bin"


def _out(n, k, s, p, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


class GraphNet(nn.Module):
    def __init__(self, req):
        super().__init__()
        inp = req.get("input", {})
        shape = {"input": (inp.get("channels", 3), inp.get("height", 32), inp.get("width", 32))}
        self.nodes = req["nodes"]
        self.output = req.get("output", self.nodes[-1]["name"])
        self.mods = nn.ModuleDict()
        for nd in self.nodes:
            op, name = nd["op"], nd["name"]
            c, h, w = shape[nd["inputs"][0]]
            if op == "conv2d":
                k, s, p = nd["kernel"], nd.get("stride", 1), nd.get("padding", 0)
                d, g = nd.get("dilation", 1), nd.get("groups", 1)
                self.mods[name] = nn.Conv2d(c, nd["out_channels"], k, stride=s, padding=p, dilation=d, groups=g,
                                            bias=nd.get("bias", True))
                shape[name] = (nd["out_channels"], _out(h, k, s, p, d), _out(w, k, s, p, d))
            elif op == "batchnorm":
                self.mods[name] = epsref.make_bn(c)
                shape[name] = (c, h, w)
            elif op in ("avgpool", "maxpool"):
                k = nd["kernel"]
                s, p = nd.get("stride", k), nd.get("padding", 0)
                if op == "avgpool":
                    self.mods[name] = nn.AvgPool2d(k, stride=s, padding=p,
                                                   count_include_pad=nd.get("count_include_pad", True))
                else:
                    self.mods[name] = nn.MaxPool2d(k, stride=s, padding=p)
                shape[name] = (c, _out(h, k, s, p), _out(w, k, s, p))
            elif op == "linear":
                assert h == 1 and w == 1, name
                self.mods[name] = nn.Linear(c, nd["out_features"], bias=nd.get("bias", True))
                shape[name] = (nd["out_features"], 1, 1)
            elif op == "global_avgpool":
                shape[name] = (c, 1, 1)
            elif op == "flatten":
                shape[name] = (c * h * w, 1, 1)
            elif op == "concat":
                shape[name] = (sum(shape[i][0] for i in nd["inputs"]), h, w)
            elif op in ("add", "relu", "identity", "zero"):
                shape[name] = (c, h, w)
            else:
                raise ValueError("unknown op %r" % op)
        self.shape = shape

    def forward(self, x):
        v = {"input": x}
        for nd in self.nodes:
            op, name = nd["op"], nd["name"]
            xs = [v[i] for i in nd["inputs"]]
            a = xs[0]
            if op in ("conv2d", "batchnorm", "avgpool", "maxpool"):
                r = self.mods[name](a)
            elif op == "linear":
                r = self.mods[name](a.flatten(1))[:, :, None, None]
            elif op == "relu":
                r = torch.relu(a)
            elif op == "global_avgpool":
                r = a.mean(dim=(2, 3), keepdim=True)
            elif op == "flatten":
                r = a.flatten(1)[:, :, None, None]
            elif op == "add":
                r = a
                for b in xs[1:]:
                    r = r + b
            elif op == "concat":
                r = torch.cat(xs, 1)
            elif op == "identity":
                r = a
            elif op == "zero":
                r = a.mul(0.0)
            v[name] = r
        return v[self.output].reshape(x.shape[0], -1)


def score_request(req, x, weights):
    net = GraphNet(req)
    net.eval()
    eps, info = epsref.score_model(net, x, weights)
    info["params"] = sum(p.numel() for p in net.parameters())
    return eps, info


# ---------------------------------------------------------------- golden graphs
def N(name, op, inputs, **kw):
    d = {"name": name, "op": op, "inputs": list(inputs)}
    d.update(kw)
    return d


def G(nodes, output=None, inp=None):
    r = {"space": "graph", "nodes": nodes}
    if output:
        r["output"] = output
    if inp:
        r["input"] = inp
    return r


def head(x, c=None):
    return [N("gap", "global_avgpool", [x]), N("fc", "linear", ["gap"], out_features=1)]


def golden_graphs():
    g = []
    # 1. ResNet basic block with identity shortcut
    g.append(("resnet basic block", G([
        N("stem", "conv2d", ["input"], out_channels=16, kernel=3, padding=1, bias=False),
        N("stem_bn", "batchnorm", ["stem"]), N("stem_relu", "relu", ["stem_bn"]),
        N("c1", "conv2d", ["stem_relu"], out_channels=16, kernel=3, padding=1, bias=False),
        N("b1", "batchnorm", ["c1"]), N("r1", "relu", ["b1"]),
        N("c2", "conv2d", ["r1"], out_channels=16, kernel=3, padding=1, bias=False),
        N("b2", "batchnorm", ["c2"]),
        N("sum", "add", ["b2", "stem_relu"]), N("out", "relu", ["sum"])] + head("out"), "fc")))
    # 2. ResNet downsampling block with a strided 1x1 projection shortcut
    g.append(("resnet downsampling block", G([
        N("stem", "conv2d", ["input"], out_channels=16, kernel=3, padding=1, bias=False),
        N("bn0", "batchnorm", ["stem"]), N("r0", "relu", ["bn0"]),
        N("c1", "conv2d", ["r0"], out_channels=32, kernel=3, stride=2, padding=1, bias=False),
        N("b1", "batchnorm", ["c1"]), N("r1", "relu", ["b1"]),
        N("c2", "conv2d", ["r1"], out_channels=32, kernel=3, padding=1, bias=False),
        N("b2", "batchnorm", ["c2"]),
        N("sc", "conv2d", ["r0"], out_channels=32, kernel=1, stride=2, bias=False),
        N("sc_bn", "batchnorm", ["sc"]),
        N("sum", "add", ["b2", "sc_bn"]), N("out", "relu", ["sum"])] + head("out"))))
    # 3. grouped convolution
    g.append(("grouped conv", G([
        N("c1", "conv2d", ["input"], out_channels=24, kernel=3, padding=1, bias=False),
        N("b1", "batchnorm", ["c1"]), N("r1", "relu", ["b1"]),
        N("gc", "conv2d", ["r1"], out_channels=48, kernel=3, padding=1, groups=4, bias=False),
        N("b2", "batchnorm", ["gc"]), N("r2", "relu", ["b2"])] + head("r2"))))
    # 4. depthwise separable
    g.append(("depthwise separable", G([
        N("c1", "conv2d", ["input"], out_channels=32, kernel=3, stride=2, padding=1, bias=False),
        N("b1", "batchnorm", ["c1"]), N("r1", "relu", ["b1"]),
        N("dw", "conv2d", ["r1"], out_channels=32, kernel=3, padding=1, groups=32, bias=False),
        N("b2", "batchnorm", ["dw"]), N("r2", "relu", ["b2"]),
        N("pw", "conv2d", ["r2"], out_channels=64, kernel=1, bias=False),
        N("b3", "batchnorm", ["pw"]), N("r3", "relu", ["b3"])] + head("r3"))))
    # 5. dilation (same-size and shrinking)
    g.append(("dilated convs", G([
        N("d2", "conv2d", ["input"], out_channels=16, kernel=3, padding=2, dilation=2),
        N("b1", "batchnorm", ["d2"]), N("r1", "relu", ["b1"]),
        N("d3", "conv2d", ["r1"], out_channels=16, kernel=3, padding=1, dilation=3),
        N("b2", "batchnorm", ["d3"]), N("r2", "relu", ["b2"])] + head("r2"))))
    # 6. concatenation of branches of different widths (Inception-like)
    g.append(("concat branches", G([
        N("stem", "conv2d", ["input"], out_channels=8, kernel=3, padding=1, bias=False),
        N("bn", "batchnorm", ["stem"]), N("r", "relu", ["bn"]),
        N("a", "conv2d", ["r"], out_channels=8, kernel=1, bias=False),
        N("b", "conv2d", ["r"], out_channels=12, kernel=3, padding=1, bias=False),
        N("c", "maxpool", ["r"], kernel=3, stride=1, padding=1),
        N("cat", "concat", ["a", "b", "c"]), N("cb", "batchnorm", ["cat"]), N("cr", "relu", ["cb"]),
        N("mix", "conv2d", ["cr"], out_channels=16, kernel=1, bias=False)] + head("mix"))))
    # 7. flatten + MLP head
    g.append(("flatten + linear head", G([
        N("c1", "conv2d", ["input"], out_channels=8, kernel=3, stride=2, padding=1),
        N("r1", "relu", ["c1"]),
        N("p", "maxpool", ["r1"], kernel=2),
        N("f", "flatten", ["p"]),
        N("h", "linear", ["f"], out_features=32), N("hr", "relu", ["h"]),
        N("o", "linear", ["hr"], out_features=1)])))
    # 8. pools: avg with/without padding in the divisor, strided max with padding
    g.append(("pool variants", G([
        N("c1", "conv2d", ["input"], out_channels=8, kernel=1, bias=False),
        N("a1", "avgpool", ["c1"], kernel=3, stride=1, padding=1, count_include_pad=False),
        N("a2", "avgpool", ["c1"], kernel=3, stride=1, padding=1),
        N("s", "add", ["a1", "a2"]),
        N("m", "maxpool", ["s"], kernel=3, stride=2, padding=1),
        N("a3", "avgpool", ["m"], kernel=2),
        N("b", "batchnorm", ["a3"])] + head("b"))))
    # 9. NB201-style cell with zero and identity edges
    g.append(("zero and identity edges", G([
        N("stem", "conv2d", ["input"], out_channels=16, kernel=3, padding=1, bias=False),
        N("bn", "batchnorm", ["stem"]),
        N("z", "zero", ["bn"]), N("i", "identity", ["bn"]),
        N("rc", "relu", ["bn"]), N("cc", "conv2d", ["rc"], out_channels=16, kernel=1, bias=False),
        N("cb", "batchnorm", ["cc"]),
        N("n1", "add", ["z", "i", "cb"]),
        N("ap", "avgpool", ["n1"], kernel=3, stride=1, padding=1, count_include_pad=False),
        N("n2", "add", ["ap", "z"]), N("last", "relu", ["n2"])] + head("last"))))
    # 10. big kernel, stride, conv bias, linear without bias
    g.append(("5x5 strided conv with bias", G([
        N("c1", "conv2d", ["input"], out_channels=12, kernel=5, stride=2, padding=2, bias=True),
        N("b1", "batchnorm", ["c1"]), N("r1", "relu", ["b1"]),
        N("gap", "global_avgpool", ["r1"]), N("fc", "linear", ["gap"], out_features=1, bias=False)])))
    # 11. 1-channel conv + global pool as the output (no linear)
    g.append(("conv to one channel as output", G([
        N("c1", "conv2d", ["input"], out_channels=8, kernel=3, padding=1, bias=False),
        N("b1", "batchnorm", ["c1"]), N("r1", "relu", ["b1"]),
        N("c2", "conv2d", ["r1"], out_channels=1, kernel=3, padding=1, bias=False),
        N("gap", "global_avgpool", ["c2"])])))
    # 12. plain conv stack without BN (output scales with w^3)
    g.append(("no batchnorm", G([
        N("c1", "conv2d", ["input"], out_channels=8, kernel=3, padding=1),
        N("r1", "relu", ["c1"]),
        N("c2", "conv2d", ["r1"], out_channels=8, kernel=3, stride=2, padding=1),
        N("r2", "relu", ["c2"])] + head("r2"))))
    # 13. odd sizes: 3x3 valid conv, strided pools on odd maps, grouped 1x1 + concat with input
    g.append(("odd sizes, concat with input", G([
        N("c1", "conv2d", ["input"], out_channels=6, kernel=3, bias=False),
        N("p1", "maxpool", ["c1"], kernel=3, stride=2),
        N("b1", "batchnorm", ["p1"]), N("r1", "relu", ["b1"]),
        N("g1", "conv2d", ["r1"], out_channels=9, kernel=1, groups=3, bias=False),
        N("cat", "concat", ["g1", "r1"]),
        N("a1", "avgpool", ["cat"], kernel=3, stride=2, padding=1, count_include_pad=False)] + head("a1"))))
    # 14-16. the same ops with an identity shortcut around them: mixing paths of
    # different depth makes epsilon substantive (networks whose every path has
    # the same conv/BN depth give epsilon ~ 0, i.e. float32 rounding noise)
    g.append(("grouped conv residual", G([
        N("c1", "conv2d", ["input"], out_channels=24, kernel=3, padding=1, bias=False),
        N("b1", "batchnorm", ["c1"]), N("r1", "relu", ["b1"]),
        N("gc", "conv2d", ["r1"], out_channels=24, kernel=3, padding=1, groups=4, bias=False),
        N("b2", "batchnorm", ["gc"]), N("sum", "add", ["b2", "r1"]), N("r2", "relu", ["sum"])] + head("r2"))))
    g.append(("depthwise residual", G([
        N("c1", "conv2d", ["input"], out_channels=16, kernel=3, padding=1, bias=False),
        N("b1", "batchnorm", ["c1"]),
        N("dr", "relu", ["b1"]),
        N("dw", "conv2d", ["dr"], out_channels=16, kernel=5, padding=2, groups=16, bias=False),
        N("b2", "batchnorm", ["dw"]), N("sum", "add", ["b1", "b2"]), N("r", "relu", ["sum"])] + head("r"))))
    g.append(("dilated residual", G([
        N("c1", "conv2d", ["input"], out_channels=8, kernel=3, padding=1, bias=False),
        N("b1", "batchnorm", ["c1"]),
        N("r1", "relu", ["b1"]),
        N("d", "conv2d", ["r1"], out_channels=8, kernel=3, padding=4, dilation=4, bias=False),
        N("b2", "batchnorm", ["d"]),
        N("sum", "add", ["b1", "b2"]), N("r", "relu", ["sum"])] + head("r"))))
    return g


def case_record(name, req, b, n, w, eps, info):
    return {"space": "graph", "name": name, "request": req, "batch": b, "batch_size": n,
            "weights": [float(v) for v in w], "epsilon": epsref.json_num(eps), "nan_reason": info["nan_reason"],
            "params": info["params"], "y": [{k: epsref.json_num(v) for k, v in s.items()} for s in info["y"]]}


def epsilon64(y1, y2):
    """Spec section 1 in float64 on float64 outputs: the exact value that
    float32 implementations approximate."""
    import numpy as np
    ps = []
    for y in (y1, y2):
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        with np.errstate(all="ignore"):
            ps.append((y - np.nanmin(y)) / (np.nanmax(y) - np.nanmin(y)))
    P = np.stack(ps)
    P[P == 0] = np.nan
    with np.errstate(all="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        return float(np.nanmean(np.abs(P[0] - P[1])) / np.nanmean(P))


def score64(req, x, weights):
    net = GraphNet(req).double()
    net.eval()
    ys = []
    with torch.no_grad():
        for w in weights:
            epsref.constant_init(net, w)
            ys.append(net(x.double()).reshape(-1).numpy())
    return epsilon64(*ys)


def well_conditioned(e32, e64):
    """A golden is only useful if float32 rounding cannot move epsilon past the
    test tolerance (1e-4 relative + 1e-5 absolute): keep a case when the float32
    reference is NaN (underflow is reference behaviour) or within 1e-4 relative
    + 2e-6 absolute of the float64 value."""
    if e32 != e32:
        return True
    return e64 == e64 and abs(e32 - e64) <= 1e-4 * abs(e64) + 2e-6


# Candidate (batch, weights) per graph, in order; the first 3 well-conditioned are kept.
CANDIDATES = [("ramp", (1e-7, 1.0)), ("gaussian:42", (1e-7, 1.0)), (CIFAR_SPEC, (1e-7, 1.0)),
              ("ramp", (1e-3, 1.0)), ("gaussian:42", (0.05, 2.0)), (CIFAR_SPEC, (1e-3, 1.0))]
PER_GRAPH = 3
BATCH = 32


def cmd_goldens(args):
    graphs = golden_graphs()
    assert len(graphs) >= 10
    batches, cases, dropped = {}, [], []
    t0 = time.time()
    for name, req in graphs:
        kept = 0
        for b, w in CANDIDATES:
            if kept == PER_GRAPH:
                break
            key = epsref.batch_key(b, BATCH)
            if key not in batches:
                batches[key] = epsref.load_batch(b, BATCH, shared=args.shared)
            eps, info = score_request(req, batches[key], w)
            e64 = score64(req, batches[key], w)
            ok = well_conditioned(eps, e64)
            if args.verbose:
                print("[%6.1fs] %-10s %-6s eps=%-24r f64=%-24r %s %s %s" % (
                    time.time() - t0, b.split(":")[0], w[0], eps, e64, "keep" if ok else "DROP", name,
                    info["nan_reason"]), file=sys.stderr, flush=True)
            if not ok:
                dropped.append("%s on %s at %r" % (name, b.split(":")[0], w))
                continue
            rec = case_record(name, req, b, BATCH, w, eps, info)
            rec["epsilon_f64"] = epsref.json_num(e64)
            cases.append(rec)
            kept += 1
        assert kept > 0, "no well-conditioned case for %s" % name
    doc = {"generator": "tests/reference/graph_ref.py goldens", "torch": torch.__version__,
           "created": datetime.date.today().isoformat(),
           "notes": ("generic layer graphs with PyTorch layer defaults; BN track_running_stats=False; torch %d "
                     "threads, flush-denormal off; batch %d; per graph the first %d well-conditioned of %s "
                     "(float32 epsilon within 1e-4 rel + 2e-6 abs of the float64 forward, or NaN); "
                     "epsilon_f64 is that float64 value; dropped as rounding noise: %s; generation took %.0f s"
                     % (torch.get_num_threads(), BATCH, PER_GRAPH,
                        [(b.split(":")[0], w) for b, w in CANDIDATES], dropped, time.time() - t0)),
           "cases": cases}
    out = args.out or os.path.join(HERE, "..", "golden", "graph.json")
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote %d cases to %s in %.1f s" % (len(cases), out, time.time() - t0))


def cmd_score(args):
    with open(args.spec) as f:
        req = json.load(f)
    x = epsref.load_batch(args.batch, args.batch_size, shared=args.shared)
    w = tuple(float(v) for v in args.weights.split(","))
    eps, info = score_request(req, x, w)
    rec = case_record("", req, args.batch, args.batch_size, w, eps, info)
    rec["seconds"] = info["seconds"]
    print(json.dumps(rec, allow_nan=False))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("goldens", "score"):
        sp = sub.add_parser(name)
        sp.add_argument("--shared", default=DEFAULT_SHARED, help="path substituted for $SHARED")
        sp.add_argument("--threads", type=int, default=2)
        if name == "goldens":
            sp.add_argument("--out", default=None)
            sp.add_argument("-v", "--verbose", action="store_true")
        else:
            sp.add_argument("--spec", required=True)
            sp.add_argument("--batch", default="ramp")
            sp.add_argument("--batch-size", type=int, default=32)
            sp.add_argument("--weights", default="1e-7,1")
    args = p.parse_args(argv)
    epsref.setup_torch(args.threads)
    {"goldens": cmd_goldens, "score": cmd_score}[args.cmd](args)


if __name__ == "__main__":
    main()
