/* eps_http_score.c — score requests of the HTTP front: each item (the one
 * of POST /v1/score, or each of /v1/score/batch) is validated, looked up in
 * the cache (single flight: identical in-flight work is joined), queued
 * for a worker when it must be computed, and answered when it resolves;
 * and the exact-body memo that lets a repeated body skip parsing. */
#include "eps_http_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/engine/engine.h"
#include "epsinas/service/request.h"
#include "epsinas/spaces/space.h"

#define ID_MAX 256         /* longest echoed "id" string */

static void memo_put(eps_server *s, const char *body, size_t len, const eps_cache_key *k, const char *id_json,
                     const eps_named_batch *nb, long long params, long long macs)
{
    if (!s->memo || len > MEMO_BODY_MAX) return;
    uint64_t h = eps_fnv1a(EPS_FNV1A_OFFSET, body, len);
    char *b = malloc(len), *kt = strdup(k->text), *id = strdup(id_json);
    if (!b || !kt || !id) {
        free(b);
        free(kt);
        free(id);
        return;
    }
    memcpy(b, body, len);
    memo_slot *m = &s->memo[h & (MEMO_SLOTS - 1)];
    pthread_mutex_t *mu = &s->memo_mu[h & (MEMO_LOCKS - 1)];
    pthread_mutex_lock(mu);
    free(m->body);
    free(m->key.text);
    free(m->id_json);
    m->h = h;
    m->body = b;
    m->len = len;
    m->key = *k;
    m->key.text = kt;
    m->id_json = id;
    m->nb = nb;
    m->params = params;
    m->macs = macs;
    pthread_mutex_unlock(mu);
}

int eps_http_memo_get(eps_server *s, const char *body, size_t len, eps_cache_key *k, char **id_json,
                      const eps_named_batch **nb, long long *params, long long *macs)
{
    if (!s->memo || len > MEMO_BODY_MAX) return 0;
    uint64_t h = eps_fnv1a(EPS_FNV1A_OFFSET, body, len);
    memo_slot *m = &s->memo[h & (MEMO_SLOTS - 1)];
    pthread_mutex_t *mu = &s->memo_mu[h & (MEMO_LOCKS - 1)];
    int hit = 0;
    pthread_mutex_lock(mu);
    if (m->body && m->h == h && m->len == len && !memcmp(m->body, body, len)) {
        *k = m->key;
        k->text = strdup(m->key.text);
        *id_json = strdup(m->id_json);
        *nb = m->nb;
        *params = m->params;
        *macs = m->macs;
        hit = k->text && *id_json;
        if (!hit) {
            free(k->text);
            free(*id_json);
        }
    }
    pthread_mutex_unlock(mu);
    return hit;
}

static int space_index(const eps_space *sp)
{
    const eps_space *const *all = eps_space_all();
    for (int i = 0; all[i]; i++)
        if (all[i] == sp) return i;
    return -1;
}

/* ------------------------------------------------------------ scoring jobs */

typedef struct sjob {
    eps_job job;
    eps_server *s;
    eps_cache_flight *flight;
    eps_score_req q;  /* what to compute (q.arch owned) */
    int rc;
    eps_error err;
    char *blob;
    size_t blob_len;
    int from_backend; /* blob was read from the shared tier, not computed */
} sjob;

/* Set while score_done resolves waiters with a value read from the shared
 * tier (item_resolved runs on the same thread): those answers are cache hits. */
static _Thread_local int resolving_backend_hit;

static void score_work(eps_job *j)
{
    sjob *sj = j->ctx;
    if ((sj->blob = eps_cache_backend_get(sj->s->cache, sj->flight, &sj->blob_len))) {
        sj->from_backend = 1;
        return;
    }
    eps_metrics_queue_wait((double)(j->t_start_ns - j->t_submit_ns) / 1e9);
    double secs;
    if ((sj->rc = eps_score_req_compute(&sj->q, &j->cancel, &sj->blob, &secs, &sj->err)) < 0) return;
    eps_metrics_score(space_index(sj->q.arch.space), secs);
    sj->blob_len = strlen(sj->blob);
}

static char *err_json(const char *code, const char *msg, const char *field, size_t *len)
{
    json_t *o = eps_http_error_obj(code, msg, field, 0, 0);
    char *s = json_dumps(o, EPS_JSON_FLAGS);
    json_decref(o);
    *len = s ? strlen(s) : 0;
    return s;
}

