/* eps_cmd_sweep.c — `epsinas sweep`: score a whole list of architectures into
 * a CSV, in parallel, resumably, computing each canonical architecture once.
 *
 * Rows are parsed first (params, MACs and the canonical form of each), then
 * worker threads score the distinct canonical forms and append one complete
 * line per row with a single write(2): an interrupted sweep leaves no torn
 * line, and a re-run skips the indices already in the file. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "eps_cli_common.h"
#include "epsinas/spaces/nb101_enum.h"
#include "epsinas/spaces/nb201.h"
#include "epsinas/service/remote.h"
#include "epsinas/spaces/space.h"
#include "epsinas/core/util.h"

#define SWEEP_MAX_ROWS 5000000L
#define SWEEP_MAX_LINE (4L << 20)

typedef struct row {
    long index;
    char *text;       /* the architecture as written (CSV column 'arch') */
    char *canonical;  /* owned */
    long long params, macs;
    int unique;       /* index into the unique table */
    int done;         /* already in the output file */
} row;

typedef struct sweep {
    const char *space;
    long range_lo, range_hi; /* global indices [lo, hi) to score */
    long shard_k, shard_n;   /* index % shard_n == shard_k */
    row *rows;
    long nrows;
    int *uniq_first;  /* first row of each unique canonical form */
    long nuniq;
    long *order;      /* rows sorted by unique id */
    long *uniq_start; /* order[uniq_start[u] .. uniq_start[u+1]) are its rows */
    eps_batch batch;
    double weights[2];
    int have_weights;
    eps_run_opts ro;
    int fd;
    pthread_mutex_t mu;
    atomic_long next;
    atomic_long rows_done, nan_rows, computed;
    long rows_todo;
    int failed;
    char fail_msg[600];
    double t0;
    double enum_s;    /* time spent enumerating the space (--all nb101) */
    int tty;
    const char *dataset;   /* --dataset: set on every line that names none */
    eps_image_shape shape; /* the input every row's network takes (one batch for all) */
    int have_shape;
    eps_remote *remote;    /* --server: score through the service instead of locally */
    const char *batch_name; /* --server: the service's batch name, NULL = its default */
    long batch_size;        /* --server: sent when > 0 */
} sweep;

/* Set by the signal handler (main thread) and by workers on a failure, read
 * by the workers: an atomic, which is also async-signal-safe (lock-free). */
static atomic_int stop_flag;
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "stop_flag must be lock-free to be set in a signal handler");
static void on_signal(int sig)
{
    int saved = errno;
    (void)sig;
    atomic_store(&stop_flag, 1);
    errno = saved;
}


static void usage(FILE *f)
{
    fprintf(f,
            "usage: epsinas sweep --space SPACE (--all | --archs FILE) --out FILE.csv [options]\n\n"
            "Scores every architecture and writes CSV rows 'index,arch,epsilon,nan_reason,params,macs'.\n"
            "Resumable: indices already in --out are skipped; Ctrl-C stops cleanly (no torn lines).\n"
            "Each distinct canonical architecture is computed once.\n\n"
            "  --all               the whole space, in 'epsinas enumerate' order:\n"
            "                      nb201: 15,625 cells; index i has op (i / 5^e) %% 5 on edge e\n"
            "                      (edges in string order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2; ops none,\n"
            "                      skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)\n"
            "                      nb101: 423,624 cells (see epsinas enumerate --help); arch column =\n"
            "                      the canonical {\"matrix\":...,\"ops\":...}\n"
            "  --archs FILE        one architecture per line (index = line number from 0): an nb201\n"
            "                      string, or a JSON object (a request, or the space's own object,\n"
            "                      e.g. an nlp recipe, {\"op_indices\":[...]}, {\"nni\":{...}}), or a list\n"
            "                      of ints '[...]' or a Python tuple '(...)': nb201 NASLib op_indices,\n"
            "                      nb101 NASLib tuple (see epsinas score --help)\n"
            "  --out FILE          CSV to write or resume\n"
            "  --range A:B         only the global indices A <= i < B (B may be empty: to the end)\n"
            "  --shard K/N         only indices i with i %% N == K (0 <= K < N): N machines each run one\n"
            "                      K and 'epsinas merge' joins their CSVs; rows keep the global index.\n"
            "                      Modulo, not ranges, so each shard gets the same mix of cell sizes.\n"
            "  --shards N          as --shard K/N with K from $JOB_COMPLETION_INDEX (Kubernetes\n"
            "                      Indexed Job); when that is set, --shard or --shards is required\n"
            "  --threads N         worker threads (default: all CPUs)\n"
            "  --weights A,B       default: the space's\n"
            "  --engine fast|dense default fast\n"
            "  --server URL        score through a running service (one replica or a load balancer) instead\n"
            "                      of locally: POST /v1/score per distinct architecture; --batch then names\n"
            "                      one of the service's batches (GET /v1/batches; default: its default),\n"
            "                      429/502/503/504 and connection errors are retried with backoff\n"
            "  --concurrency N     requests in flight with --server (default 8)\n"
            "  --token T           bearer token for --server (env EPSINAS_API_TOKEN)\n"
            "  --attempts N        tries per architecture with --server (default 8)\n");
    eps_cli_dataset_help(f);
    fprintf(f, "                      (set on every line that names no dataset; every row must take one input shape)\n");
    eps_cli_batch_help(f);
}

