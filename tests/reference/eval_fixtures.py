#!/usr/bin/python3
"""Golden numbers for epsinas' evaluation statistics (spec section 6), from scipy/numpy.

Written from /work/shared/spec/metric.md section 6 and the eval brief, independently
of src/eval/eps_eval.c.  Run with Debian's interpreter:

    /usr/bin/python3 tests/reference/eval_fixtures.py        # writes tests/golden/eval.json

and, once, to (re)make the synthetic NB201 fixtures used by the search tests:

    /usr/bin/python3 tests/reference/eval_fixtures.py --make-nb201-fixture

Contents of eval.json:
  "stats":  data sets (x, y with null = NaN, or a "gen" recipe) and, for each, scipy's
            spearmanr, kendalltau (tau-b), numpy.percentile(y, 90/95) and the paper's
            table (maximise and minimise).
  "cli":    the eval table for the CSV fixtures in tests/data/eval/ (join done here with
            the csv module; JSON recipes joined on json.dumps(sort_keys=True) form).
  "select": the Table 3 experiment on a fixture, with the PRNG documented in
            include/epsinas/eval/eval.h (splitmix64), re-implemented here.

The paper's table (spec section 6), for a score s and target t, after dropping rows where
either is NaN; better = t (or -t when minimising):
  rho, tau            spearmanr(s, t), kendalltau(s, t)  (raw t: negative for a loss)
  top set             better > percentile(better, 90)
  rho_top10, tau_top10 on the top set, raw t
  top10_top10         |top set & s > percentile(s, 90)| / |s > percentile(s, 90)| * 100
  top64_top5          among argsort(-s, kind="stable")[:64]: count better > percentile(better, 95)
"""
import argparse
import csv
import json
import math
import os
import sys
import warnings

import numpy as np
import scipy
import scipy.stats

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(ROOT, "tests", "data", "eval")
MASK = (1 << 64) - 1


# ------------------------------------------------------------------ PRNG (eval.h)
class SplitMix64:
    def __init__(self, state):
        self.state = state & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, bound):
        if bound <= 1:
            return 0
        threshold = ((1 << 64) - bound) % bound
        while True:
            v = self.next()
            if v >= threshold:
                return v % bound


def rng_for(seed, run):
    s = SplitMix64(seed).next()
    b = SplitMix64(s ^ ((run * 0xD1B54A32D192ED03) & MASK))
    return SplitMix64(b.next())


def gen_data(g):
    """Deterministic test data: {"seed", "n", "xmod", "ymod", "k"}.
    For each i: z1, z2 = next(), next(); x = z1 % xmod; y = z2 % ymod + k * x
    (integers, exact in double, many ties when the moduli are small)."""
    r = SplitMix64(g["seed"])
    xs, ys = [], []
    for _ in range(g["n"]):
        z1, z2 = r.next(), r.next()
        x = z1 % g["xmod"]
        xs.append(float(x))
        ys.append(float(z2 % g["ymod"] + g["k"] * x))
    return xs, ys


# ------------------------------------------------------------------ statistics
def nanf(v):
    v = float(v)
    return None if math.isnan(v) else v


def spearman(x, y):
    if len(x) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(scipy.stats.spearmanr(x, y)[0])


def kendall(x, y):
    if len(x) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(scipy.stats.kendalltau(x, y)[0])


