"""epsinas_client — a Python client for the epsinas scoring service.

This file owns the Python side of the HTTP API (openapi.yaml): one request
helper that turns every non-2xx answer into EpsinasError, the result types
(Score, Row, Progress, Health), batched scoring with bounded retries, and
sweep jobs followed over Server-Sent Events or by polling.

Standard library only (urllib, json, time); Python 3.9+. Copy this one file
next to your code, or put clients/python on PYTHONPATH.

    from epsinas_client import Client
    c = Client("http://localhost:8080")
    s = c.score(space="nb201", arch="|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    print(s.epsilon, s.params, s.cached)

Request fields are passed through as given, so every field the service
accepts works here without a client change: nb201 `arch`, NASLib
`op_indices` or an NNI dict as `nni`; nb101 `matrix` + `ops` or the NASLib
tuple as `naslib`; `weights`, `batch`, `batch_size`, `engine`, and client
extensions (`**{"x-run": 3}`). Tuples are sent as JSON arrays.
"""

from __future__ import annotations

import json
import math
import random
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["Client", "EpsinasError", "Score", "Row", "Progress", "Health", "SweepResult", "RETRYABLE"]
__version__ = "0.1.0"

# Statuses worth another attempt: the compute queue was full (429), a proxy
# or load balancer lost its replica (502/504), the replica is draining (503),
# or the request's deadline passed while it waited (504).
RETRYABLE = frozenset({429, 502, 503, 504})

# Job states after which nothing changes (openapi.yaml Job.status).
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "deleted"})

JSONDict = Dict[str, Any]


class EpsinasError(Exception):
    """An error answer of the service (or no answer at all).

    status  HTTP status; 0 when the server could not be reached.
    code    the API's machine code (invalid_input, queue_full, unauthorized,
            ...); connection_error when unreachable, http_error when the
            answer was not the API's JSON (e.g. a proxy's HTML page).
    field   the request field the error is about (arch, weights[0],
            items[3].arch), or None.
    message the API's one human line.
    line, column   where an invalid_json body went wrong, else None.
    retry_after    seconds from Retry-After, else None.
    request_id     the X-Request-Id of the answer, for the server's logs.
    body    the parsed error object (or {} when there was none).
    """

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None,
                 line: Optional[int] = None, column: Optional[int] = None,
                 retry_after: Optional[float] = None, request_id: Optional[str] = None,
                 body: Optional[JSONDict] = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.line = line
        self.column = column
        self.retry_after = retry_after
        self.request_id = request_id
        self.body = body if body is not None else {}
        where = f" (field: {field})" if field else ""
        super().__init__(f"{status} {code}: {message}{where}")

    @property
    def retryable(self) -> bool:
        """True for answers that may succeed when sent again (RETRYABLE, or no answer)."""
        return self.status in RETRYABLE or self.status == 0

    @classmethod
    def from_body(cls, status: int, body: Any, retry_after: Optional[float] = None,
                  request_id: Optional[str] = None) -> "EpsinasError":
        """From an error object {"error", "code", "field"?, "line"?, "column"?}."""
        if not isinstance(body, dict) or "code" not in body:
            text = body if isinstance(body, str) else json.dumps(body)
            return cls(status, "http_error", f"HTTP {status}: {text[:200]}", retry_after=retry_after,
                       request_id=request_id, body={})
        return cls(status, str(body.get("code")), str(body.get("error", "")), body.get("field"),
                   body.get("line"), body.get("column"), retry_after, request_id, body)


def _real(v: Any) -> float:
    """JSON number or null -> float; null (an undefined epsilon) is NaN."""
    return float("nan") if v is None else float(v)


@dataclass
class Score:
    """One scored architecture (POST /v1/score, or an item of /v1/score/batch).

    epsilon is NaN when the service answers null; nan_reason then says why.
    raw is the whole response object (weights, batch_hash, engine,
    encodings, elapsed_ms, and anything added later)."""

    epsilon: float
    nan_reason: Optional[str]
    params: int
    macs: int
    hash: str
    cached: bool
    canonical: Optional[str] = None
    space: Optional[str] = None
    id: Any = None
    raw: JSONDict = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, o: JSONDict) -> "Score":
        return cls(epsilon=_real(o.get("epsilon")), nan_reason=o.get("nan_reason"),
                   params=int(o.get("params") or 0), macs=int(o.get("macs") or 0), hash=str(o.get("hash") or ""),
                   cached=bool(o.get("cached")), canonical=o.get("canonical"), space=o.get("space"),
                   id=o.get("id"), raw=o)

    @property
    def encodings(self) -> Optional[JSONDict]:
        """The canonical cell in every encoding of its space, when the service sends them."""
        return self.raw.get("encodings")