static void free_rows(sweep *S)
{
    for (long i = 0; i < S->nrows; i++) {
        free(S->rows[i].text);
        free(S->rows[i].canonical);
    }
    free(S->rows);
    free(S->uniq_first);
    free(S->order);
    free(S->uniq_start);
}

/* Turns one input line into a request object. Caller owns the result. */
static json_t *line_request(const char *space, const char *line, eps_error *err)
{
    if ((line[0] == '[' || line[0] == '(') && (!strcmp(space, "nb201") || !strcmp(space, "nb101"))) {
        /* a NASLib list: nb201 op_indices, nb101 tuple (as NASLib prints them) */
        char *t = strdup(line);
        if (!t) {
            eps_error_set(err, EPS_ENOMEM, "", "out of memory");
            return NULL;
        }
        eps_cli_tuple_to_array(t);
        json_error_t je;
        json_t *v = json_loads(t, JSON_REJECT_DUPLICATES, &je);
        free(t);
        if (!v || !json_is_array(v)) {
            json_decref(v);
            eps_error_set(err, EPS_EINVAL, "", "invalid list at column %d: %s", je.column, v ? "not a list" : je.text);
            return NULL;
        }
        return json_pack("{s:s, s:o}", "space", space, !strcmp(space, "nb201") ? "op_indices" : "naslib", v);
    }
    if (line[0] == '{') {
        json_error_t je;
        json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &je);
        if (!j || !json_is_object(j)) {
            json_decref(j);
            eps_error_set(err, EPS_EINVAL, "", "invalid JSON at column %d: %s", je.column, j ? "not an object" : je.text);
            return NULL;
        }
        if (json_object_get(j, "space")) return j;
        json_t *req;
        if (!strcmp(space, "nlp") && !json_object_get(j, "recipe")) {
            req = json_pack("{s:s, s:o}", "space", space, "recipe", j);
        } else {
            req = j;
            json_object_set_new(req, "space", json_string(space));
        }
        return req;
    }
    json_t *s = json_string(line);
    if (!s) {
        eps_error_set(err, EPS_EINVAL, "", "line is not valid UTF-8");
        return NULL;
    }
    return json_pack("{s:s, s:o}", "space", space, "arch", s);
}

/* A line's request with the sweep's --dataset when the line names none. */
static json_t *row_request(const sweep *S, const char *line, eps_error *err)
{
    json_t *req = line_request(S->space, line, err);
    if (req && S->dataset && !json_object_get(req, "dataset"))
        json_object_set_new(req, "dataset", json_string(S->dataset));
    return req;
}

/* Whether the global index is in this run's --range and --shard. */
static int selected(const sweep *S, long index)
{
    return index >= S->range_lo && index < S->range_hi && index % S->shard_n == S->shard_k;
}

