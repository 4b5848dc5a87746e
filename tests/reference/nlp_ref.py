#!/usr/bin/python3
"""NAS-Bench-NLP PyTorch reference for epsinas (spec section 5).

Written from /work/shared/spec/metric.md and NAS-Bench-NLP's CustomRNN cell
semantics (a recipe node computes its op over the named inputs; linear =
sum_i W_i input_i + one bias), independently of the C engine.
Run with /usr/bin/python3 (torch, numpy).

  nlp_ref.py goldens [--out ../golden/nlp.json] [--shared DIR] [-v]
  nlp_ref.py score --recipe FILE|JSON --batch SPEC [--streams 256] [--vocab 33278] [--weights A,B]
  nlp_ref.py params [--shared DIR]          check the count rule against the CSV
  nlp_ref.py make-corpus [--out ../data/nlp/corpus.txt]

Conventions shared with the C side (documented in include/epsinas/spaces/nlp.h):
  mix(z)  = splitmix64 finaliser, all mod 2^64
  embedding (r, j) = float32((mix(seed + (r*400 + j + 1) * GAMMA) >> 11) * 2^-53), seed 0
  tokens:SEED  token (t, s) = mix(SEED + (s*70 + t + 1) * GAMMA) % 10000
  tokens-file:PATH  bytes; lines end at b"\\n" (a last unterminated line counts),
               words = line.split() (ASCII whitespace) + [b"<eos>"]; ids first-seen;
               batchify: N tokens -> (streams, N // streams) rows, transpose; first 70 steps.
Model: embedding vocab x 400; 3 layers of the cell, (in, hidden) = (400, 600),
(600, 600), (600, 400); every recurrent weight and bias = w; initial hidden
states = w; eval mode. Output: last layer's h_new_0, unit 0, [step][stream].
"""
import argparse
import csv
import datetime
import json
import os
import random
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import epsref  # noqa: E402

NLP_WEIGHTS = (1e-5, 1e-3)
STEPS = 70
EMB = 400
HIDDEN = 600
LAYERS = ((EMB, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, EMB))
WIKITEXT2_VOCAB = 33278
SYNTH_VOCAB = 10000
EMB_SEED = 0
GAMMA = 0x9E3779B97F4A7C15
M64 = (1 << 64) - 1
DEFAULT_SHARED = os.environ.get("EPS_SHARED", "/work/shared")
CORPUS = "tests/data/nlp/corpus.txt"          # relative to the repo root


# ---------------------------------------------------------------- generators
def mix_np(z):
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def mix_py(z):
    z &= M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def counter_values(seed, k):
    """mix(seed + k * GAMMA) mod 2^64 for a uint64 array k."""
    with np.errstate(over="ignore"):
        return mix_np(np.uint64(seed) + np.asarray(k, dtype=np.uint64) * np.uint64(GAMMA))