@dataclass
class Row:
    """One result row of a sweep job (GET /v1/jobs/{id}/results, NDJSON).

    epsilon is NaN for a NaN score and for a failed item; error is the
    failed item's message, else None."""

    index: int
    arch: str
    epsilon: float
    nan_reason: Optional[str]
    params: Optional[int]
    macs: Optional[int]
    hash: Optional[str]
    error: Optional[str] = None
    raw: JSONDict = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, o: JSONDict) -> "Row":
        return cls(index=int(o["index"]), arch=str(o.get("arch", "")), epsilon=_real(o.get("epsilon")),
                   nan_reason=o.get("nan_reason"), params=o.get("params"), macs=o.get("macs"),
                   hash=o.get("hash"), error=o.get("error"), raw=o)


@dataclass
class Progress:
    """A job's progress: from an SSE `progress`/`end` event or GET /v1/jobs/{id}."""

    id: str
    status: str
    done: int
    total: int
    rate: float
    eta_s: Optional[float]
    raw: JSONDict = field(default_factory=dict, repr=False)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATES

    @classmethod
    def from_json(cls, o: JSONDict) -> "Progress":
        rate = o.get("rate", o.get("rate_per_s"))
        return cls(id=str(o.get("id", "")), status=str(o.get("status", "")), done=int(o.get("done") or 0),
                   total=int(o.get("total") or 0), rate=float(rate or 0.0), eta_s=o.get("eta_s"), raw=o)


@dataclass
class SweepResult:
    """What sweep() returns: the final job (GET /v1/jobs/{id}) and its rows in index order."""

    job: JSONDict
    rows: List[Row]

    @property
    def id(self) -> str:
        return str(self.job.get("id"))

    @property
    def status(self) -> str:
        return str(self.job.get("status"))


@dataclass
class Health:
    """Liveness and readiness probes plus the server's metadata (GET /v2)."""

    live: bool
    ready: bool
    version: Optional[str] = None
    extensions: List[str] = field(default_factory=list)
    raw: JSONDict = field(default_factory=dict, repr=False)


ProgressCallback = Callable[[Progress], None]
Result = Union[Score, EpsinasError]


class _Response:
    """A 2xx answer: status, headers, and either the body bytes or the open stream."""

    def __init__(self, status: int, headers: Any, body: Optional[bytes], stream: Any = None) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:  # e.g. a proxy's HTML page with a 2xx status
            text = (self.body or b"")[:200].decode("utf-8", "replace")
            raise EpsinasError(self.status, "http_error", f"the answer is not JSON: {text!r}") from None


def _retry_after(headers: Any) -> Optional[float]:
    v = headers.get("Retry-After") if headers is not None else None
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


