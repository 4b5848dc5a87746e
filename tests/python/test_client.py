#!/usr/bin/python3
"""test_client.py — clients/python/epsinas_client.py against the real server.

Starts `$EPS_BIN serve --listen 127.0.0.1 --port 0` (reads the "listening on"
line, like tests/test_http.c), then checks through the client: scoring
(fields passed through untouched, NaN as NaN), batches (order kept, per-item
errors, the 429 retry path on a --workers 1 --queue-capacity 1 server), a job
followed over SSE and by polling with progress callbacks and a tqdm bar,
cancelling a running job, and the error fields of bad requests and a bad
token. Every number is compared with the same server's own /v1/score answer
read without the client (client fidelity, not goldens).

Prints TAP (tests/run.sh counts "ok N" / "not ok N" lines). Run with
/usr/bin/python3 (standard library only); tests/test_pyclient.sh is the
entry point make test uses.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.environ.get("EPS_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

import epsinas_client as ec  # noqa: E402
from epsinas_client import Client, EpsinasError, Score  # noqa: E402

BIN = os.environ.get("EPS_BIN") or os.path.join(ROOT, os.environ.get("BUILD", "build"), "epsinas")
_logs = os.path.join(ROOT, os.environ.get("BUILD", "build"), "test-logs")
if os.path.isdir(_logs):  # next to tests/run.sh's logs, replaced on every run
    LOGDIR = os.path.join(_logs, "pyclient")
    os.makedirs(LOGDIR, exist_ok=True)
else:
    LOGDIR = tempfile.mkdtemp(prefix="eps-pyclient-")
for _k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
    os.environ.pop(_k, None)  # loopback only: urllib would send these requests to a proxy

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
A_OP_INDICES = (2, 2, 0, 4, 2, 0)  # NASLib's spelling of A (openapi.yaml example)
NAN_ARCH = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
OPS = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def cells(n: int, skip: int = 0) -> List[str]:
    """n distinct NB201 cells without `none` (nothing pruned, so distinct cache keys)."""
    it = itertools.islice(itertools.product(OPS, repeat=6), skip, skip + n)
    return ["|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*e) for e in it]


def same_real(a: float, b: float, rel: float = 1e-14, abs_: float = 1e-300) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


# ------------------------------------------------------------ server process

def _die_with_parent() -> None:
    try:  # the server never outlives the test (PR_SET_PDEATHSIG = 1)
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


class Server:
    """`epsinas serve` on a free loopback port; stop() checks a clean exit."""

    count = 0

    def __init__(self, *args: str) -> None:
        Server.count += 1
        self.log = os.path.join(LOGDIR, f"server{Server.count}.log")
        cmd = [BIN, "serve", "--listen", "127.0.0.1", "--port", "0", *args]
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, preexec_fn=_die_with_parent)
        line = b""
        deadline = time.monotonic() + 60  # ASan builds load batches slowly
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                b = os.read(self.proc.stdout.fileno(), 1)
                if not b:
                    break
                line += b
        text = line.decode(errors="replace").strip()
        if not text.startswith("listening on ") or ":" not in text:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"server did not start ({text!r}); log {self.log}")
        self.port = int(text.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def raw(self, method: str, path: str, body: Any = None, token: Optional[str] = None) -> Tuple[int, Any]:
        """The API without the client: (status, parsed JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if data else {}
        if token:
            h["Authorization"] = "Bearer " + token
        req = urllib.request.Request(self.url + path, data=data, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=30) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
        return 0.0

    def await_metric(self, name: str, value: float, timeout: float = 30) -> bool:
        """Polls /metrics until name == value (bounded); True when reached."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric(name) == value:
                return True
            time.sleep(0.005)
        return False

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -1
        self.proc.stdout.close()
        return self.proc.returncode


class FakeTqdm:
    """Stands in for tqdm.tqdm (not installed here) to check sweep()'s bar."""

    made: List["FakeTqdm"] = []

    def __init__(self, total: int = 0, desc: str = "", **kw: Any) -> None:
        self.total, self.desc, self.n, self.closed = total, desc, 0, False
        FakeTqdm.made.append(self)

    def update(self, k: int) -> None:
        self.n += k

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


# ------------------------------------------------------------ one server for most tests

class ScoreAndJobs(unittest.TestCase):
    srv: Server
    c: Client

    @classmethod
    def setUpClass(cls) -> None:
        cls.srv = Server("--workers", "2", "--batch-size", "64", "--max-batch-items", "8")
        cls.c = Client(cls.srv.url, timeout=60, backoff=0.05)

    @classmethod
    def tearDownClass(cls) -> None:
        assert cls.srv.stop() == 0, f"server did not exit cleanly; log {cls.srv.log}"

    def assert_same_as_api(self, s: Score, req: Dict[str, Any]) -> None:
        st, o = self.srv.raw("POST", "/v1/score", req)
        self.assertEqual(st, 200, o)
        eps = float("nan") if o["epsilon"] is None else o["epsilon"]
        self.assertTrue(same_real(s.epsilon, eps, rel=0, abs_=0), (s.epsilon, eps))
        self.assertEqual((s.nan_reason, s.params, s.macs, s.hash, s.canonical),
                         (o["nan_reason"], o["params"], o["macs"], o["hash"], o["canonical"]))

    def test_score_same_as_raw_api(self) -> None:
        req = {"space": "nb201", "arch": A, "batch_size": 16}
        s = self.c.score(space="nb201", arch=A, batch_size=16)
        self.assertIsInstance(s.epsilon, float)
        self.assertFalse(math.isnan(s.epsilon))
        self.assertGreater(s.params, 0)
        self.assertGreater(s.macs, 0)
        self.assertEqual(len(s.hash), 32)
        self.assertEqual(s.raw["batch_size"], 16)
        self.assert_same_as_api(s, req)
        again = self.c.score(**req)  # answered from the cache now
        self.assertTrue(again.cached)
        self.assertEqual(again.epsilon, s.epsilon)
        by_hash = self.c.scores(s.hash)
        self.assertTrue(any(x.epsilon == s.epsilon for x in by_hash))

    def test_nan_is_nan(self) -> None:
        s = self.c.score(space="nb201", arch=NAN_ARCH, batch_size=16)
        self.assertTrue(math.isnan(s.epsilon))
        self.assertIsNone(s.raw["epsilon"])
        self.assertTrue(s.nan_reason)
        self.assertIsNone(ec.nan_to_none(s.epsilon))

    def test_fields_pass_through(self) -> None:
        # tuples go out as arrays, ids are echoed, x- extensions are the caller's
        s = self.c.score(space="nb201", arch=A, weights=(1e-6, 2.0), batch_size=16, id="run-7", **{"x-trial": 3})
        self.assertEqual(s.id, "run-7")
        self.assertEqual(s.raw["weights"], [1e-6, 2.0])
        self.assert_same_as_api(s, {"space": "nb201", "arch": A, "weights": [1e-6, 2.0], "batch_size": 16})
        # NASLib op_indices (a tuple), an NNI dict and an NB101 NASLib tuple go out as the
        # caller wrote them and score the same cell as its canonical spelling
        plain = self.c.score(space="nb201", arch=A, batch_size=16)
        n = self.c.score(space="nb201", op_indices=A_OP_INDICES, batch_size=16)
        self.assertEqual((n.canonical, n.hash, n.epsilon), (A, plain.hash, plain.epsilon))
        self.assertEqual(n.encodings["op_indices"], list(A_OP_INDICES))
        nni = self.c.score(space="nb201", nni=n.encodings["nni"], batch_size=16)
        self.assertEqual((nni.hash, nni.epsilon), (plain.hash, plain.epsilon))
        matrix = [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
        ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]
        m = self.c.score(space="nb101", matrix=matrix, ops=ops, batch_size=16)
        t = self.c.score(space="nb101", naslib=tuple(m.encodings["naslib"]), batch_size=16)
        self.assertEqual((t.hash, t.epsilon), (m.hash, m.epsilon))
        self.assert_same_as_api(t, {"space": "nb101", "matrix": matrix, "ops": ops, "batch_size": 16})
        with self.assertRaises(EpsinasError) as cm:  # two spellings at once: the server names both
            self.c.score(space="nb201", arch=A, op_indices=A_OP_INDICES)
        self.assertEqual((cm.exception.status, cm.exception.field), (400, "arch,op_indices"))

    def test_score_many_order_and_errors(self) -> None:
        archs = cells(9, skip=100)
        reqs: List[Dict[str, Any]] = [{"space": "nb201", "arch": a, "batch_size": 16, "id": i}
                                      for i, a in enumerate(archs)]
        reqs.insert(4, {"space": "nb201", "arch": "|bogus~0|", "id": "bad"})
        reqs.insert(7, {"space": "nb201", "arch": NAN_ARCH, "batch_size": 16, "id": "nan"})
        # chunk 20 is capped at --max-batch-items 8: two calls, order kept across them
        out = self.c.score_many(reqs, chunk=20)
        self.assertEqual(len(out), len(reqs))
        for req, r in zip(reqs, out):
            if req["id"] == "bad":
                self.assertIsInstance(r, EpsinasError)
                self.assertEqual((r.status, r.code, r.field), (400, "invalid_input", "arch"))
                self.assertIn("bogus", r.message)
                continue
            self.assertIsInstance(r, Score, r)
            self.assertEqual(r.id, req["id"])
            self.assert_same_as_api(r, {k: v for k, v in req.items() if k != "id"})
        self.assertTrue(math.isnan(out[7].epsilon))
        with self.assertRaises(EpsinasError) as cm:
            self.c.score_many(reqs[3:6], chunk=2, raise_errors=True)
        self.assertEqual(cm.exception.field, "arch")
        self.assertEqual(self.c.score_many([]), [])

    def run_sweep(self, poll: Optional[float]) -> None:
        archs = cells(12, skip=300 if poll is None else 400) + [NAN_ARCH]
        seen: List[ec.Progress] = []
        FakeTqdm.made.clear()
        sys.modules["tqdm"] = types.SimpleNamespace(tqdm=FakeTqdm)  # type: ignore
        try:
            res = self.c.sweep(items=[{"space": "nb201", "arch": a} for a in archs], batch_size=8,
                               label="pyclient", progress=seen.append, poll=poll)
        finally:
            del sys.modules["tqdm"]
        self.assertEqual(res.status, "succeeded")
        n_nan = sum(math.isnan(r.epsilon) for r in res.rows)
        self.assertEqual((res.job["total"], res.job["done"], res.job["nan"]), (13, 13, n_nan))
        self.assertTrue(math.isnan(res.rows[-1].epsilon) and res.rows[-1].nan_reason)
        self.assertTrue(seen, "no progress callback")
        self.assertEqual([p.done for p in seen], sorted(p.done for p in seen))  # never backwards
        self.assertTrue(all(p.total == 13 and p.id == res.id for p in seen))
        self.assertEqual((seen[-1].status, seen[-1].done), ("succeeded", 13))
        self.assertEqual(len(FakeTqdm.made), 1)
        bar = FakeTqdm.made[0]
        self.assertEqual((bar.total, bar.n, bar.closed, bar.desc), (13, 13, True, "pyclient"))
        self.assertEqual([r.index for r in res.rows], list(range(13)))
        for r, a in zip(res.rows, archs):
            self.assertEqual(r.arch, a)
            st, o = self.srv.raw("POST", "/v1/score", {"space": "nb201", "arch": a, "batch_size": 8})
            self.assertEqual(st, 200)
            eps = float("nan") if o["epsilon"] is None else o["epsilon"]
            self.assertTrue(same_real(r.epsilon, eps), (a, r.epsilon, eps))  # rows carry 15 digits
            self.assertEqual((r.params, r.macs, r.hash, r.nan_reason), (o["params"], o["macs"], o["hash"],
                                                                          o["nan_reason"]))
        # resuming after a row: only the later ones
        self.assertEqual([r.index for r in self.c.results(res.id, after=10)], [11, 12])
        self.assertIn(res.id, [j["id"] for j in self.c.jobs()])

    def test_sweep_sse_progress(self) -> None:
        self.run_sweep(poll=None)

    def test_sweep_polling_progress(self) -> None:
        self.run_sweep(poll=0.02)

    def test_cancel_running_job(self) -> None:
        # a whole space (minutes at batch 16); cancel from the progress callback once rows arrive
        calls: List[ec.Progress] = []

        def on_progress(p: ec.Progress) -> None:
            calls.append(p)
            if p.done > 0 and p.status == "running" and not any(c.status == "x" for c in calls):
                job = self.c.cancel(p.id)
                self.assertIn(job["status"], ("running", "cancelled"))
                calls.append(ec.Progress(p.id, "x", 0, 0, 0.0, None))  # cancel once

        res = self.c.sweep(space="nb201", all=True, batch_size=16, progress=on_progress, bar=False)
        self.assertEqual(res.status, "cancelled")
        total = res.job["total"]
        self.assertEqual(total, 15625)
        self.assertLess(len(res.rows), total)
        self.assertEqual(len(res.rows), res.job["done"])
        self.assertEqual([r.index for r in res.rows], list(range(len(res.rows))))
        s = self.c.score(space="nb201", arch=res.rows[0].arch, batch_size=16)
        self.assertTrue(same_real(res.rows[0].epsilon, s.epsilon))
        again = self.c.cancel(res.id)  # cancelling a finished job changes nothing
        self.assertEqual(again["status"], "cancelled")

    def test_error_fields(self) -> None:
        cases = [  # (call, status, code, field, words in the message)
            (lambda: self.c.score(space="nb201", arch=A, weight=1.0), 400, "invalid_input", "weight", "unknown field"),
            (lambda: self.c.score(space="nb201", arch="|bogus~0|"), 400, "invalid_input", "arch", "bogus"),
            (lambda: self.c.score(space="nb201", arch=A, batch_size=65), 400, "invalid_input", "batch_size", "1..64"),
            (lambda: self.c.score(space="nb201", arch=A, batch="nope"), 400, "invalid_input", "batch", "unknown batch"),
            (lambda: self.c.score(space="nope", arch=A), 400, "invalid_input", "space", "nope"),
            (lambda: self.c.submit(items=[{"space": "nb201", "arch": A}, {"space": "nb201", "arch": "x"}]),
             400, "invalid_input", "items[1].arch", "item 1"),
            (lambda: self.c.submit(space="nlp", all=True), 400, "invalid_input", "space", "not enumerable"),
            (lambda: self.c.job("0123456789abcdef"), 404, "not_found", "id", "no such job"),
            (lambda: self.c.cancel("bad.id!"), 400, "invalid_input", "id", "malformed"),
        ]
        for call, status, code, field, words in cases:
            with self.assertRaises(EpsinasError) as cm:
                call()
            e = cm.exception
            self.assertEqual((e.status, e.code), (status, code), e)
            if field is not None:
                self.assertEqual(e.field, field, e)
            self.assertIn(words, e.message)
            self.assertTrue(e.request_id)
            self.assertFalse(e.retryable)
            self.assertIn(code, str(e))

    def test_service_info(self) -> None:
        names = [s["name"] for s in self.c.spaces()]
        self.assertIn("nb201", names)
        self.assertEqual(self.c.max_batch_items(), 8)
        batches = {b["name"]: b for b in self.c.batches()}
        self.assertEqual(batches["default"]["size"], 64)
        h = self.c.health()
        self.assertTrue(h.live and h.ready)
        self.assertEqual(h.version, self.srv.raw("GET", "/v2")[1]["version"])
        self.assertIn("jobs", h.extensions)

    def test_readme_adapter(self) -> None:
        # the NASLib-style adapter exactly as clients/python/README.md shows it
        with open(os.path.join(ROOT, "clients", "python", "README.md")) as f:
            blocks = f.read().split("```python\n")
        code = next(b.split("```")[0] for b in blocks if "class EpsinasPredictor" in b)
        code = code.split("\npredictor = ")[0]  # the usage lines assume localhost:8080
        ns: Dict[str, Any] = {}
        exec(compile(code, "README.md", "exec"), ns)
        p = ns["EpsinasPredictor"](self.srv.url, batch_size=16)
        want = self.c.score(space="nb201", arch=A, batch_size=16).epsilon
        self.assertEqual(p.query(A), want)
        self.assertEqual(p.query(NAN_ARCH), -math.inf)
        self.assertEqual(p.query_many([A, NAN_ARCH, A]), [want, -math.inf, want])
        self.assertEqual(p.query(A_OP_INDICES), want)  # NASLib op_indices

        class NaslibGraph:  # what the adapter reads from a NASLib NB201 graph
            def get_op_indices(self) -> List[int]:
                return list(A_OP_INDICES)

        self.assertEqual(p.query(NaslibGraph()), want)
        nni = self.c.score(space="nb201", arch=A, batch_size=16).encodings["nni"]
        self.assertEqual(p.query(nni), want)

    def test_unreachable(self) -> None:
        dead = Server()
        url = dead.url
        self.assertEqual(dead.stop(), 0)
        c = Client(url, retries=2, backoff=0.01)
        slept: List[float] = []
        c._sleep = slept.append  # the delays, not the waiting, are under test
        with self.assertRaises(EpsinasError) as cm:
            c.score(space="nb201", arch=A)
        self.assertEqual((cm.exception.status, cm.exception.code), (0, "connection_error"))
        self.assertEqual(len(slept), 2)  # bounded: retries=2 -> 3 attempts, 2 waits
        self.assertTrue(all(0 <= d <= 0.04 for d in slept), slept)
        h = c.health()
        self.assertFalse(h.live or h.ready)


# ------------------------------------------------------------ backpressure

class Backpressure(unittest.TestCase):
    """--workers 1 --queue-capacity 1: anything beyond one computation is 429."""

    def setUp(self) -> None:
        self.srv = Server("--workers", "1", "--queue-capacity", "1")

    def tearDown(self) -> None:
        self.assertEqual(self.srv.stop(), 0, self.srv.log)

    def test_score_many_retries_429(self) -> None:
        c = Client(self.srv.url, backoff=0.02, max_backoff=0.5)
        reqs = [{"space": "nb201", "arch": a, "engine": "dense", "batch_size": 8} for a in cells(6, skip=1000)]
        # without retries, only what fits the queue is scored; the rest are the API's 429s
        once = c.score_many(reqs, retries=0)
        refused = [r for r in once if isinstance(r, EpsinasError)]
        self.assertTrue(refused, "nothing was refused: the queue did not fill")
        for e in refused:
            self.assertEqual((e.status, e.code), (429, "queue_full"))
            self.assertTrue(e.retryable)
        rejected0 = self.srv.metric('epsinas_rejected_total{reason="queue_full"}')
        self.assertEqual(rejected0, len(refused))
        # with retries every item is scored, in order, and the server saw 429s on the way
        fresh = [{"space": "nb201", "arch": a, "engine": "dense", "batch_size": 8} for a in cells(6, skip=2000)]
        slept: List[float] = []
        real_sleep = c._sleep

        def sleep(d: float) -> None:
            slept.append(d)
            real_sleep(d)

        c._sleep = sleep
        out = c.score_many(fresh, retries=10)
        self.assertTrue(all(isinstance(r, Score) for r in out), out)
        self.assertGreater(self.srv.metric('epsinas_rejected_total{reason="queue_full"}'), rejected0)
        self.assertTrue(slept)
        self.assertTrue(all(d <= 0.5 for d in slept), slept)  # max_backoff bounds every wait
        for req, r in zip(fresh, out):
            st, o = self.srv.raw("POST", "/v1/score", req)
            self.assertEqual(st, 200)
            self.assertEqual((r.hash, r.canonical), (o["hash"], o["canonical"]))
            eps = float("nan") if o["epsilon"] is None else o["epsilon"]
            self.assertTrue(same_real(r.epsilon, eps, rel=0, abs_=0), (r.epsilon, eps))

    def test_score_429_then_retry(self) -> None:
        c = Client(self.srv.url, backoff=0.05, max_backoff=0.5)
        slow = {"space": "nb201", "arch": cells(1, skip=3000)[0], "engine": "dense", "batch_size": 64}
        t = threading.Thread(target=lambda: self.srv.raw("POST", "/v1/score", slow))
        t.start()
        try:
            self.assertTrue(self.srv.await_metric("epsinas_queue_depth", 1), "the slow request never queued")
            other = cells(1, skip=3001)[0]
            with self.assertRaises(EpsinasError) as cm:
                c.score(space="nb201", arch=other, engine="dense", batch_size=8, retries=0)
            e = cm.exception
            self.assertEqual((e.status, e.code, e.retry_after), (429, "queue_full", 1.0))
            # retried: waits at least Retry-After (capped by max_backoff) and gets through
            s = c.score(space="nb201", arch=other, engine="dense", batch_size=8, retries=50)
            self.assertFalse(math.isnan(s.epsilon))
        finally:
            t.join()


class JobLimits(unittest.TestCase):
    def test_too_many_jobs_retried_then_accepted(self) -> None:
        srv = Server("--max-jobs", "1", "--workers", "1")
        try:
            c = Client(srv.url, backoff=0.05, max_backoff=0.2)
            first = c.submit(space="nb201", all=True, batch_size=16)  # minutes: still running below
            with self.assertRaises(EpsinasError) as cm:
                c.submit(items=[{"space": "nb201", "arch": A}], retries=0)
            e = cm.exception
            self.assertEqual((e.status, e.code, e.retry_after), (429, "too_many_jobs", 1.0))
            # the refused job is sent again once the first one is cancelled
            slept: List[float] = []

            def sleep(d: float) -> None:
                if not slept:
                    c.cancel(first["id"])
                slept.append(d)
                time.sleep(d)

            c._sleep = sleep
            second = c.submit(items=[{"space": "nb201", "arch": A}], batch_size=4, retries=100)
            self.assertTrue(slept)
            self.assertEqual(c.follow(second["id"])["status"], "succeeded")
            self.assertEqual(c.job(first["id"])["status"], "cancelled")
            self.assertEqual(len(c.jobs()), 2)  # refused submissions left no job behind
        finally:
            self.assertEqual(srv.stop(), 0, srv.log)


# ------------------------------------------------------------ auth

class Auth(unittest.TestCase):
    def test_bad_token(self) -> None:
        srv = Server("--api-token", "s3cret-token")
        try:
            for token in (None, "wrong"):
                c = Client(srv.url, token=token)
                for call in (lambda: c.score(space="nb201", arch=A, batch_size=4), c.spaces,
                             lambda: c.sweep(items=[{"space": "nb201", "arch": A}])):
                    with self.assertRaises(EpsinasError) as cm:
                        call()
                    self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))
                    self.assertFalse(cm.exception.retryable)
                self.assertTrue(c.health().ready)  # probes need no token
            good = Client(srv.url, token="s3cret-token")
            s = good.score(space="nb201", arch=A, batch_size=4)
            st, o = srv.raw("POST", "/v1/score", {"space": "nb201", "arch": A, "batch_size": 4}, token="s3cret-token")
            self.assertEqual(st, 200)
            self.assertTrue(same_real(s.epsilon, float("nan") if o["epsilon"] is None else o["epsilon"], 0, 0))
        finally:
            self.assertEqual(srv.stop(), 0, srv.log)


# ------------------------------------------------------------ TAP

class TapResult(unittest.TestResult):
    """One TAP line per test, the failure's traceback as # comments."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def _line(self, ok: bool, test: unittest.TestCase, note: str = "", detail: str = "") -> None:
        self.n += 1
        print(f"{'ok' if ok else 'not ok'} {self.n} - {test.id().split('.', 1)[-1]}{note}", flush=True)
        for line in detail.splitlines():
            print("# " + line, flush=True)

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._line(True, test)

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._line(False, test, detail=self.failures[-1][1])

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        if isinstance(test, unittest.TestCase):
            self._line(False, test, detail=self.errors[-1][1])
        else:  # setUpClass / tearDownClass
            self.n += 1
            print(f"not ok {self.n} - {test}", flush=True)
            for line in self.errors[-1][1].splitlines():
                print("# " + line, flush=True)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._line(True, test, note=f" # SKIP {reason}")


def main() -> int:
    if not os.access(BIN, os.X_OK):
        print(f"1..1\nnot ok 1 - the server binary {BIN} is missing (build it first)")
        return 1
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    n = suite.countTestCases()
    print(f"1..{n}", flush=True)
    print(f"# server logs in {LOGDIR}", flush=True)
    result = TapResult()
    suite.run(result)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