def embedding_rows(ids, seed=EMB_SEED):
    """float32 rows (len(ids) x 400) of the uniform(0,1) embedding table."""
    ids = np.asarray(ids, dtype=np.uint64)
    k = ids[:, None] * np.uint64(EMB) + np.arange(EMB, dtype=np.uint64)[None, :] + np.uint64(1)
    z = counter_values(seed, k)
    return ((z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53).astype(np.float32)


def synthetic_tokens(seed, streams):
    """[step][stream] int64 ids of tokens:SEED."""
    t = np.arange(STEPS, dtype=np.uint64)[:, None]
    s = np.arange(streams, dtype=np.uint64)[None, :]
    z = counter_values(seed, s * np.uint64(STEPS) + t + np.uint64(1))
    return (z % np.uint64(SYNTH_VOCAB)).astype(np.int64), SYNTH_VOCAB


def file_tokens(path, streams):
    """[step][stream] ids of tokens-file:PATH, and the vocabulary size."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()                 # the text after a final newline is no line
    vocab, ids = {}, []
    for line in lines:
        for w in line.split() + [b"<eos>"]:
            if w not in vocab:
                vocab[w] = len(vocab)
            ids.append(vocab[w])
    nbatch = len(ids) // streams
    if nbatch < STEPS:
        raise ValueError("%s: %d tokens, need %d" % (path, len(ids), streams * STEPS))
    arr = np.array(ids[:nbatch * streams], dtype=np.int64).reshape(streams, nbatch).T   # batchify
    return np.ascontiguousarray(arr[:STEPS]), len(vocab)


def load_tokens(spec, streams, root=ROOT):
    if spec.startswith("tokens:"):
        return synthetic_tokens(int(spec[len("tokens:"):]), streams)
    if spec.startswith("tokens-file:"):
        p = spec[len("tokens-file:"):]
        return file_tokens(p if os.path.isabs(p) else os.path.join(root, p), streams)
    raise ValueError("unknown token batch %r" % spec)


# ---------------------------------------------------------------- model
def hidden_count(recipe):
    ks = [int(i[len("h_prev_"):]) for nd in recipe.values() for i in nd["input"]
          if i.startswith("h_prev_")]
    return max(ks) + 1


class RecipeCell(nn.Module):
    """One recurrent layer step of a NAS-Bench-NLP recipe."""

    def __init__(self, recipe, input_size, hidden_size):
        super().__init__()
        self.recipe = recipe
        self.hidden_size = hidden_size
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        for name, nd in recipe.items():
            if nd["op"] == "linear":
                for i, inp in enumerate(nd["input"]):
                    cols = input_size if inp == "x" else hidden_size
                    self.weights["%s__%d" % (name, i)] = nn.Parameter(torch.empty(hidden_size, cols))
                self.biases[name] = nn.Parameter(torch.empty(hidden_size))
        self.n_hidden = hidden_count(recipe)

    def forward(self, x, hidden):
        done = {}

        def node(name):
            if name == "x":
                return x
            if name.startswith("h_prev_"):
                return hidden[int(name[len("h_prev_"):])]
            if name in done:
                return done[name]
            nd = self.recipe[name]
            ins = [node(i) for i in nd["input"]]
            op = nd["op"]
            if op == "linear":
                out = F.linear(ins[0], self.weights["%s__0" % name])
                for i in range(1, len(ins)):
                    out = out + F.linear(ins[i], self.weights["%s__%d" % (name, i)])
                out = out + self.biases[name]
            elif op == "blend":
                out = ins[0] * ins[1] + (1 - ins[0]) * ins[2]
            elif op == "elementwise_prod":
                out = ins[0] * ins[1]
            elif op == "elementwise_sum":
                out = ins[0] + ins[1]
            elif op == "activation_tanh":
                out = torch.tanh(ins[0])
            elif op == "activation_sigm":
                out = torch.sigmoid(ins[0])
            elif op == "activation_leaky_relu":
                out = F.leaky_relu(ins[0], 0.01)
            else:
                raise ValueError("unknown op %r" % op)
            done[name] = out
            return out

        return [node("h_new_%d" % k) for k in range(self.n_hidden)]


class RecipeLM(nn.Module):
    """The 3-layer model without its embedding/decoder tensors (those are
    counted analytically: a vocab x 400 table would only be filled with the
    generated rows)."""

    def __init__(self, recipe):
        super().__init__()
        self.cells = nn.ModuleList([RecipeCell(recipe, i, h) for i, h in LAYERS])

    def init_constant(self, w):
        with torch.no_grad():
            for p in self.parameters():
                p.fill_(w)

    def forward(self, emb, w):
        """emb: T x S x 400 float32. Returns T x S (last layer, unit 0)."""
        x = emb
        for cell in self.cells:
            S = x.shape[1]
            hidden = [torch.full((S, cell.hidden_size), w, dtype=x.dtype)
                      for _ in range(cell.n_hidden)]
            outs = []
            for t in range(x.shape[0]):
                hidden = cell(x[t], hidden)
                outs.append(hidden[0])
            x = torch.stack(outs)
        return x[:, :, 0]


def param_count(recipe, vocab=WIKITEXT2_VOCAB):
    lm = RecipeLM(recipe)
    return vocab * EMB + vocab + sum(p.numel() for p in lm.parameters())


def score_recipe(recipe, tokens, weights=NLP_WEIGHTS, vocab=WIKITEXT2_VOCAB, dtype=torch.float32):
    """dtype float64 is a diagnostic (how much of a float32 epsilon is rounding)."""
    tokens = np.asarray(tokens)
    if tokens.max() >= vocab:
        raise ValueError("token id %d >= vocab %d" % (tokens.max(), vocab))
    uniq, inv = np.unique(tokens, return_inverse=True)
    table = torch.from_numpy(embedding_rows(uniq))
    emb = table[torch.from_numpy(inv.reshape(tokens.shape))]          # T x S x 400
    emb = emb.to(dtype)
    lm = RecipeLM(recipe).to(dtype)
    lm.eval()
    ys = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for w in weights:
            lm.init_constant(w)
            ys.append(lm(emb, w).reshape(-1).clone())                   # step-major
    dt = time.perf_counter() - t0
    eps, info = epsref.epsilon(ys[0], ys[1], weights)
    info["seconds"] = dt
    info["params"] = param_count(recipe, vocab)
    info["y_head"] = [[float(v) for v in y[:4]] for y in ys]
    return eps, info


# ---------------------------------------------------------------- data
def csv_records(shared):
    path = os.path.join(shared, "data", "nlp", "wikitext2_final.csv")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def cmd_params(args):
    bad = 0
    rows = csv_records(args.shared)
    ok = [r for r in rows if r["status"] == "OK"]
    for r in ok:
        p = param_count(json.loads(r["recepie_json"]))
        if p != int(r["num_params"]):
            bad += 1
            print("mismatch", r["recepie_id"], p, r["num_params"])
    print("%d of %d completed records match" % (len(ok) - bad, len(ok)))
    return 1 if bad else 0


CORPUS_SEED = 20240607


def cmd_make_corpus(args):
    """A small deterministic text (Zipf-like words, 3-22 words a line, some
    empty lines) with a little over 256 x 70 tokens including <eos>."""
    rng = random.Random(CORPUS_SEED)
    syll = ["ka", "to", "ri", "mu", "sen", "la", "po", "ne", "di", "vo", "ch", "ar", "el", "qu", "in"]
    words = []
    while len(words) < 900:
        w = "".join(rng.choice(syll) for _ in range(rng.randint(1, 3)))
        if w not in words:
            words.append(w)
    weights = [1.0 / (i + 1) for i in range(len(words))]
    lines, n = [], 0
    while n < 256 * 72 + 10:
        if rng.random() < 0.04:
            line = ""
            k = 0
        else:
            k = rng.randint(3, 22)
            line = " ".join(rng.choices(words, weights, k=k))
            if rng.random() < 0.1:
                line = "  " + line.replace(" ", "\t", 1) + " "
        lines.append(line)
        n += k + 1
    out = args.out or os.path.join(ROOT, CORPUS)
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s: %d lines, %d tokens" % (out, len(lines), n))


# ---------------------------------------------------------------- goldens
EXTRA_RECIPES = [
    # not from NAS-Bench-NLP: edge cases of the semantics
    ("no_x", {"a": {"op": "linear", "input": ["h_prev_0", "h_prev_0"]},
              "h_new_0": {"op": "activation_tanh", "input": ["a"]}}),
    ("dead_node", {"a": {"op": "linear", "input": ["x", "h_prev_0"]},
                   "dead": {"op": "linear", "input": ["x", "a", "h_prev_0"]},
                   "dead_act": {"op": "activation_sigm", "input": ["dead"]},
                   "h_new_0": {"op": "activation_leaky_relu", "input": ["a"]}}),
    ("linear_out", {"a": {"op": "linear", "input": ["h_prev_0", "x"]},
                    "h_new_0": {"op": "linear", "input": ["a", "h_prev_0", "x"]}}),
]


def pick_csv(rows):
    """Deterministic picks from the completed records: the first with 3
    hidden states, then the cheapest (fewest linear MACs, then lowest id)."""
    ok = [r for r in rows if r["status"] == "OK"]
    recs = [(r["recepie_id"], json.loads(r["recepie_json"])) for r in ok]
    out = [next((rid, r) for rid, r in recs if hidden_count(r) == 3)]
    for rid, r in sorted(recs, key=lambda x: (linear_macs(x[1]), x[0])):
        if rid not in [i for i, _ in out]:
            out.append((rid, r))
        if len(out) == 4:
            break
    return out


FILE_CASES = 4


def linear_macs(recipe):
    return sum(h * (i if inp == "x" else h) for i, h in LAYERS for nd in recipe.values()
               if nd["op"] == "linear" for inp in nd["input"])


def case_record(name, recipe, batch, streams, vocab, weights, eps, info):
    return {"space": "nlp", "name": name, "recipe": recipe, "batch": batch, "batch_size": streams,
            "vocab_size": vocab, "weights": [float(w) for w in weights],
            "epsilon": epsref.json_num(eps), "nan_reason": info["nan_reason"],
            "params": info["params"],
            "y": [{k: epsref.json_num(v) for k, v in s.items()} for s in info["y"]],
            "y_head": info["y_head"]}


def cmd_goldens(args):
    with open(os.path.join(args.shared, "data", "nlp", "recipes_example.json")) as f:
        examples = json.load(f)
    rows = csv_records(args.shared)
    by_recipe = {r["recepie_json"]: r["recepie_id"] for r in rows}
    recipes = []
    for i, r in enumerate(examples):
        rid = by_recipe.get(json.dumps(r))
        recipes.append(("example_%d" % i + ("_csv_%s" % rid if rid else ""), r))
    have = [json.dumps(r, sort_keys=True) for _, r in recipes]
    for rid, r in pick_csv(rows):
        if json.dumps(r, sort_keys=True) not in have:
            recipes.append(("csv_%s" % rid, r))
    recipes = recipes[:10] + EXTRA_RECIPES + recipes[10:]
    batches = ["tokens:1", "tokens-file:" + CORPUS]
    streams = 256
    token_info = {}
    toks = {}
    for b in batches:
        t, v = load_tokens(b, streams)
        toks[b] = t
        token_info[b] = {"batch_size": streams, "steps": STEPS, "vocab": v,
                         "sum": int(t.sum()), "max": int(t.max()),
                         "head": [int(x) for x in t.reshape(-1)[:12]],
                         "at": [[5, 7, int(t[5, 7])], [69, 255, int(t[69, 255])]]}
    emb_check = [[r, j, float(embedding_rows([r])[0, j])] for r, j in
                 ((0, 0), (0, 399), (1, 0), (33277, 123), (999999, 7))]
    # The dense reference is slow (Debian's torch uses a generic BLAS): the
    # file batch gets the FILE_CASES cheapest recipes (fewest linear MACs).
    cheap = sorted(recipes, key=lambda nr: linear_macs(nr[1]))[:FILE_CASES]
    plan = [(batches[0], nr) for nr in recipes] + [(batches[1], nr) for nr in recipes if nr in cheap]
    cases = []
    t0 = time.time()
    # Each finished case is appended to a cache (JSON lines) so that an
    # interrupted run resumes; --fresh ignores it.
    cache_path = args.cache or os.path.join(tempfile.gettempdir(), "epsinas_nlp_ref_cache.jsonl")
    cache = {}
    if not args.fresh and os.path.exists(cache_path):
        with open(cache_path) as f:
            for line in f:
                rec = json.loads(line)
                cache[(json.dumps(rec["recipe"], sort_keys=True), rec["batch"])] = rec
    for b, (name, r) in plan:
        key = (json.dumps(r, sort_keys=True), b)
        if key in cache:
            rec = dict(cache[key], name=name)
            cases.append(rec)
            continue
        if True:
            eps, info = score_recipe(r, toks[b], NLP_WEIGHTS, WIKITEXT2_VOCAB)
            rec = case_record(name, r, b, streams, WIKITEXT2_VOCAB, NLP_WEIGHTS, eps, info)
            cases.append(rec)
            with open(cache_path, "a") as f:
                f.write(json.dumps(rec, allow_nan=False) + "\n")
            if args.verbose:
                print("[%6.1fs] %-28s %-10s eps=%r %s (%.1fs)" % (time.time() - t0, name, b[:10], eps,
                      info["nan_reason"], info["seconds"]), file=sys.stderr, flush=True)
    doc = {"generator": "tests/reference/nlp_ref.py goldens",
           "torch": torch.__version__,
           "created": datetime.date.today().isoformat(),
           "notes": ("NAS-Bench-NLP recipes, 3 layers (400,600),(600,600),(600,400), weights and biases = w, "
                     "h0 = w, embedding splitmix64 seed %d; torch %d threads, flush-denormal off; "
                     "generation took %.0f s" % (EMB_SEED, torch.get_num_threads(), time.time() - t0)),
           "tokens": token_info,
           "embedding": emb_check,
           "cases": cases}
    out = args.out or os.path.join(ROOT, "tests", "golden", "nlp.json")
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote %d cases to %s in %.1f s" % (len(cases), out, time.time() - t0))


def cmd_score(args):
    src = args.recipe
    recipe = json.loads(open(src).read() if os.path.exists(src) else src)
    t, _ = load_tokens(args.batch, args.streams)
    w = tuple(float(v) for v in args.weights.split(","))
    eps, info = score_recipe(recipe, t, w, args.vocab, torch.float64 if args.float64 else torch.float32)
    rec = case_record("", recipe, args.batch, args.streams, args.vocab, w, eps, info)
    rec["seconds"] = info["seconds"]
    print(json.dumps(rec, allow_nan=False))


def self_test():
    assert [int(v) for v in counter_values(7, np.arange(1, 6, dtype=np.uint64))] == \
        [mix_py(7 + k * GAMMA) for k in range(1, 6)]
    big = M64 - 3
    assert int(counter_values(big, [9])[0]) == mix_py(big + 9 * GAMMA)
    e = embedding_rows([2])[0]
    assert e.dtype == np.float32 and 0 <= e.min() and e.max() <= 1
    t, v = synthetic_tokens(1, 4)
    t2, _ = synthetic_tokens(1, 8)
    assert (t == t2[:, :4]).all() and v == SYNTH_VOCAB
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=DEFAULT_SHARED)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("goldens")
    g.add_argument("--out")
    g.add_argument("-v", "--verbose", action="store_true")
    g.add_argument("--cache", help="JSON-lines cache of finished cases (default: $TMPDIR/epsinas_nlp_ref_cache.jsonl)")
    g.add_argument("--fresh", action="store_true", help="ignore the cache")
    s = sub.add_parser("score")
    s.add_argument("--recipe", required=True)
    s.add_argument("--batch", default="tokens:1")
    s.add_argument("--streams", type=int, default=256)
    s.add_argument("--vocab", type=int, default=WIKITEXT2_VOCAB)
    s.add_argument("--weights", default="%r,%r" % NLP_WEIGHTS)
    s.add_argument("--float64", action="store_true", help="run the model in float64 (diagnostic)")
    sub.add_parser("params")
    c = sub.add_parser("make-corpus")
    c.add_argument("--out")
    sub.add_parser("self-test")
    args = ap.parse_args()
    if args.cmd == "goldens":
        cmd_goldens(args)
    elif args.cmd == "score":
        cmd_score(args)
    elif args.cmd == "params":
        sys.exit(cmd_params(args))
    elif args.cmd == "make-corpus":
        cmd_make_corpus(args)
    elif args.cmd == "self-test":
        print("self test:", self_test())


if __name__ == "__main__":
    main()