class Client:
    """A client of one epsinas service (or of the load balancer in front of a fleet).

    url      base URL, e.g. http://localhost:8080 (a path prefix is kept).
    token    the server's --api-token, sent as `Authorization: Bearer TOKEN`.
    timeout  seconds to wait for a connection or for any read; a score
             waits at most the server's --deadline-ms, so keep this above it.
    retries  how many times a request answered 429/502/503/504 (or not
             answered) is sent again; 0 = never. score_many() retries only
             the items that failed that way.
    backoff  first retry delay in seconds; it doubles per attempt up to
             max_backoff, with full jitter (a random delay up to that), and
             never under the server's Retry-After.
    Methods are safe to call from several threads: each call opens its own
    connection.
    """

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 60.0, retries: int = 5,
                 backoff: float = 0.1, max_backoff: float = 5.0, user_agent: Optional[str] = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if retries < 0 or backoff < 0 or max_backoff < 0 or timeout <= 0:
            raise ValueError("retries, backoff and max_backoff must be >= 0 and timeout > 0")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.user_agent = user_agent or f"epsinas-client-python/{__version__}"
        self._max_batch_items: Optional[int] = None
        self._sleep = time.sleep  # tests may replace it

    # ------------------------------------------------------------ transport

    def _headers(self, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        h = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if extra:
            h.update(extra)
        return h

    def _request(self, method: str, path: str, body: Any = None, headers: Optional[Mapping[str, str]] = None,
                 stream: bool = False, timeout: Optional[float] = None) -> _Response:
        """One HTTP exchange. 2xx -> _Response (stream=True leaves the body
        unread for the caller to close); anything else raises EpsinasError."""
        data = None
        h = self._headers(headers)
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode("utf-8")
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, headers=h, method=method)
        try:
            resp = urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as e:
            try:
                raw = e.read()
            except OSError:  # the body broke off: keep the status
                raw = b""
            rid = e.headers.get("X-Request-Id") if e.headers is not None else None
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            e.close()
            raise EpsinasError.from_body(e.code, parsed, _retry_after(e.headers), rid) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise EpsinasError(0, "connection_error", f"{method} {self.url}{path}: {reason}") from None
        if stream:
            return _Response(resp.status, resp.headers, None, resp)
        with resp:
            try:
                payload = resp.read()
            except (OSError, socket.timeout) as e:
                raise EpsinasError(0, "connection_error", f"{method} {self.url}{path}: {e}") from None
            return _Response(resp.status, resp.headers, payload)

    def _delay(self, attempt: int, floor: Optional[float] = None) -> float:
        """Backoff before retry `attempt` (0-based): full jitter under
        min(max_backoff, backoff * 2**attempt), at least the server's Retry-After
        (capped by max_backoff too, so a bound on attempts bounds the wait)."""
        cap = min(self.max_backoff, self.backoff * (2 ** attempt))
        d = random.uniform(0, cap)
        if floor is not None:
            d = max(d, min(floor, self.max_backoff))
        return d

    def _with_retries(self, fn: Callable[[], Any], retries: Optional[int],
                      again: Callable[[EpsinasError], bool] = lambda e: e.retryable) -> Any:
        """fn(), sent again while it raises an error `again` accepts (at most
        `retries` more times, backing off between attempts)."""
        n = self.retries if retries is None else retries
        for attempt in range(n + 1):
            try:
                return fn()
            except EpsinasError as e:
                if not again(e) or attempt == n:
                    raise
                self._sleep(self._delay(attempt, e.retry_after))
        raise AssertionError("unreachable")

    def _wait_or_raise(self, e: EpsinasError, failures: int) -> int:
        """For loops that reopen a stream: re-raises e when it is final or
        `retries` consecutive failures passed, else backs off; returns failures + 1."""
        if not e.retryable or failures >= self.retries:
            raise e
        self._sleep(self._delay(failures, e.retry_after))
        return failures + 1

    def _get_json(self, path: str, retries: Optional[int] = None) -> Any:
        return self._with_retries(lambda: self._request("GET", path).json(), retries)

    # ------------------------------------------------------------ scoring

    def score(self, space: str, arch: Optional[str] = None, retries: Optional[int] = None, **fields: Any) -> Score:
        """Scores one architecture (POST /v1/score).

        space and its fields as the API takes them: score(space="nb201",
        arch="|...|"), score(space="nb201", op_indices=(2, 2, 0, 4, 2, 0)),
        score(space="nb101", matrix=..., ops=...), score(space="nlp",
        recipe={...}); plus weights, batch, batch_size, engine, id.
        Raises EpsinasError (after `retries` more attempts for 429/5xx)."""
        req = _score_request(space, arch, fields)
        return self._with_retries(lambda: Score.from_json(self._request("POST", "/v1/score", req).json()), retries)

    def max_batch_items(self) -> int:
        """The server's --max-batch-items (from GET /v1/spaces, asked once)."""
        if self._max_batch_items is None:
            limits = self._get_json("/v1/spaces").get("limits", {})
            self._max_batch_items = int(limits.get("max_batch_items", 64))
        return self._max_batch_items

    def score_many(self, requests: Iterable[Mapping[str, Any]], chunk: int = 32, retries: Optional[int] = None,
                   raise_errors: bool = False) -> List[Result]:
        """Scores many requests through POST /v1/score/batch, `chunk` per call.

        requests are dicts as for score() ({"space": "nb201", "arch": ...}).
        Returns one entry per request, in request order: a Score, or the
        EpsinasError of that item (status, code, field as the API gave them)
        when raise_errors is False; with raise_errors=True the first failed
        item is raised after all were tried.
        Items answered 429/502/503/504 are sent again (only those, in a
        smaller batch) with exponential backoff and jitter, at most
        `retries` more times each; then their last error stands. A whole
        batch answered that way (or not answered) is retried the same way.
        chunk is capped at the server's --max-batch-items."""
        reqs = [dict(r) for r in requests]
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        n_retries = self.retries if retries is None else retries
        out: List[Optional[Result]] = [None] * len(reqs)
        if reqs:
            chunk = min(chunk, self.max_batch_items())
        for start in range(0, len(reqs), chunk):
            self._score_chunk(reqs, list(range(start, min(start + chunk, len(reqs)))), n_retries, out)
        results: List[Result] = [r if r is not None else EpsinasError(500, "internal_error", "no result")
                                 for r in out]
        if raise_errors:
            for r in results:
                if isinstance(r, EpsinasError):
                    raise r
        return results

    def _score_chunk(self, reqs: List[JSONDict], todo: List[int], retries: int, out: List[Optional[Result]]) -> None:
        """Fills out[i] for every i in todo, retrying retryable items."""
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                body = self._request("POST", "/v1/score/batch", {"items": [reqs[i] for i in todo]}).json()
                items = body.get("results") if isinstance(body, dict) else None
                if not isinstance(items, list) or len(items) != len(todo):
                    raise EpsinasError(500, "http_error", "batch answer does not hold one result per item")
            except EpsinasError as e:
                if last or not e.retryable:
                    for i in todo:
                        out[i] = e
                    return
                self._sleep(self._delay(attempt, e.retry_after))
                continue
            again: List[int] = []
            for i, o in zip(todo, items):
                status = int(o.get("status", 200)) if isinstance(o, dict) else 500
                if isinstance(o, dict) and "error" not in o and status == 200:
                    out[i] = Score.from_json(o)
                    continue
                err = EpsinasError.from_body(status, o)
                out[i] = err
                if err.retryable and not last:
                    again.append(i)
            if not again:
                return
            todo = again
            self._sleep(self._delay(attempt))  # items carry no Retry-After: the backoff decides

    def scores(self, hash: str) -> List[Score]:
        """The cached results for an architecture hash (GET /v1/scores/{hash}), most recent first."""
        body = self._get_json("/v1/scores/" + urllib.parse.quote(hash, safe=""))
        items = body.get("results", body) if isinstance(body, dict) else body
        return [Score.from_json(o) for o in items]

    # ------------------------------------------------------------ jobs

    def submit(self, space: Optional[str] = None, all: bool = False, items: Optional[Sequence[Mapping[str, Any]]] = None,
               retries: Optional[int] = None, **fields: Any) -> JSONDict:
        """Submits a sweep job (POST /v1/jobs) and returns the Job (status queued).

        Either space + all=True (every cell of an enumerable space) or items
        (score requests as for score_many); fields shared by every item
        (batch, batch_size, weights, engine, dataset) and label go in
        fields. Sent again only when refused with 429 (too many jobs) or
        503 (draining): then nothing was accepted. No answer, or a proxy's
        502/504, may hide an accepted job, so those raise at once."""
        body: JSONDict = dict(fields)
        if all:
            if not space:
                raise ValueError("all=True needs a space")
            body["space"] = space
            body["all"] = True
        elif space is not None:
            body["space"] = space
        if items is not None:
            body["items"] = [dict(i) for i in items]
        if not all and items is None:
            raise ValueError("give items=[...] or space=... with all=True")
        return self._with_retries(lambda: self._request("POST", "/v1/jobs", body).json(), retries,
                                  lambda e: e.status in (429, 503) and e.code in ("too_many_jobs", "draining",
                                                                                   "shutting_down"))

    def job(self, job_id: str) -> JSONDict:
        """A job's status and counters (GET /v1/jobs/{id})."""
        return self._get_json("/v1/jobs/" + _job_path(job_id))

    def jobs(self) -> List[JSONDict]:
        """The jobs this replica holds, newest first (GET /v1/jobs, at most 100)."""
        return list(self._get_json("/v1/jobs").get("jobs", []))

    def cancel(self, job_id: str) -> JSONDict:
        """Cancels a job (DELETE /v1/jobs/{id}); its rows so far stay readable.
        Returns the Job (its status may still be running for a moment)."""
        return self._with_retries(lambda: self._request("DELETE", "/v1/jobs/" + _job_path(job_id)).json(), None)

    def results(self, job_id: str, after: int = -1) -> Iterator[Row]:
        """The job's rows with index > after, in index order (NDJSON, streamed
        line by line, never the whole result in memory). While the job runs,
        only its completed prefix. A connection lost mid-stream is resumed
        from the last row read (bounded by `retries`)."""
        failures = 0
        while True:
            path = f"/v1/jobs/{_job_path(job_id)}/results?after={after}"
            try:
                resp = self._request("GET", path, headers={"Accept": "application/x-ndjson"}, stream=True)
            except EpsinasError as e:
                failures = self._wait_or_raise(e, failures)
                continue
            try:
                with resp.stream as s:
                    for line in s:
                        if not line.strip():
                            continue
                        row = Row.from_json(json.loads(line))
                        after = row.index
                        failures = 0
                        yield row
                return
            except (OSError, ValueError, socket.timeout) as e:
                if failures >= self.retries:
                    raise EpsinasError(0, "connection_error", f"results of job {job_id} broke off: {e}") from None
                self._sleep(self._delay(failures))
                failures += 1

    def follow(self, job_id: str, progress: Optional[ProgressCallback] = None, poll: Optional[float] = None) -> JSONDict:
        """Waits until the job ends and returns the final Job.

        progress(Progress) is called with the first state and on every change
        (at most 4 per second with SSE). poll=None follows GET
        /v1/jobs/{id}/events (Server-Sent Events); poll=SECONDS polls GET
        /v1/jobs/{id} at that interval instead (e.g. through a proxy that
        buffers event streams). A broken or silent stream is checked with a
        GET and reopened; failures to reach the server are bounded by
        `retries`."""
        if poll is not None:
            if poll <= 0:
                raise ValueError("poll must be > 0 seconds")
            return self._follow_poll(job_id, progress, poll)
        return self._follow_sse(job_id, progress)

    def _follow_poll(self, job_id: str, progress: Optional[ProgressCallback], poll: float) -> JSONDict:
        last: Optional[Tuple[str, int]] = None
        while True:
            job = self.job(job_id)
            p = Progress.from_json(job)
            if progress and (p.status, p.done) != last:
                progress(p)
            last = (p.status, p.done)
            if p.final:
                return job
            self._sleep(poll)

    def _follow_sse(self, job_id: str, progress: Optional[ProgressCallback]) -> JSONDict:
        failures = 0  # consecutive broken streams or refused connections
        last: Optional[Tuple[str, int]] = None
        while True:
            try:
                resp = self._request("GET", f"/v1/jobs/{_job_path(job_id)}/events",
                                     headers={"Accept": "text/event-stream"}, stream=True)
                with resp.stream as s:
                    for event, data in _sse_events(s):
                        failures = 0
                        p = Progress.from_json(data)
                        if progress and (p.status, p.done) != last:
                            progress(p)
                        last = (p.status, p.done)
                        if event == "end" and p.final:
                            return data  # the final Job (or {"id", "status": "deleted"})
                        if event == "end":  # the server is draining: come back after the restart
                            break
                    else:
                        failures += 1  # closed without an end event
            except EpsinasError as e:
                failures = self._wait_or_raise(e, failures)
                continue
            except socket.timeout:
                pass  # nothing changed for `timeout` seconds: check the job, then reopen
            except (OSError, ValueError):
                failures += 1  # a broken stream
            job = self._with_retries(lambda: self._request("GET", "/v1/jobs/" + _job_path(job_id)).json(), None)
            p = Progress.from_json(job)
            if p.final:
                if progress and (p.status, p.done) != last:
                    progress(p)
                return job
            if failures > self.retries:
                raise EpsinasError(0, "connection_error", f"the event stream of job {job_id} keeps breaking")
            if failures:
                self._sleep(self._delay(failures - 1))

    def sweep(self, space: Optional[str] = None, all: bool = False, items: Optional[Sequence[Mapping[str, Any]]] = None,
              progress: Optional[ProgressCallback] = None, poll: Optional[float] = None, bar: Optional[bool] = None,
              cancel_on_interrupt: bool = True, **fields: Any) -> SweepResult:
        """Runs a sweep job to its end: submit(), follow(), then results().

        sweep(space="nb201", all=True, batch_size=64) scores a whole space;
        sweep(items=[{"space": "nb201", "arch": ...}, ...]) a list. progress
        and poll as in follow(). bar=None shows a tqdm progress bar when tqdm
        is importable (bar=False never, bar=True requires it). Ctrl-C cancels
        the job (cancel_on_interrupt) before re-raising. A job that ends
        cancelled or failed still returns its rows so far: check .status."""
        job = self.submit(space=space, all=all, items=items, **fields)
        job_id = str(job["id"])
        tq = _make_bar(bar, int(job.get("total") or 0), str(job.get("label") or job_id))
        seen = [0]

        def on_progress(p: Progress) -> None:
            if tq is not None:
                if p.total and tq.total != p.total:
                    tq.total = p.total
                    tq.refresh()
                if p.done > seen[0]:
                    tq.update(p.done - seen[0])
                    seen[0] = p.done
            if progress:
                progress(p)

        try:
            final = self.follow(job_id, on_progress, poll)
        except KeyboardInterrupt:
            if cancel_on_interrupt:
                try:
                    self.cancel(job_id)
                except EpsinasError:
                    pass
            raise
        finally:
            if tq is not None:
                tq.close()
        return SweepResult(job=final, rows=list(self.results(job_id)))

    # ------------------------------------------------------------ service

    def spaces(self) -> List[JSONDict]:
        """Registered spaces (GET /v1/spaces): name, title, default weights, ops, limits."""
        body = self._get_json("/v1/spaces")
        limits = body.get("limits", {})
        if "max_batch_items" in limits:
            self._max_batch_items = int(limits["max_batch_items"])
        return list(body.get("spaces", []))

    def batches(self) -> List[JSONDict]:
        """Loaded batches (GET /v1/batches): name, source, kind, size, shape, hash."""
        return list(self._get_json("/v1/batches").get("batches", []))

    def health(self) -> Health:
        """Liveness, readiness (False while draining) and server metadata.
        Never raises: an unreachable server is live=False, ready=False."""

        def probe(path: str) -> bool:
            try:
                return 200 <= self._request("GET", path).status < 300
            except EpsinasError:
                return False

        live = probe("/v2/health/live")
        ready = live and probe("/v2/health/ready")
        meta: JSONDict = {}
        if live:
            try:
                meta = self._request("GET", "/v2").json()
            except (EpsinasError, ValueError):
                meta = {}
        return Health(live=live, ready=ready, version=meta.get("version"),
                      extensions=list(meta.get("extensions", [])), raw=meta)


# ------------------------------------------------------------ helpers

def _score_request(space: str, arch: Optional[str], fields: Mapping[str, Any]) -> JSONDict:
    if not isinstance(space, str) or not space:
        raise ValueError("space must be a non-empty string (nb201, nb101, nlp, graph, ...)")
    req: JSONDict = {"space": space}
    if arch is not None:
        req["arch"] = arch
    req.update(fields)
    return req


def _job_path(job_id: str) -> str:
    return urllib.parse.quote(str(job_id), safe="")


def _sse_events(stream: Any) -> Iterator[Tuple[str, JSONDict]]:
    """(event, data) pairs of a text/event-stream whose data lines are JSON."""
    event = "message"
    data: List[str] = []
    for raw in stream:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue  # comment / keep-alive
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


def _make_bar(bar: Optional[bool], total: int, desc: str) -> Any:
    if bar is False:
        return None
    try:
        from tqdm import tqdm  # type: ignore
    except ImportError:
        if bar:
            raise
        return None
    return tqdm(total=total, desc=desc, unit="arch", file=sys.stderr)


def nan_to_none(x: float) -> Optional[float]:
    """NaN -> None (for code that stores scores in JSON or a database)."""
    return None if math.isnan(x) else x
