#!/usr/bin/python3
"""docs-check: every example response in README.md, docs/*.md and
openapi.yaml is what the product answers (make docs-check, in CI).

Marking an example (what is not marked is not checked: requests and shell
commands need no mark):
  Markdown: a comment line right before the example's block (fenced, or
  indented by four spaces), naming how to produce it:
      <!-- docs-check: cli score --space nb201 --arch '...' -->
      <!-- docs-check: http POST /v1/score {"space": "nb201", ...} -->
      <!-- docs-check: http GET /v1/spaces -->
  cli runs the built binary with those arguments (shell words); http asks a
  server this script starts on a free loopback port (one server for the
  run: the first request of an example is a cache miss, later ones hits).
  openapi.yaml: a media type with an `example` and
      x-docs-check: {request: NAME}
  sends the operation's request example NAME to the operation's path; a
  named example of a shared response (components/responses) carries its
  own request beside its value,
      x-docs-check: {post: /v1/score, body: '{"space": ...}'}
  (body is sent as written, so malformed JSON can be an example's cause;
  --update leaves these to be edited by hand).

Comparison: JSON examples are parsed and compared value by value, with the
same keys on both sides; text examples line by line and word by word.
Numbers agree within |a - b| <= 1e-9 * |b| + 1e-12, NaN only with NaN.
Volatile values are not compared: JSON keys in VOLATILE_KEYS, and text
lines whose first word is in VOLATILE_LINES.

  scripts/docs-check.py [--bin build/epsinas]            check; exit 1 on drift
  scripts/docs-check.py --update                         rewrite the examples from the product
  scripts/docs-check.py --self-test                      a changed digit must fail
"""
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOLATILE_KEYS = {"elapsed_ms", "cached", "request_id", "version", "uptime_s"}
VOLATILE_LINES = {"elapsed"}
REL, ABS = 1e-9, 1e-12
MARK = re.compile(r"^\s*<!--\s*docs-check:\s*(cli|http)\s+(.*?)\s*-->\s*$")
NUM = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?,?$|^nan,?$")


class Server:
    """The real binary on a free loopback port, for the run."""

    def __init__(self, binary):
        self.proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1", "--port", "0", "--log-level", "error"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"(\d+)\s*$", line)
        if not m:
            self.close()
            raise SystemExit("docs-check: the server did not print its port (got %r)" % line)
        self.base = "http://127.0.0.1:%s" % m.group(1)

    def ask(self, method, path, body):
        data = body.encode() if body else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:  # an error answer is an example too
            return e.read().decode()

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def num(s):
    s = s.rstrip(",")
    return float("nan") if s == "nan" else float(s)