static void score_done(eps_job *j, eps_job_status st)
{
    sjob *sj = j->ctx;
    int status = 0;
    const char *code = NULL, *msg = NULL, *field = NULL;
    char msgbuf[600];
    if (st == EPS_JOB_EXPIRED) {
        status = 504, code = "deadline_exceeded", msg = "the request's deadline passed while it waited in the queue";
    } else if (st == EPS_JOB_CANCELED) {
        status = 503, code = "shutting_down", msg = "the server is shutting down; the job was not run";
    } else if (sj->rc == EPS_ECANCELED) {
        int past = j->deadline_ns && j->t_end_ns >= j->deadline_ns;
        if (past) status = 504, code = "deadline_exceeded", msg = "the request's deadline passed while it was computed";
        else status = 503, code = "shutting_down", msg = "the server is shutting down; the job was cancelled";
    } else if (sj->rc < 0) {
        status = sj->rc == EPS_EINVAL ? 400 : sj->rc == EPS_ELIMIT ? 413 : 500;
        code = eps_error_code_name(sj->rc);
        snprintf(msgbuf, sizeof msgbuf, "%s", sj->err.msg);
        msg = msgbuf;
        field = sj->err.field;
    }
    if (status == 504) eps_metrics_reject(EPS_REJ_DEADLINE);
    if (status) {
        size_t n = 0;
        char *e = err_json(code, msg, field, &n);
        eps_cache_finish(sj->s->cache, sj->flight, status, e ? e : "{}", e ? n : 2);
        free(e);
    } else {
        resolving_backend_hit = sj->from_backend;
        eps_cache_finish(sj->s->cache, sj->flight, 0, sj->blob, sj->blob_len);
        resolving_backend_hit = 0;
    }
    eps_arch_free(&sj->q.arch);
    free(sj->blob);
    free(sj);
}

/* ------------------------------------------------------------ items */

static void item_resolved(eps_cache_waiter *w, int status, const char *val, size_t len)
{
    req *r = w->ctx;
    item *it = &r->items[w->index];
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, val, len);
        copy[len] = 0;
    }
    pthread_mutex_lock(&r->mu);
    it->val = copy;
    it->status = copy ? (status == 0 ? 200 : status) : 500;
    it->cached = status == 0 && resolving_backend_hit;
    int resume = --r->pending == 0 && r->suspended;
    if (resume) r->suspended = 0;
    pthread_mutex_unlock(&r->mu);
    if (resume) {
        pthread_mutex_lock(&r->s->mu);
        r->s->suspended--;
        pthread_mutex_unlock(&r->s->mu);
        MHD_resume_connection(r->conn);
    }
}

/* Characters (code points) of a valid UTF-8 string: JSON Schema's
 * maxLength counts these, not bytes. */
static size_t utf8_chars(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)p[i] & 0xC0) != 0x80;
    return c;
}

static void item_fail(item *it, int status, const char *code, const char *msg, const char *field)
{
    size_t n;
    it->val = err_json(code, msg, field, &n);
    it->status = it->val ? status : 500;
}

/* Validates one score request object and starts (or joins, or answers from
 * cache) its computation. Never fails the whole request: errors land in it. */