static int add_row(sweep *S, long *cap, long index, const char *text, eps_error *err)
{
    if (S->nrows >= SWEEP_MAX_ROWS) return eps_error_set(err, EPS_ELIMIT, "", "more than %ld architectures", SWEEP_MAX_ROWS);
    if (S->nrows == *cap) {
        long nc = *cap ? *cap * 2 : 1024;
        row *r = realloc(S->rows, sizeof *r * (size_t)nc);
        if (!r) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
        S->rows = r;
        *cap = nc;
    }
    row *r = &S->rows[S->nrows];
    memset(r, 0, sizeof *r);
    r->index = index;
    r->text = strdup(text);
    if (!r->text) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    S->nrows++;
    json_t *req = row_request(S, text, err);
    if (!req) return EPS_EINVAL;
    eps_arch a;
    int rc = eps_arch_from_json(req, &a, err);
    json_decref(req);
    if (rc) return rc;
    /* one batch serves every row: every network must take the same input */
    eps_image_shape sh;
    if (eps_arch_input_shape(&a, &sh)) {
        if (!S->have_shape) S->shape = sh, S->have_shape = 1;
        else if (sh.c != S->shape.c || sh.h != S->shape.h || sh.w != S->shape.w) {
            eps_arch_free(&a);
            return eps_error_set(err, EPS_EINVAL, "dataset",
                                 "its network takes %dx%dx%d images, the first row's %dx%dx%d: sweep one dataset "
                                 "(input shape) at a time",
                                 sh.c, sh.h, sh.w, S->shape.c, S->shape.h, S->shape.w);
        }
    }
    r->canonical = strdup(a.canonical);
    r->params = a.params;
    r->macs = a.macs;
    eps_arch_free(&a);
    return r->canonical ? 0 : eps_error_set(err, EPS_ENOMEM, "", "out of memory");
}

static int load_archs(sweep *S, const char *path, eps_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) return eps_error_set(err, EPS_EIO, "--archs", "cannot open '%.300s': %s", path, strerror(errno));
    long cap = 0, lineno = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        if (len > SWEEP_MAX_LINE) {
            rc = eps_error_set(err, EPS_ELIMIT, "--archs", "%.300s:%ld: line longer than %ld bytes", path, lineno + 1,
                               SWEEP_MAX_LINE);
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if ((long)strlen(line) != (long)len) {
            rc = eps_error_set(err, EPS_EINVAL, "--archs", "%.300s:%ld: line contains a NUL byte", path, lineno + 1);
            break;
        }
        if (len == 0) {
            rc = eps_error_set(err, EPS_EINVAL, "--archs", "%.300s:%ld: empty line (one architecture per line)", path,
                               lineno + 1);
            break;
        }
        rc = selected(S, lineno) ? add_row(S, &cap, lineno, line, err) : 0;
        if (rc) {
            char m[sizeof err->msg];
            snprintf(m, sizeof m, "%s", err->msg);
            eps_error_set(err, rc, "--archs", "%.200s:%ld: %s", path, lineno + 1, m);
            break;
        }
        lineno++;
    }
    free(line);
    fclose(f);
    if (!rc && lineno == 0) rc = eps_error_set(err, EPS_EINVAL, "--archs", "'%.300s' has no architectures", path);
    return rc;
}

static int all_nb201(sweep *S, eps_error *err)
{
    long cap = 0;
    for (int i = 0; i < EPS_NB201_COUNT; i++) {
        if (!selected(S, i)) continue;
        eps_nb201_cell c;
        char buf[EPS_NB201_STR_MAX];
        eps_nb201_from_index(i, &c);
        eps_nb201_format(&c, buf);
        int rc = add_row(S, &cap, i, buf, err);
        if (rc) return rc;
    }
    return 0;
}

/* The enumeration (eps_nb101_enumerate) with the canonical text as arch. */
static int all_nb101(sweep *S, eps_error *err)
{
    eps_nb101_cell *cells;
    long n, cap = 0;
    /* a --range that ends early needs only that prefix of the enumeration */
    long limit = S->range_hi < SWEEP_MAX_ROWS ? S->range_hi : 0;
    double t = eps_now_s();
    int rc = eps_nb101_enumerate(EPS_NB101_MAX_VERTICES, limit, &cells, &n, err);
    S->enum_s = eps_now_s() - t;
    for (long i = 0; !rc && i < n; i++) {
        if (!selected(S, i)) continue;
        char *canon = eps_nb101_canonical(&cells[i].spec);
        rc = canon ? add_row(S, &cap, i, canon, err) : eps_error_set(err, EPS_ENOMEM, "", "out of memory");
        free(canon);
    }
    free(cells);
    return rc;
}