def paper_table(score, target, minimize):
    s = np.asarray(score, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    n_in = len(s)
    nan_s = np.isnan(s)
    nan_t = np.isnan(t) & ~nan_s
    keep = ~np.isnan(s) & ~np.isnan(t)
    s, t = s[keep], t[keep]
    out = {"n_in": n_in, "n": int(len(s)), "n_nan_score": int(nan_s.sum()),
           "n_nan_target": int(nan_t.sum())}
    nan = float("nan")
    if len(s) == 0:
        out.update(rho=None, tau=None, rho_top10=None, tau_top10=None, top10_top10=None,
                   n_top10=0, top64_k=0, top64_top5=0, target_p90=None, target_p95=None,
                   score_p90=None, n_score_top=0, n_both_top=0)
        return out
    b = -t if minimize else t
    p90 = np.percentile(b, 90)
    p95 = np.percentile(b, 95)
    sp90 = np.percentile(s, 90)
    top = b > p90
    stop = s > sp90
    both = top & stop
    order = np.argsort(-s, kind="stable")[:64]
    out.update(
        rho=nanf(spearman(s, t)), tau=nanf(kendall(s, t)),
        rho_top10=nanf(spearman(s[top], t[top])), tau_top10=nanf(kendall(s[top], t[top])),
        n_top10=int(top.sum()), n_score_top=int(stop.sum()), n_both_top=int(both.sum()),
        top10_top10=nanf(both.sum() / stop.sum() * 100) if stop.sum() else None,
        top64_k=int(len(order)), top64_top5=int((b[order] > p95).sum()),
        target_p90=float(p90), target_p95=float(p95), score_p90=float(sp90))
    del nan
    return out


# ------------------------------------------------------------------ data sets
def stats_sets():
    nan = None
    sets = [
        {"name": "ties_small", "x": [1, 2, 2, 3, 4, 5, 5, 5, 6, 7, 8, 8],
         "y": [2, 1, 4, 3, 3, 6, 5, 7, 7, 9, 8, 8]},
        {"name": "with_nan", "x": [0.5, nan, 0.1, 0.7, 0.3, 0.9, nan, 0.2, 0.8, 0.6, 0.4],
         "y": [60.0, 70.0, nan, 80.0, 55.0, 90.0, 65.0, 50.0, 85.0, 75.0, nan]},
        {"name": "n2", "x": [0.1, 0.2], "y": [5.0, 3.0]},
        {"name": "n1", "x": [0.1], "y": [5.0]},
        {"name": "n0", "x": [nan, 0.1], "y": [1.0, nan]},
        {"name": "const_score", "x": [0.3] * 8, "y": [1, 2, 3, 4, 5, 6, 7, 8]},
        {"name": "const_target", "x": [1, 2, 3, 4, 5, 6, 7, 8], "y": [4.5] * 8},
        {"name": "reversed", "x": list(range(20)), "y": list(range(20, 0, -1))},
        {"name": "p90_ties", "x": [float(i % 7) for i in range(40)],
         "y": [float(i // 4) for i in range(40)]},
        {"name": "gen_ties_15625", "gen": {"seed": 7, "n": 15625, "xmod": 97, "ymod": 1000, "k": 3}},
        {"name": "gen_cont_20000", "gen": {"seed": 11, "n": 20000, "xmod": 1 << 40, "ymod": 1 << 40, "k": 1}},
        {"name": "gen_heavy_ties", "gen": {"seed": 3, "n": 5000, "xmod": 3, "ymod": 4, "k": 1}},
        {"name": "gen_63", "gen": {"seed": 5, "n": 63, "xmod": 1000, "ymod": 100, "k": 1}},
        {"name": "gen_64", "gen": {"seed": 6, "n": 64, "xmod": 1000, "ymod": 100, "k": 1}},
        {"name": "gen_200", "gen": {"seed": 8, "n": 200, "xmod": 50, "ymod": 100, "k": 2}},
    ]
    for st in sets:
        if "gen" in st:
            x, y = gen_data(st["gen"])
        else:
            x = [float("nan") if v is None else float(v) for v in st["x"]]
            y = [float("nan") if v is None else float(v) for v in st["y"]]
        xa, ya = np.array(x), np.array(y)
        ok = ~np.isnan(xa) & ~np.isnan(ya)
        st["spearman"] = nanf(spearman(xa[ok], ya[ok]))
        st["kendall"] = nanf(kendall(xa[ok], ya[ok]))
        yk = ya[~np.isnan(ya)]
        st["p90"] = nanf(np.percentile(yk, 90)) if len(yk) else None
        st["p95"] = nanf(np.percentile(yk, 95)) if len(yk) else None
        st["p10"] = nanf(np.percentile(yk, 10)) if len(yk) else None
        st["table"] = paper_table(x, y, False)
        st["table_min"] = paper_table(x, y, True)
    return sets


# ------------------------------------------------------------------ CSV fixtures
def canon(key):
    k = key.strip()
    if k.startswith("{"):
        try:
            return json.dumps(json.loads(k), sort_keys=True, separators=(",", ":"))
        except ValueError:
            return key
    return key


def num(s):
    s = s.strip()
    if s == "" or s.lower() in ("nan", "null", "na", "-nan"):
        return float("nan")
    return float(s)


def cli_case(name, scores, truth, target, minimize, scores_arch="arch", truth_arch="arch", extra=()):
    with open(os.path.join(DATA, scores), newline="") as f:
        srows = list(csv.DictReader(f))
    with open(os.path.join(DATA, truth), newline="") as f:
        trows = list(csv.DictReader(f))
    smap = {}
    for r in srows:
        smap.setdefault(canon(r[scores_arch]), num(r["epsilon"]))
    tkeys = set()
    sc, tg = [], []
    for r in trows:
        k = canon(r[truth_arch])
        tkeys.add(k)
        if k in smap:
            sc.append(smap[k])
            tg.append(num(r[target]))
    table = paper_table(sc, tg, minimize)
    args = ["--scores", "tests/data/eval/" + scores, "--truth", "tests/data/eval/" + truth] + list(extra)
    return {"name": name, "args": args, "matched": len(sc),
            "unmatched_scores": sum(1 for k in smap if k not in tkeys),
            "unmatched_truth": sum(1 for r in trows if canon(r[truth_arch]) not in smap),
            "table": table}


def cli_cases():
    return [
        cli_case("small_default", "scores_small.csv", "truth_small.csv", "cifar10_test", False),
        cli_case("small_c100", "scores_small.csv", "truth_small.csv", "cifar100_test", False,
                 extra=["--target", "cifar100_test"]),
        cli_case("small_min", "scores_small.csv", "truth_small.csv", "cifar10_test", True,
                 extra=["--minimize"]),
        cli_case("nlp", "scores_nlp.csv", "truth_nlp.csv", "final_test_loss", True,
                 truth_arch="recepie_json",
                 extra=["--truth-arch-column", "recepie_json", "--target", "final_test_loss", "--minimize"]),
        cli_case("nb201", "nb201_scores.csv", "nb201_truth.csv", "cifar10_test", False),
    ]


# ------------------------------------------------------------------ selection
def select(score, target, sample, runs, seed, minimize):
    pool = [i for i in range(len(target)) if not math.isnan(target[i])]
    m = len(pool)
    better = (lambda i: -target[i]) if minimize else (lambda i: target[i])

    def score_gt(a, b):
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return a > b

    chosen, best, rnd, rank = [], [], [], []
    for r in range(runs):
        g = rng_for(seed, r)
        p = list(pool)
        ci = bi = -1
        for k in range(sample):
            j = k + g.below(m - k)
            p[k], p[j] = p[j], p[k]
            row = p[k]
            if ci < 0 or score_gt(score[row], score[ci]):
                ci = row
            if bi < 0 or better(row) > better(bi):
                bi = row
        nb = sum(1 for k in range(sample) if better(p[k]) > better(ci))
        chosen.append(target[ci])
        best.append(target[bi])
        rnd.append(target[p[0]])
        rank.append(nb + 1.0)
    res = {}
    for key, v in (("chosen", chosen), ("optimum", best), ("random", rnd), ("rank", rank)):
        res[key + "_mean"] = float(np.mean(v))
        res[key + "_std"] = float(np.std(v))
    res["chosen_is_optimum"] = int(sum(1 for v in rank if v == 1.0))
    res["pool"] = m
    return res


def select_cases():
    x, y = gen_data({"seed": 21, "n": 500, "xmod": 1000, "ymod": 300, "k": 1})
    x = [float("nan") if i % 9 == 0 else v for i, v in enumerate(x)]   # NaN scores count as lowest
    y = [float("nan") if i % 31 == 0 else v for i, v in enumerate(y)]  # NaN targets leave the pool
    out = []
    for sample, runs, seed, mn in ((10, 50, 1, False), (100, 20, 42, False), (25, 40, 7, True)):
        out.append({"gen": {"seed": 21, "n": 500, "xmod": 1000, "ymod": 300, "k": 1,
                            "nan_score_every": 9, "nan_target_every": 31},
                    "sample": sample, "runs": runs, "seed": seed, "minimize": mn,
                    "result": select(x, y, sample, runs, seed, mn)})
    return out


# ------------------------------------------------------------------ NB201 fixture
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def nb201_str(code):
    ops = [OPS[(code // 5 ** e) % 5] for e in range(6)]
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def make_nb201_fixture():
    """A synthetic look-up table of 600 NB201 cells (codes from splitmix64) with a
    smooth target (conv count) and a noisy score; for the search and select tests."""
    r = SplitMix64(2024)
    codes = []
    seen = set()
    while len(codes) < 600:
        c = r.below(15625)
        if c not in seen:
            seen.add(c)
            codes.append(c)
    with open(os.path.join(DATA, "nb201_truth.csv"), "w", newline="") as f, \
            open(os.path.join(DATA, "nb201_scores.csv"), "w", newline="") as g:
        f.write("index,arch,cifar10_test\n")
        g.write("index,arch,epsilon,nan_reason,params,macs\n")
        for c in codes:
            ops = [(c // 5 ** e) % 5 for e in range(6)]
            acc = 60.0 + 4.0 * sum(1 for o in ops if o in (2, 3)) + 2.0 * sum(1 for o in ops if o == 3) \
                - 3.0 * sum(1 for o in ops if o == 0) + (r.below(1000) / 1000.0)
            sc = acc / 100.0 + r.below(1000) / 20000.0
            nan = r.below(10) == 0
            f.write("{},{},{:.6f}\n".format(c, nb201_str(c), acc))
            g.write("{},{},{},{},0,0\n".format(c, nb201_str(c), "" if nan else "{:.6f}".format(sc),
                                              "synthetic NaN" if nan else ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "eval.json"))
    ap.add_argument("--make-nb201-fixture", action="store_true")
    a = ap.parse_args()
    if a.make_nb201_fixture:
        make_nb201_fixture()
    golden = {
        "generator": "tests/reference/eval_fixtures.py",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__},
        "stats": stats_sets(),
        "cli": cli_cases(),
        "select": select_cases(),
    }
    with open(a.out, "w") as f:
        json.dump(golden, f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote", a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