void eps_http_start_item(req *r, int idx, json_t *o)
{
    eps_server *s = r->s;
    item *it = &r->items[idx];
    it->w.fn = item_resolved;
    it->w.ctx = r;
    it->w.index = idx;
    eps_error err;
    eps_error_clear(&err);
    if (!json_is_object(o)) return item_fail(it, 400, "invalid_input", "a score request must be a JSON object", "");
    json_t *id = json_object_get(o, "id");
    if (id && !json_is_null(id)) {
        if (!(json_is_string(id) && utf8_chars(json_string_value(id), json_string_length(id)) <= ID_MAX) &&
            !json_is_integer(id))
            return item_fail(it, 400, "invalid_input", "'id' must be a string (at most 256 characters) or an integer",
                             "id");
        it->id = json_incref(id);
    }
    if (eps_request_check_fields(o, eps_request_common_fields, &err) < 0)
        return item_fail(it, 400, "invalid_input", err.msg, err.field);
    eps_score_req q;
    if (eps_score_req_prepare(o, s->batches, s->n_batches, s->max_request_memory, &q, &err) < 0) {
        json_t *eo = eps_http_error_obj(eps_error_code_name(err.code), err.msg, err.field, err.line, err.column);
        it->val = json_dumps(eo, EPS_JSON_FLAGS);
        json_decref(eo);
        it->status = it->val ? eps_score_req_status(err.code) : 500;
        return;
    }
    sjob *sj = calloc(1, sizeof *sj);
    if (!sj) {
        eps_arch_free(&q.arch);
        return item_fail(it, 500, "out_of_memory", "out of memory", "");
    }
    sj->q = q;
    sj->s = s;
    const eps_named_batch *nb = q.nb;
    it->nb = nb;
    it->params = q.arch.params;
    it->macs = q.arch.macs;

    eps_cache_key key;
    if (eps_cache_key_for_arch(&key, &sj->q.arch, q.w, q.batch_hash, q.batch_size, eps_engine_name(q.engine)) < 0) {
        eps_arch_free(&sj->q.arch);
        free(sj);
        return item_fail(it, 500, "out_of_memory", "out of memory", "");
    }
    if (!r->is_batch && r->body) {
        char *idj = it->id ? json_dumps(it->id, JSON_ENCODE_ANY | EPS_JSON_FLAGS) : NULL;
        memo_put(s, r->body, r->len, &key, idj ? idj : "null", nb, sj->q.arch.params, sj->q.arch.macs);
        free(idj);
    }
    char *val = NULL;
    size_t vlen = 0;
    pthread_mutex_lock(&r->mu);
    r->pending++; /* before the waiter can be attached and resolved */
    pthread_mutex_unlock(&r->mu);
    eps_cache_result cr = eps_cache_lookup(s->cache, &key, &it->w, &val, &vlen, &sj->flight);
    eps_cache_key_free(&key);
    if (cr == EPS_CACHE_HIT || (cr == EPS_CACHE_LEAD && !sj->flight)) {
        pthread_mutex_lock(&r->mu);
        r->pending--;
        pthread_mutex_unlock(&r->mu);
        eps_arch_free(&sj->q.arch);
        free(sj);
        if (cr == EPS_CACHE_HIT) {
            it->val = val;
            it->status = 200;
            it->cached = 1;
        } else {
            item_fail(it, 500, "out_of_memory", "out of memory", "");
        }
        return;
    }
    if (cr == EPS_CACHE_JOINED) { /* an identical job is running: its result resolves us */
        eps_arch_free(&sj->q.arch);
        free(sj);
        return;
    }
    sj->job.work = score_work;
    sj->job.done = score_done;
    sj->job.ctx = sj;
    sj->job.deadline_ns = r->t0 + s->deadline_ms * 1000000LL;
    int rc = atomic_load(&s->draining) ? EPS_ECANCELED : eps_queue_submit(s->q, &sj->job);
    if (rc == 0) return;
    /* Refused: fail the flight, which resolves us and anyone who joined. */
    size_t n;
    char *e;
    int st;
    if (rc == EPS_ELIMIT) {
        eps_metrics_reject(EPS_REJ_QUEUE_FULL);
        st = 429;
        e = err_json("queue_full", "the compute queue is full; retry later", "", &n);
    } else {
        eps_metrics_reject(EPS_REJ_DRAINING);
        st = 503;
        e = err_json("draining", "the server is shutting down", "", &n);
    }
    eps_cache_finish(s->cache, sj->flight, st, e ? e : "{}", e ? n : 2);
    free(e);
    eps_arch_free(&sj->q.arch);
    free(sj);
}

/* Result object for a resolved item (200): the cached blob plus the
 * request's own fields. NULL on a bad blob. */
static json_t *item_result(req *r, item *it)
{
    json_t *blob = json_loads(it->val, 0, NULL);
    if (!json_is_object(blob)) {
        json_decref(blob);
        return NULL;
    }
    json_t *o = json_object();
    json_object_set(o, "id", it->id ? it->id : json_null());
    json_object_update(o, blob);
    json_decref(blob);
    json_object_set_new(o, "params", json_integer(it->params));
    json_object_set_new(o, "macs", json_integer(it->macs));
    json_object_set_new(o, "batch", json_string(it->nb->name));
    json_object_set_new(o, "cached", json_boolean(it->cached));
    json_object_set_new(o, "elapsed_ms", json_real(ms_since(r->t0)));
    return o;
}