/* "A:B" (either side may be empty) -> [lo, hi). */
static int parse_range(const char *s, long *lo, long *hi, eps_error *err)
{
    const char *colon = strchr(s, ':');
    char a[32] = "", b[32] = "";
    if (!colon || colon - s >= (long)sizeof a || strlen(colon + 1) >= sizeof b)
        return eps_error_set(err, EPS_EINVAL, "--range", "expected A:B (global indices A <= i < B), got '%.40s'", s);
    memcpy(a, s, (size_t)(colon - s));
    strcpy(b, colon + 1);
    *lo = 0;
    *hi = SWEEP_MAX_ROWS;
    if (a[0] && eps_cli_int("--range", a, 0, SWEEP_MAX_ROWS, lo, err)) return EPS_EINVAL;
    if (b[0] && eps_cli_int("--range", b, 0, SWEEP_MAX_ROWS, hi, err)) return EPS_EINVAL;
    if (*hi <= *lo) return eps_error_set(err, EPS_EINVAL, "--range", "range '%.40s' is empty (need A < B)", s);
    return 0;
}

/* "K/N" -> shard K of N; "N" alone (from --shards) takes K from
 * $JOB_COMPLETION_INDEX. */
static int parse_shard(const char *s, int from_env, long *k, long *n, eps_error *err)
{
    const char *flag = from_env ? "--shards" : "--shard";
    if (from_env) {
        if (eps_cli_int(flag, s, 1, 1000000, n, err)) return EPS_EINVAL;
        const char *e = getenv("JOB_COMPLETION_INDEX");
        if (!e || !*e)
            return eps_error_set(err, EPS_EINVAL, flag, "--shards needs $JOB_COMPLETION_INDEX (or use --shard K/N)");
        if (eps_cli_int("JOB_COMPLETION_INDEX", e, 0, *n - 1, k, err)) return EPS_EINVAL;
        return 0;
    }
    const char *slash = strchr(s, '/');
    char a[32];
    if (!slash || slash - s >= (long)sizeof a || slash == s)
        return eps_error_set(err, EPS_EINVAL, flag, "expected K/N (shard K of N, 0 <= K < N), got '%.40s'", s);
    memcpy(a, s, (size_t)(slash - s));
    a[slash - s] = 0;
    if (eps_cli_int(flag, slash + 1, 1, 1000000, n, err)) return EPS_EINVAL;
    if (eps_cli_int(flag, a, 0, *n - 1, k, err))
        return eps_error_set(err, EPS_EINVAL, flag, "shard index '%.20s' is not in 0..%ld", a, *n - 1);
    return 0;
}