def close_enough(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= REL * abs(b) + ABS


def diff_json(doc, got, path="$"):
    """The first difference between two JSON values, or None."""
    if isinstance(doc, dict) and isinstance(got, dict):
        keys = (set(doc) | set(got)) - VOLATILE_KEYS
        for k in sorted(keys):
            if k not in doc:
                return "%s.%s: the product answers it, the example lacks it" % (path, k)
            if k not in got:
                return "%s.%s: in the example, not in the product's answer" % (path, k)
            d = diff_json(doc[k], got[k], "%s.%s" % (path, k))
            if d:
                return d
        return None
    if isinstance(doc, list) and isinstance(got, list):
        if len(doc) != len(got):
            return "%s: %d items in the example, %d in the answer" % (path, len(doc), len(got))
        for i, (x, y) in enumerate(zip(doc, got)):
            d = diff_json(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return None
    numbers = (int, float)
    if isinstance(doc, numbers) and isinstance(got, numbers) and not isinstance(doc, bool) and not isinstance(got, bool):
        return None if close_enough(float(doc), float(got)) else "%s: example %r, product %r" % (path, doc, got)
    return None if doc == got else "%s: example %r, product %r" % (path, doc, got)


def diff_text(doc, got):
    dl = [l for l in doc.strip("\n").split("\n") if l.split()[:1] and l.split()[0] not in VOLATILE_LINES]
    gl = [l for l in got.strip("\n").split("\n") if l.split()[:1] and l.split()[0] not in VOLATILE_LINES]
    if len(dl) != len(gl):
        return "%d lines in the example, %d in the output" % (len(dl), len(gl))
    for a, b in zip(dl, gl):
        wa, wb = a.split(), b.split()
        same = len(wa) == len(wb) and all(
            (x == y) or (NUM.match(x) and NUM.match(y) and close_enough(num(x), num(y))) for x, y in zip(wa, wb))
        if not same:
            return "example %r, product %r" % (a.strip(), b.strip())
    return None


def compare(doc, got):
    try:
        dj = json.loads(doc)
    except ValueError:
        return diff_text(doc, got)
    try:
        gj = json.loads(got)
    except ValueError:
        return "the example is JSON, the product's answer is not: %r" % got[:200]
    return diff_json(dj, gj)


def produce(kind, args, binary, server):
    if kind == "cli":
        r = subprocess.run([binary] + shlex.split(args), capture_output=True, text=True, timeout=300, cwd=ROOT)
        return r.stdout
    method, _, rest = args.partition(" ")
    path, _, body = rest.strip().partition(" ")
    return server.ask(method, path, body.strip() or None)


def md_block(lines, i):
    """The example block starting at or after line i: (first, end, text, fenced)."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i < len(lines) and lines[i].startswith("```"):
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        return i + 1, j, "\n".join(lines[i + 1:j]), True
    j = i
    while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
        j += 1
    while j > i and not lines[j - 1].strip():
        j -= 1
    return i, j, "\n".join(l[4:] for l in lines[i:j]), False


def keep_volatile(doc_text, got_text):
    """The product's answer with the example's volatile values (for --update)."""
    try:
        dj, gj = json.loads(doc_text), json.loads(got_text)
    except ValueError:
        dl = {l.split()[0]: l for l in doc_text.split("\n") if l.split()}
        return "\n".join(dl.get(l.split()[0], l) if l.split() and l.split()[0] in VOLATILE_LINES else l
                         for l in got_text.strip("\n").split("\n"))
    if isinstance(dj, dict) and isinstance(gj, dict):
        for k in VOLATILE_KEYS & set(dj) & set(gj):
            gj[k] = dj[k]
    return json.dumps(gj, separators=(",", ":"))


def check_markdown(path, binary, server, update):
    lines = open(path).read().split("\n")
    failures, checked, changed = [], 0, False
    i = 0
    while i < len(lines):
        m = MARK.match(lines[i])
        if not m:
            i += 1
            continue
        first, end, doc, fenced = md_block(lines, i + 1)
        got = produce(m.group(1), m.group(2), binary, server)
        checked += 1
        d = compare(doc, got)
        if d and update:
            new = keep_volatile(doc, got).split("\n")
            lines[first:end] = new if fenced else ["    " + l for l in new]
            changed = True
        elif d:
            failures.append("%s:%d: %s" % (os.path.relpath(path, ROOT), first + 1, d))
        i = first + 1
    if changed:
        open(path, "w").write("\n".join(lines))
    return checked, failures


def check_openapi(path, server, update):
    text = open(path).read()
    spec = yaml.safe_load(text)
    failures, checked = [], 0
    for p, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            if not isinstance(op, dict):
                continue
            examples = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("examples", {})
            for code, resp in op.get("responses", {}).items():
                for ctype, media in (resp.get("content") or {}).items():
                    mark = media.get("x-docs-check")
                    if not mark:
                        continue
                    name = mark["request"]
                    body = json.dumps(examples[name]["value"])
                    got = server.ask(method.upper(), p, body)
                    checked += 1
                    doc = json.dumps(media["example"])
                    d = compare(doc, got)
                    if d and update:
                        text = rewrite_yaml_example(text, p, method, keep_volatile(doc, got))
                    elif d:
                        failures.append("openapi.yaml %s %s %s (request example %s): %s" % (method.upper(), p, code, name, d))
    for rname, resp in spec.get("components", {}).get("responses", {}).items():
        for media in (resp.get("content") or {}).values():
            for ename, ex in (media.get("examples") or {}).items():
                mark = ex.get("x-docs-check") if isinstance(ex, dict) else None
                if not mark:
                    continue
                got = server.ask("POST", mark["post"], mark["body"])
                checked += 1
                d = compare(json.dumps(ex["value"]), got)
                if d:
                    failures.append("openapi.yaml components/responses/%s example %s: %s%s" % (
                        rname, ename, d, " (not rewritten: edit it by hand)" if update else ""))
    if update:
        open(path, "w").write(text)
    return checked, failures


def rewrite_yaml_example(text, path, method, answer):
    """Replaces the `example:` under the x-docs-check mark of path/method."""
    lines = text.split("\n")
    at = next(i for i, l in enumerate(lines) if l.strip() == path + ":")
    mark = next(i for i in range(at, len(lines)) if "x-docs-check:" in lines[i])
    ex = next(i for i in range(mark - 40, len(lines)) if i > at and lines[i].strip() == "example:")
    indent = len(lines[ex]) - len(lines[ex].lstrip())
    end = ex + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    dumped = yaml.safe_dump(json.loads(answer), sort_keys=False, default_flow_style=None, width=120).rstrip("\n")
    lines[ex + 1:end] = [" " * (indent + 2) + l for l in dumped.split("\n")]
    return "\n".join(lines)


def run(root, binary, update):
    server = Server(binary)
    try:
        checked, failures = 0, []
        docs = [os.path.join(root, "README.md")] + sorted(
            os.path.join(root, "docs", f) for f in os.listdir(os.path.join(root, "docs")) if f.endswith(".md"))
        for f in docs:
            c, fl = check_markdown(f, binary, server, update)
            checked += c
            failures += fl
        c, fl = check_openapi(os.path.join(root, "openapi.yaml"), server, update)
        checked += c
        failures += fl
    finally:
        server.close()
    return checked, failures


def self_test(binary):
    """A copy of the docs with one digit of a checked example changed must fail."""
    tmp = tempfile.mkdtemp()
    try:
        shutil.copy(os.path.join(ROOT, "README.md"), tmp)
        shutil.copy(os.path.join(ROOT, "openapi.yaml"), tmp)
        os.mkdir(os.path.join(tmp, "docs"))
        readme = open(os.path.join(tmp, "README.md")).read()
        spot = readme.index('"params":801841')
        open(os.path.join(tmp, "README.md"), "w").write(readme[:spot] + '"params":801842' + readme[spot + 15:])
        checked, failures = run(tmp, binary, False)
        ok = len(failures) == 1 and "params" in failures[0]
        print("docs-check --self-test: %s (%d examples, the changed one %s)" %
              ("ok" if ok else "FAILED", checked, "caught" if ok else "not caught: %r" % failures))
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp)


def main():
    args = sys.argv[1:]
    binary = os.path.join(ROOT, "build", "epsinas")
    if "--bin" in args:
        binary = os.path.abspath(args[args.index("--bin") + 1])
    if "--self-test" in args:
        return self_test(binary)
    update = "--update" in args
    checked, failures = run(ROOT, binary, update)
    for f in failures:
        print("docs-check: " + f)
    if update:
        print("docs-check: %d examples checked, the drifted ones rewritten" % checked)
        return 0
    print("docs-check: %d examples, %d differ from the product" % (checked, len(failures)))
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