/* A single result as text: {"id":ID, <blob fields>, "batch":NAME,
 * "cached":B, "elapsed_ms":T}. The blob is a compact JSON object written
 * by score_work and batch names are [A-Za-z0-9._-], so splicing is safe and
 * saves a parse/serialise round trip on every cache hit. */
enum MHD_Result eps_http_send_result(req *r, const char *blob, size_t blen, const char *id_json, const char *batch,
                                     int cached, long long params, long long macs)
{
    if (blen < 2 || blob[0] != '{' || blob[blen - 1] != '}')
        return eps_http_send_error(r, 500, "internal_error", "corrupt cached result", "");
    /* the request's own params/MACs replace the blob's (see item.params) */
    json_t *bo = json_loadb(blob, blen, 0, NULL);
    if (!json_is_object(bo)) {
        json_decref(bo);
        return eps_http_send_error(r, 500, "internal_error", "corrupt cached result", "");
    }
    json_object_set_new(bo, "params", json_integer(params));
    json_object_set_new(bo, "macs", json_integer(macs));
    char *own = eps_json_dumps_exact(bo);
    json_decref(bo);
    if (!own) return MHD_NO;
    blob = own;
    blen = strlen(own);
    size_t cap = blen + strlen(id_json) + strlen(batch) + 96;
    char *out = malloc(cap);
    if (!out) return MHD_NO;
    int n = snprintf(out, cap, "{\"id\":%s,%.*s%s\"batch\":\"%s\",\"cached\":%s,\"elapsed_ms\":%.3f}", id_json,
                     (int)(blen - 2), blob + 1, blen > 2 ? "," : "", batch, cached ? "true" : "false", ms_since(r->t0));
    free(own);
    if (n < 0 || (size_t)n >= cap) {
        free(out);
        return eps_http_send_error(r, 500, "internal_error", "result too large", "");
    }
    return eps_http_send_body(r, 200, "application/json", out, (size_t)n, NULL, NULL, NULL, NULL);
}

enum MHD_Result eps_http_respond_items(req *r)
{
    if (!r->is_batch) {
        item *it = &r->items[0];
        if (it->status == 200) {
            char *idj = it->id ? json_dumps(it->id, JSON_ENCODE_ANY | EPS_JSON_FLAGS) : NULL;
            enum MHD_Result ret =
                eps_http_send_result(r, it->val, strlen(it->val), idj ? idj : "null", it->nb->name, it->cached, it->params, it->macs);
            free(idj);
            return ret;
        }
        json_t *e = it->val ? json_loads(it->val, 0, NULL) : NULL;
        if (!e) return eps_http_send_error(r, 500, "internal_error", "lost error detail", "");
        const char *h = NULL, *v = NULL;
        if (it->status == 429 || it->status == 503) h = "Retry-After", v = "1";
        return eps_http_send_json(r, it->status, e, h, v, NULL, NULL);
    }
    json_t *arr = json_array();
    int ok = 0, failed = 0;
    for (int i = 0; i < r->n_items; i++) {
        item *it = &r->items[i];
        json_t *o = NULL;
        if (it->status == 200) o = item_result(r, it);
        if (o) {
            ok++;
        } else {
            failed++;
            json_t *e = it->val ? json_loads(it->val, 0, NULL) : NULL;
            if (!json_is_object(e)) {
                json_decref(e);
                e = eps_http_error_obj("internal_error", "lost error detail", NULL, 0, 0);
            }
            o = json_object();
            json_object_set(o, "id", it->id ? it->id : json_null());
            json_object_set_new(o, "status", json_integer(it->status == 200 ? 500 : it->status));
            json_object_update(o, e);
            json_decref(e);
        }
        json_array_append_new(arr, o);
    }
    json_t *top = json_object();
    json_object_set_new(top, "results", arr);
    json_object_set_new(top, "succeeded", json_integer(ok));
    json_object_set_new(top, "failed", json_integer(failed));
    json_object_set_new(top, "elapsed_ms", json_real(ms_since(r->t0)));
    return eps_http_send_json(r, 200, top, NULL, NULL, NULL, NULL);
}