static row *g_rows; /* for qsort */
static int cmp_canon(const void *a, const void *b)
{
    const row *x = &g_rows[*(const long *)a], *y = &g_rows[*(const long *)b];
    int c = strcmp(x->canonical, y->canonical);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

static int build_unique(sweep *S, eps_error *err)
{
    S->order = malloc(sizeof(long) * (size_t)S->nrows);
    S->uniq_start = malloc(sizeof(long) * (size_t)(S->nrows + 1));
    if (!S->order || !S->uniq_start) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    for (long i = 0; i < S->nrows; i++) S->order[i] = i;
    g_rows = S->rows;
    qsort(S->order, (size_t)S->nrows, sizeof(long), cmp_canon);
    S->nuniq = 0;
    for (long k = 0; k < S->nrows; k++) {
        if (k == 0 || strcmp(S->rows[S->order[k]].canonical, S->rows[S->order[k - 1]].canonical))
            S->uniq_start[S->nuniq++] = k;
        S->rows[S->order[k]].unique = (int)(S->nuniq - 1);
    }
    S->uniq_start[S->nuniq] = S->nrows;
    return 0;
}

/* Reads indices already present in the output; truncates a torn last line. */
static int resume(sweep *S, const char *path, int *fresh, eps_error *err)
{
    *fresh = 1;
    FILE *f = fopen(path, "r+");
    if (!f) {
        if (errno == ENOENT) return 0;
        return eps_error_set(err, EPS_EIO, "--out", "cannot open '%.300s': %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    long good_end = 0, lineno = 0;
    char *seen = calloc((size_t)S->nrows + 1, 1);
    long maxidx = 0;
    for (long i = 0; i < S->nrows; i++)
        if (S->rows[i].index > maxidx) maxidx = S->rows[i].index;
    char *have = calloc((size_t)maxidx + 1, 1);
    if (!seen || !have) {
        fclose(f);
        free(seen);
        free(have);
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    }
    while ((len = getline(&line, &lcap, f)) >= 0) {
        if (line[len - 1] != '\n') break; /* torn line from an interrupted run */
        lineno++;
        if (lineno == 1) {
            if (strncmp(line, "index,arch,epsilon,nan_reason,params,macs", 41)) {
                fclose(f);
                free(line);
                free(seen);
                free(have);
                return eps_error_set(err, EPS_EINVAL, "--out",
                                     "'%.300s' exists but is not an epsinas sweep CSV (header differs)", path);
            }
        } else {
            char *end;
            long idx = strtol(line, &end, 10);
            if (end != line && *end == ',' && idx >= 0 && idx <= maxidx) have[idx] = 1;
        }
        good_end += len;
    }
    free(line);
    if (lineno > 0) *fresh = 0;
    if (ftruncate(fileno(f), good_end) != 0) {
        fclose(f);
        free(seen);
        free(have);
        return eps_error_set(err, EPS_EIO, "--out", "cannot truncate '%.300s': %s", path, strerror(errno));
    }
    fclose(f);
    for (long i = 0; i < S->nrows; i++)
        if (have[S->rows[i].index]) S->rows[i].done = 1;
    free(seen);
    free(have);
    return 0;
}

static void csv_field(char *dst, size_t cap, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        snprintf(dst, cap, "%s", s);
        return;
    }
    size_t k = 0;
    if (k < cap - 1) dst[k++] = '"';
    for (; *s && k + 3 < cap; s++) {
        if (*s == '"') dst[k++] = '"';
        dst[k++] = *s;
    }
    dst[k++] = '"';
    dst[k] = 0;
}

static void progress(sweep *S, int final)
{
    double el = eps_now_s() - S->t0;
    long done = atomic_load(&S->rows_done);
    double rate = el > 0 ? done / el : 0;
    double eta = rate > 0 ? (S->rows_todo - done) / rate : 0;
    int width = 30, fill = S->rows_todo ? (int)(width * done / S->rows_todo) : width;
    fprintf(stderr, "\r[%.*s%*s] %ld/%ld  %.0f/s  ETA %.0fs  ", fill, "##############################", width - fill, "",
            done, S->rows_todo, rate, eta);
    if (final) fputc('\n', stderr);
}

/* One architecture through the service: the line's request plus the
 * sweep's shared settings. An interrupted retry loop is not a failure. */
static int remote_score(sweep *S, eps_remote_conn *conn, json_t *req, eps_score *sc, eps_error *err)
{
    if (S->batch_name) json_object_set_new(req, "batch", json_string(S->batch_name));
    if (S->batch_size > 0) json_object_set_new(req, "batch_size", json_integer(S->batch_size));
    if (S->have_weights) json_object_set_new(req, "weights", json_pack("[f,f]", S->weights[0], S->weights[1]));
    if (S->ro.engine != EPS_ENGINE_FAST) json_object_set_new(req, "engine", json_string(eps_engine_name(S->ro.engine)));
    int rc = eps_remote_score(conn, req, &stop_flag, sc, err);
    if (rc == EPS_ECANCELED) stop_flag = 1;
    return rc;
}

static void *worker(void *arg)
{
    sweep *S = arg;
    size_t bufcap = 1 << 16;
    char *buf = malloc(bufcap), *field = malloc(SWEEP_MAX_LINE * 2 + 8);
    eps_remote_conn *conn = NULL;
    if (!buf || !field) goto out;
    if (S->remote) {
        eps_error cerr = {0};
        if (eps_remote_conn_new(S->remote, &conn, &cerr)) {
            pthread_mutex_lock(&S->mu);
            if (!S->failed) S->failed = cerr.code, snprintf(S->fail_msg, sizeof S->fail_msg, "%s", cerr.msg);
            pthread_mutex_unlock(&S->mu);
            stop_flag = 1;
            goto out;
        }
    }
    for (;;) {
        if (stop_flag) break;
        long u = atomic_fetch_add(&S->next, 1);
        if (u >= S->nuniq) break;
        long a0 = S->uniq_start[u], a1 = S->uniq_start[u + 1];
        int pending = 0;
        for (long k = a0; k < a1; k++) pending |= !S->rows[S->order[k]].done;
        if (!pending) continue;
        const row *first = &S->rows[S->order[a0]];
        eps_error err = {0};
        json_t *req = row_request(S, first->text, &err);
        eps_arch a;
        eps_score sc;
        int rc;
        if (conn) {
            rc = req ? remote_score(S, conn, req, &sc, &err) : EPS_EINVAL;
            json_decref(req);
        } else {
            rc = req ? eps_arch_from_json(req, &a, &err) : EPS_EINVAL;
            json_decref(req);
        }
        if (rc == 0 && !conn) {
            rc = eps_arch_score(&a, &S->batch, S->have_weights ? S->weights : NULL, &S->ro, &sc, &err);
            eps_arch_free(&a);
        }
        if (rc == EPS_ECANCELED && stop_flag) break; /* Ctrl-C during a retry wait */
        if (rc) {
            pthread_mutex_lock(&S->mu);
            if (!S->failed) {
                S->failed = rc;
                snprintf(S->fail_msg, sizeof S->fail_msg, "index %ld: %s", first->index, err.msg);
            }
            pthread_mutex_unlock(&S->mu);
            stop_flag = 1;
            break;
        }
        atomic_fetch_add(&S->computed, 1);
        for (long k = a0; k < a1; k++) {
            const row *r = &S->rows[S->order[k]];
            if (r->done) continue;
            csv_field(field, SWEEP_MAX_LINE * 2 + 8, r->text);
            size_t need = strlen(field) + 256;
            if (need > bufcap) {
                char *nb = realloc(buf, need);
                if (!nb) goto out;
                buf = nb;
                bufcap = need;
            }
            int n;
            if (isnan(sc.epsilon)) n = snprintf(buf, bufcap, "%ld,%s,nan,%s,%lld,%lld\n", r->index, field, sc.nan_reason,
                                                 r->params, r->macs);
            else n = snprintf(buf, bufcap, "%ld,%s,%.17g,,%lld,%lld\n", r->index, field, sc.epsilon, r->params, r->macs);
            pthread_mutex_lock(&S->mu);
            ssize_t wr = write(S->fd, buf, (size_t)n);
            pthread_mutex_unlock(&S->mu);
            if (wr != n) {
                pthread_mutex_lock(&S->mu);
                if (!S->failed) {
                    S->failed = EPS_EIO;
                    snprintf(S->fail_msg, sizeof S->fail_msg, "write failed: %s", strerror(errno));
                }
                pthread_mutex_unlock(&S->mu);
                stop_flag = 1;
                goto out;
            }
            if (isnan(sc.epsilon)) atomic_fetch_add(&S->nan_rows, 1);
            atomic_fetch_add(&S->rows_done, 1);
        }
    }
out:
    free(buf);
    free(field);
    eps_remote_conn_free(conn);
    eps_engine_fast_release_thread_cache();
    return NULL;
}

/* What the command line asks for beyond the sweep itself. */
typedef struct {
    const char *archs, *out, *batch_spec, *shard, *shards;
    int all, bs_given;
    long threads, bs, concurrency, attempts;
    eps_remote_opts ropt;
} sweep_args;

/* The options into S and A; returns -1 when the sweep should run, else the
 * exit code. */
static int sweep_options(int argc, char **argv, sweep *S, sweep_args *A, eps_error *err)
{
    const char *threads_s = NULL, *bs_s = NULL, *conc_s = NULL, *attempts_s = NULL, *weights_s = NULL;
    const char *engine_s = NULL, *range_s = NULL;
    const eps_cli_opt specs[] = {
        {"--space", 1, &S->space, NULL},         {"--all", 0, NULL, &A->all},
        {"--archs", 1, &A->archs, NULL},         {"--out", 1, &A->out, NULL},
        {"--threads", 1, &threads_s, NULL},      {"--batch", 1, &A->batch_spec, NULL},
        {"--batch-size", 1, &bs_s, NULL},        {"--weights", 1, &weights_s, NULL},
        {"--engine", 1, &engine_s, NULL},        {"--server", 1, &A->ropt.url, NULL},
        {"--concurrency", 1, &conc_s, NULL},     {"--token", 1, &A->ropt.token, NULL},
        {"--attempts", 1, &attempts_s, NULL},    {"--range", 1, &range_s, NULL},
        {"--shard", 1, &A->shard, NULL},         {"--shards", 1, &A->shards, NULL},
        {"--dataset", 1, &S->dataset, NULL},     {NULL, 0, NULL, NULL}};
    int rc = eps_cli_parse_opts("sweep", argc, argv, specs, usage, NULL);
    if (rc >= 0) return rc;
    A->bs_given = bs_s != NULL;
    S->have_weights = weights_s != NULL;
    if (eps_cli_int("--threads", threads_s, 1, 256, &A->threads, err) ||
        eps_cli_int("--batch-size", bs_s, 2, EPS_BATCH_MAX, &A->bs, err) ||
        eps_cli_int("--concurrency", conc_s, 1, 1024, &A->concurrency, err) ||
        eps_cli_int("--attempts", attempts_s, 1, 100, &A->attempts, err) ||
        eps_cli_weights(weights_s, S->weights, err) || eps_cli_engine(engine_s, &S->ro.engine, err) ||
        (range_s && parse_range(range_s, &S->range_lo, &S->range_hi, err)))
        return eps_cli_fail("sweep", err);
    return -1;
}

int eps_cmd_sweep(int argc, char **argv)
{
    sweep S;
    memset(&S, 0, sizeof S);
    S.range_hi = SWEEP_MAX_ROWS;
    S.shard_n = 1;
    S.ro.engine = EPS_ENGINE_FAST;
    S.ro.stop_early = 1; /* only epsilon is written */
    sweep_args A = {.threads = eps_cpu_count(256), .bs = 256, .concurrency = 8, .attempts = 8,
                    .ropt = {.token = getenv("EPSINAS_API_TOKEN")}};
    eps_error err = {0};
    int orc = sweep_options(argc, argv, &S, &A, &err);
    if (orc >= 0) return orc;
    if (!S.space) eps_error_set(&err, EPS_EINVAL, "--space", "missing --space (nb201, nb101, graph, nlp)");
    else if (!eps_space_find(S.space)) eps_error_set(&err, EPS_EINVAL, "--space", "unknown space '%.40s'", S.space);
    else if (A.all == !!A.archs) eps_error_set(&err, EPS_EINVAL, "--archs", "give exactly one of --all or --archs FILE");
    else if (A.all && strcmp(S.space, "nb201") && strcmp(S.space, "nb101"))
        eps_error_set(&err, EPS_EINVAL, "--all", "--all enumerates nb201 or nb101 only");
    else if (A.shard && A.shards) eps_error_set(&err, EPS_EINVAL, "--shard", "give --shard K/N or --shards N, not both");
    else if (!A.shard && !A.shards && getenv("JOB_COMPLETION_INDEX") && *getenv("JOB_COMPLETION_INDEX"))
        eps_error_set(&err, EPS_EINVAL, "--shards",
                      "$JOB_COMPLETION_INDEX is set (an Indexed Job): give --shards N so this pod sweeps its shard only");
    else if ((A.shard || A.shards) && parse_shard(A.shard ? A.shard : A.shards, !A.shard, &S.shard_k, &S.shard_n, &err)) {}
    else if (!A.out) eps_error_set(&err, EPS_EINVAL, "--out", "missing --out FILE.csv");
    else if (S.dataset) {
        json_t *probe = json_pack("{s:s}", "space", S.space); /* the same checks as score --dataset */
        if (probe) eps_cli_request_dataset(probe, S.dataset, &err);
        json_decref(probe);
    }
    if (err.code) return eps_cli_fail("sweep", &err);

    double tprep = eps_now_s();
    int rc = !A.all ? load_archs(&S, A.archs, &err) : !strcmp(S.space, "nb101") ? all_nb101(&S, &err) : all_nb201(&S, &err);
    if (!rc && S.nrows == 0) rc = eps_error_set(&err, EPS_EINVAL, "--range", "no architecture in the selected range/shard");
    if (!rc) rc = build_unique(&S, &err);
    int fresh = 1;
    if (!rc) rc = resume(&S, A.out, &fresh, &err);
    const eps_space *sp = eps_space_find(S.space);
    if (!A.batch_spec && !A.ropt.url) A.batch_spec = eps_space_default_batch(sp, S.dataset);
    if (A.ropt.url) {
        /* the service holds the batch: only its name and size travel */
        S.batch_name = A.batch_spec;
        S.batch_size = A.bs_given ? A.bs : 0;
        A.threads = A.concurrency;
        A.ropt.max_attempts = (int)A.attempts;
        if (!rc) rc = eps_remote_new(&A.ropt, &S.remote, &err);
    } else if (!rc) {
        rc = eps_batch_load_shape(A.batch_spec, (int)A.bs, S.have_shape ? S.shape : EPS_IMAGE_SHAPE_CIFAR, &S.batch, &err);
    }
    if (rc) {
        free_rows(&S);
        eps_batch_free(&S.batch);
        eps_remote_free(S.remote);
        return eps_cli_fail("sweep", &err);
    }
    for (long i = 0; i < S.nrows; i++) S.rows_todo += !S.rows[i].done;
    /* the bench reads this line to split preparation from scoring */
    fprintf(stderr, "sweep: %ld rows ready in %.3f s (%.3f s enumerating the space)\n", S.nrows, eps_now_s() - tprep, S.enum_s);
    if (S.ro.engine == EPS_ENGINE_FAST) eps_engine_blas_quiet();
    S.fd = open(A.out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (S.fd < 0) {
        eps_error_set(&err, EPS_EIO, "--out", "cannot open '%.300s': %s", A.out, strerror(errno));
        free_rows(&S);
        eps_batch_free(&S.batch);
        eps_remote_free(S.remote);
        return eps_cli_fail("sweep", &err);
    }
    if (fresh) {
        static const char hdr[] = "index,arch,epsilon,nan_reason,params,macs\n";
        if (write(S.fd, hdr, sizeof hdr - 1) != (ssize_t)(sizeof hdr - 1)) {
            eps_error_set(&err, EPS_EIO, "--out", "cannot write '%.300s'", A.out);
            close(S.fd);
            free_rows(&S);
            eps_batch_free(&S.batch);
            eps_remote_free(S.remote);
            return eps_cli_fail("sweep", &err);
        }
    }
    pthread_mutex_init(&S.mu, NULL);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    S.tty = isatty(2);
    S.t0 = eps_now_s();
    pthread_t *th = calloc((size_t)A.threads, sizeof *th);
    long started = 0;
    for (long i = 0; th && i < A.threads; i++, started++)
        if (pthread_create(&th[i], NULL, worker, &S)) break;
    if (S.tty) {
        while (atomic_load(&S.rows_done) < S.rows_todo && !stop_flag) {
            progress(&S, 0);
            struct timespec ts = {0, 200000000};
            nanosleep(&ts, NULL);
        }
    }
    for (long i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    if (S.tty) progress(&S, 1);
    close(S.fd);
    double el = eps_now_s() - S.t0;
    long skipped = S.nrows - S.rows_todo;
    fprintf(stderr, "sweep: %ld scored (%ld NaN), %ld computations for %ld distinct architectures, %ld already done, %.1f s%s\n",
            atomic_load(&S.rows_done), atomic_load(&S.nan_rows), atomic_load(&S.computed), S.nuniq, skipped, el,
            stop_flag && !S.failed ? " (interrupted: re-run to resume)" : "");
    if (S.remote) {
        eps_remote_stats st;
        eps_remote_get_stats(S.remote, &st);
        fprintf(stderr, "sweep: %ld requests to the service, %ld of them retries\n", st.requests, st.retries);
    }
    int code = 0;
    if (S.failed) {
        eps_error_set(&err, S.failed, "", "%s", S.fail_msg);
        code = eps_cli_fail("sweep", &err);
    } else if (stop_flag) {
        code = eps_cli_exit_code(EPS_ECANCELED); /* interrupted: 130 */
    }
    pthread_mutex_destroy(&S.mu);
    free_rows(&S);
    eps_batch_free(&S.batch);
    eps_remote_free(S.remote);
    return code;
}
