/* eps_config.c — the option table of `epsinas serve` and its parser: flags,
 * EPSINAS_* environment variables, defaults, bounds and --help all come from
 * the one table below, so they cannot drift apart. */
#include "epsinas/service/config.h"
#include "epsinas/core/util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OFF(f) offsetof(eps_config, f)
#define KIB 1024LL
#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)

static const eps_config_opt options[] = {
    {"--listen", "EPSINAS_LISTEN", EPS_OPT_STR, "127.0.0.1", 1, 255, NULL,
     "address to bind (numeric IPv4 or IPv6; 0.0.0.0 or :: = every interface, as the container image sets)",
     OFF(listen)},
    {"--port", "EPSINAS_PORT", EPS_OPT_INT, "8080", 0, 65535, NULL,
     "TCP port; 0 picks a free one (the bound port is printed on stdout)", OFF(port)},
    {"--workers", "EPSINAS_WORKERS", EPS_OPT_INT, NULL, 1, 256, NULL,
     "compute threads (default: number of CPUs)", OFF(workers)},
    {"--http-threads", "EPSINAS_HTTP_THREADS", EPS_OPT_INT, "2", 1, 64, NULL,
     "HTTP polling threads (parse, validate, cache hits)", OFF(http_threads)},
    {"--max-connections", "EPSINAS_MAX_CONNECTIONS", EPS_OPT_INT, "1024", 1, 65536, NULL,
     "open client connections at most; more are refused at accept", OFF(max_connections)},
    {"--max-connections-per-ip", "EPSINAS_MAX_CONNECTIONS_PER_IP", EPS_OPT_INT, "128", 0, 65536, NULL,
     "open connections from one client address at most (0 = no limit; behind a proxy, its own count)",
     OFF(max_connections_per_ip)},
    {"--idle-timeout-s", "EPSINAS_IDLE_TIMEOUT_S", EPS_OPT_INT, "60", 1, 3600, NULL,
     "a connection that sends or reads nothing for this long is closed", OFF(idle_timeout_s)},
    {"--request-timeout-ms", "EPSINAS_REQUEST_TIMEOUT_MS", EPS_OPT_INT, "30000", 100, 3600000, NULL,
     "most time to receive a whole request (head and body, or an idle keep-alive wait); then closed",
     OFF(request_timeout_ms)},
    {"--queue-capacity", "EPSINAS_QUEUE_CAPACITY", EPS_OPT_INT, "64", 1, 1000000, NULL,
     "compute jobs queued + running; when full, requests get 429", OFF(queue_capacity)},
    {"--cache-entries", "EPSINAS_CACHE_ENTRIES", EPS_OPT_INT, "100000", 0, 100000000, NULL,
     "results kept in the LRU cache (0 = no cache)", OFF(cache_entries)},
    {"--cache-bytes", "EPSINAS_CACHE_BYTES", EPS_OPT_SIZE, "256M", 0, 64 * GIB, NULL,
     "memory the LRU cache may use (K/M/G suffixes)", OFF(cache_bytes)},
    {"--body-limit", "EPSINAS_BODY_LIMIT", EPS_OPT_SIZE, "1M", 1 * KIB, 256 * MIB, NULL,
     "largest request body; larger ones get 413", OFF(body_limit)},
    {"--max-request-memory", "EPSINAS_MAX_REQUEST_MEMORY", EPS_OPT_SIZE, "4G", 0, 1024 * GIB, NULL,
     "estimated peak memory of one computation (engine, network, batch size); more gets 413 (0 = no limit)",
     OFF(max_request_memory)},
    {"--max-batch-items", "EPSINAS_MAX_BATCH_ITEMS", EPS_OPT_INT, "256", 1, 100000, NULL,
     "items per POST /v1/score/batch", OFF(max_batch_items)},
    {"--json-depth", "EPSINAS_JSON_DEPTH", EPS_OPT_INT, "32", 2, 1000, NULL,
     "deepest nesting of arrays/objects accepted in a request", OFF(json_depth)},
    {"--deadline-ms", "EPSINAS_DEADLINE_MS", EPS_OPT_INT, "30000", 1, 3600000, NULL,
     "per-request deadline; a job past it is not run or is cancelled (504)", OFF(deadline_ms)},
    {"--shutdown-timeout-ms", "EPSINAS_SHUTDOWN_TIMEOUT_MS", EPS_OPT_INT, "10000", 0, 3600000, NULL,
     "on SIGTERM/SIGINT, how long in-flight requests may drain", OFF(shutdown_timeout_ms)},
    {"--cors-origins", "EPSINAS_CORS_ORIGINS", EPS_OPT_STR, "", 0, 4095, NULL,
     "comma list of allowed browser origins, '*' = any, empty = CORS off", OFF(cors_origins)},
    {"--api-token", "EPSINAS_API_TOKEN", EPS_OPT_STR, "", 0, 255, NULL,
     "require 'Authorization: Bearer TOKEN' on /v1/* (health, /v2, /metrics exempt); empty = off",
     OFF(api_token)},
    {"--batch", "EPSINAS_BATCH", EPS_OPT_LIST, "", 1, 1023, NULL,
     "NAME=SPEC, repeatable (env: ';'-separated); built in unless given: every space's default batch under "
     "its spec as name (GET /v1/spaces), and the aliases default=ramp, tokens=tokens:1; naming default or tokens "
     "yourself makes it what image / token spaces use when a request names no batch",
     OFF(batches)},
    {"--batch-size", "EPSINAS_BATCH_SIZE", EPS_OPT_INT, "256", 1, 4096, NULL,
     "images (or token streams) loaded per batch", OFF(batch_size)},
    {"--log-format", "EPSINAS_LOG_FORMAT", EPS_OPT_ENUM, "text", 0, 0, "text|json",
     "access/event log format on stderr", OFF(log_format)},
    {"--log-level", "EPSINAS_LOG_LEVEL", EPS_OPT_ENUM, "info", 0, 0, "error|warn|info|debug",
     "least severe level logged (access lines are info)", OFF(log_level)},
    {"--redis-url", "EPSINAS_REDIS_URL", EPS_OPT_STR, "", 0, 1023, NULL,
     "shared cache tier behind the LRU, redis://[[user]:password@]host[:port][/db]; empty = off", OFF(redis_url)},
    {"--redis-ttl-s", "EPSINAS_REDIS_TTL_S", EPS_OPT_INT, "86400", 0, 315360000, NULL,
     "expiry of results written to Redis, in seconds (0 = never)", OFF(redis_ttl_s)},
    {"--redis-timeout-ms", "EPSINAS_REDIS_TIMEOUT_MS", EPS_OPT_INT, "50", 1, 60000, NULL,
     "Redis connect and command timeout; slower means a miss / a dropped write", OFF(redis_timeout_ms)},
    /* sweep jobs (jobs.h) */
    {"--data-dir", "EPSINAS_DATA_DIR", EPS_OPT_STR, "", 0, 4095, NULL,
     "directory of the job database (SQLite, WAL); empty = jobs kept in memory only, lost on exit",
     OFF(data_dir)},
    {"--max-jobs", "EPSINAS_MAX_JOBS", EPS_OPT_INT, "16", 1, 100000, NULL,
     "sweep jobs queued + running at once; more get 429", OFF(max_jobs)},
    {"--max-job-items", "EPSINAS_MAX_JOB_ITEMS", EPS_OPT_INT, "1000000", 1, 100000000, NULL,
     "items (architectures) per sweep job; more get 413", OFF(max_job_items)},
    {"--job-retention-s", "EPSINAS_JOB_RETENTION_S", EPS_OPT_INT, "604800", 1, 315360000, NULL,
     "finished jobs and their rows are deleted this long after they end", OFF(job_retention_s)},
    {"--job-window", "EPSINAS_JOB_WINDOW", EPS_OPT_INT, "0", 0, 100000, NULL,
     "job items in flight on the compute queue at once (0 = --workers); interactive requests wait behind at most these",
     OFF(job_window)},
    {"--replica-tag", "EPSINAS_REPLICA_TAG", EPS_OPT_STR, "", 0, 16, NULL,
     "prefix of job ids ([a-z0-9], e.g. r1): a load balancer routes /v1/jobs/TAG-* to this replica", OFF(replica_tag)},
    {NULL, NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

const eps_config_opt *eps_config_options(void) { return options; }

int eps_config_ncpu(void)
{
    return eps_cpu_count(256);
}

static long long *int_field(eps_config *c, const eps_config_opt *o) { return (long long *)((char *)c + o->offset); }
static char **str_field(eps_config *c, const eps_config_opt *o) { return (char **)((char *)c + o->offset); }

static int parse_int(const char *s, long long *out)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

static int parse_size(const char *s, long long *out)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0) return -1;
    long long mul = 1;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': mul = KIB; break;
        case 'm': case 'M': mul = MIB; break;
        case 'g': case 'G': mul = GIB; break;
        default: return -1;
        }
        end++;
        if (*end == 'i' && end[1] == 'B') end += 2;
        else if (*end == 'B') end++;
        if (*end) return -1;
    }
    if (v > LLONG_MAX / mul) return -1;
    *out = v * mul;
    return 0;
}

static void fmt_size(long long v, char *buf, size_t n)
{
    if (v && v % GIB == 0) snprintf(buf, n, "%lldG", v / GIB);
    else if (v && v % MIB == 0) snprintf(buf, n, "%lldM", v / MIB);
    else if (v && v % KIB == 0) snprintf(buf, n, "%lldK", v / KIB);
    else snprintf(buf, n, "%lld", v);
}

static int enum_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int add_list_item(eps_config *c, const eps_config_opt *o, const char *src, const char *v, eps_error *err)
{
    if (c->n_batches >= EPS_CONFIG_MAX_BATCHES)
        return eps_error_set(err, EPS_EINVAL, src, "%s: at most %d batches", src, EPS_CONFIG_MAX_BATCHES);
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1])
        return eps_error_set(err, EPS_EINVAL, src, "%s: '%.80s' is not NAME=SPEC (e.g. default=ramp)", src, v);
    if ((long long)strlen(v) > o->max)
        return eps_error_set(err, EPS_EINVAL, src, "%s: value longer than %lld bytes", src, o->max);
    for (const char *p = v; p < eq; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.') || p - v >= 64)
            return eps_error_set(err, EPS_EINVAL, src,
                                 "%s: batch name '%.*s' must be 1-64 characters of [A-Za-z0-9._-]", src,
                                 (int)(eq - v > 64 ? 64 : eq - v), v);
    for (int i = 0; i < c->n_batches; i++) {
        const char *oeq = strchr(c->batches[i], '=');
        if ((size_t)(oeq - c->batches[i]) == (size_t)(eq - v) && !strncmp(c->batches[i], v, (size_t)(eq - v)))
            return eps_error_set(err, EPS_EINVAL, src, "%s: batch '%.*s' given twice", src, (int)(eq - v), v);
    }
    char *dup = strdup(v);
    if (!dup) return eps_error_set(err, EPS_ENOMEM, src, "out of memory");
    c->batches[c->n_batches++] = dup;
    return 0;
}

static void clear_list(eps_config *c)
{
    for (int i = 0; i < c->n_batches; i++) free(c->batches[i]);
    c->n_batches = 0;
}

/* Sets one option from text; `src` is the flag or env var name, for errors. */
static int set_opt(eps_config *c, const eps_config_opt *o, const char *src, const char *v, eps_error *err)
{
    long long x;
    char lo[32], hi[32];
    switch (o->type) {
    case EPS_OPT_INT:
        if (parse_int(v, &x))
            return eps_error_set(err, EPS_EINVAL, src, "%s: '%.40s' is not an integer (allowed %lld..%lld)", src, v,
                                 o->min, o->max);
        if (x < o->min || x > o->max)
            return eps_error_set(err, EPS_EINVAL, src, "%s: %lld is out of range (allowed %lld..%lld)", src, x,
                                 o->min, o->max);
        *int_field(c, o) = x;
        return 0;
    case EPS_OPT_SIZE:
        fmt_size(o->min, lo, sizeof lo);
        fmt_size(o->max, hi, sizeof hi);
        if (parse_size(v, &x))
            return eps_error_set(err, EPS_EINVAL, src,
                                 "%s: '%.40s' is not a size (bytes, or a number with K/M/G; allowed %s..%s)", src, v,
                                 lo, hi);
        if (x < o->min || x > o->max)
            return eps_error_set(err, EPS_EINVAL, src, "%s: %s is out of range (allowed %s..%s)", src, v, lo, hi);
        *int_field(c, o) = x;
        return 0;
    case EPS_OPT_STR:
        if ((long long)strlen(v) > o->max || (long long)strlen(v) < o->min)
            return eps_error_set(err, EPS_EINVAL, src, "%s: length must be %lld..%lld bytes", src, o->min, o->max);
        break;
    case EPS_OPT_ENUM:
        if (!enum_ok(o->choices, v))
            return eps_error_set(err, EPS_EINVAL, src, "%s: '%.40s' is not one of %s", src, v, o->choices);
        break;
    case EPS_OPT_LIST:
        return add_list_item(c, o, src, v, err);
    }
    char *dup = strdup(v);
    if (!dup) return eps_error_set(err, EPS_ENOMEM, src, "out of memory");
    char **f = str_field(c, o);
    free(*f);
    *f = dup;
    return 0;
}

static int set_defaults(eps_config *c, eps_error *err)
{
    for (const eps_config_opt *o = options; o->flag; o++) {
        if (o->type == EPS_OPT_LIST) continue;
        if (!o->def) {
            *int_field(c, o) = eps_config_ncpu(); /* --workers */
            continue;
        }
        int rc = set_opt(c, o, o->flag, o->def, err);
        if (rc) return rc;
    }
    return 0;
}

static int flag_given(const eps_config_opt *o, int argc, char **argv)
{
    size_t n = strlen(o->flag);
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], o->flag, n) && (argv[i][n] == 0 || argv[i][n] == '=')) return 1;
    return 0;
}

/* Options also given as flags are skipped: the flag wins, so a bad value
 * in the environment does not matter. */
static int from_env(eps_config *c, int argc, char **argv, eps_error *err)
{
    for (const eps_config_opt *o = options; o->flag; o++) {
        const char *v = getenv(o->env);
        if (!v || flag_given(o, argc, argv)) continue;
        if (o->type != EPS_OPT_LIST) {
            int rc = set_opt(c, o, o->env, v, err);
            if (rc) return rc;
            continue;
        }
        char *copy = strdup(v);
        if (!copy) return eps_error_set(err, EPS_ENOMEM, o->env, "out of memory");
        char *save = NULL;
        int rc = 0;
        for (char *t = strtok_r(copy, ";", &save); t && !rc; t = strtok_r(NULL, ";", &save))
            if (*t) rc = set_opt(c, o, o->env, t, err);
        free(copy);
        if (rc) return rc;
    }
    return 0;
}

int eps_config_parse(eps_config *c, int argc, char **argv, eps_error *err)
{
    memset(c, 0, sizeof *c);
    int rc = set_defaults(c, err);
    if (rc) return rc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
        if (!strcmp(argv[i], "--help-markdown")) return 2;
    }
    rc = from_env(c, argc, argv, err);
    if (rc) return rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        size_t nlen = eq && !strncmp(a, "--", 2) ? (size_t)(eq - a) : strlen(a);
        const eps_config_opt *o = options;
        for (; o->flag; o++)
            if (strlen(o->flag) == nlen && !strncmp(o->flag, a, nlen)) break;
        if (!o->flag)
            return eps_error_set(err, EPS_EINVAL, a, "unknown option '%.60s' (see epsinas serve --help)", a);
        const char *v;
        if (eq && nlen < strlen(a)) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else return eps_error_set(err, EPS_EINVAL, o->flag, "%s: missing value", o->flag);
        rc = set_opt(c, o, o->flag, v, err);
        if (rc) return rc;
    }
    return 0;
}

void eps_config_free(eps_config *c)
{
    if (!c) return;
    for (const eps_config_opt *o = options; o->flag; o++)
        if (o->type == EPS_OPT_STR || o->type == EPS_OPT_ENUM) {
            free(*str_field(c, o));
            *str_field(c, o) = NULL;
        }
    clear_list(c);
}

static void row_texts(const eps_config_opt *o, char *def, size_t dn, char *range, size_t rn)
{
    char lo[24], hi[24];
    if (!o->def) snprintf(def, dn, "%d", eps_config_ncpu());
    else snprintf(def, dn, "%s", *o->def ? o->def : "\"\"");
    switch (o->type) {
    case EPS_OPT_INT: snprintf(range, rn, "%lld..%lld", o->min, o->max); break;
    case EPS_OPT_SIZE:
        fmt_size(o->min, lo, sizeof lo);
        fmt_size(o->max, hi, sizeof hi);
        snprintf(range, rn, "%s..%s", lo, hi);
        break;
    case EPS_OPT_ENUM: snprintf(range, rn, "%s", o->choices); break;
    case EPS_OPT_STR: snprintf(range, rn, "text <= %lld B", o->max); break;
    case EPS_OPT_LIST: snprintf(range, rn, "<= %d items", EPS_CONFIG_MAX_BATCHES); break;
    }
}

void eps_config_help_markdown(FILE *f)
{
    fprintf(f, "| flag | env var | default | allowed | meaning |\n|---|---|---|---|---|\n");
    for (const eps_config_opt *o = options; o->flag; o++) {
        char def[32], range[64];
        row_texts(o, def, sizeof def, range, sizeof range);
        fprintf(f, "| `%s` | `%s` | %s | ", o->flag, o->env, o->def ? def : "number of CPUs");
        for (const char *p = range; *p; p++) fputs(*p == '|' ? "\\|" : (char[2]){*p, 0}, f);
        fputs(" | ", f);
        for (const char *p = o->help; *p; p++) fputs(*p == '|' ? "\\|" : (char[2]){*p, 0}, f);
        fputs(" |\n", f);
    }
}

void eps_config_help(FILE *f)
{
    fprintf(f,
            "usage: epsinas serve [options]\n\n"
            "HTTP scoring service: POST /v1/score, POST /v1/score/batch, GET /v1/scores/{hash},\n"
            "GET /v1/spaces, GET /v1/batches, GET /v2/health/live|ready (/livez, /readyz), GET /v2,\n"
            "GET /metrics, the jobs API under /v1/jobs, and the dashboard at / (web/, embedded at build time;\n"
            "from another origin, list that origin in --cors-origins). See openapi.yaml and docs/service.md.\n"
            "Every option can also be set by its environment variable; a flag overrides it.\n"
            "Sizes take K/M/G suffixes (powers of 1024). --help-markdown prints this table as Markdown.\n\n");
    fprintf(f, "%-22s %-28s %-10s %-16s %s\n", "flag", "env var", "default", "allowed", "help");
    for (const eps_config_opt *o = options; o->flag; o++) {
        char def[32], range[64];
        row_texts(o, def, sizeof def, range, sizeof range);
        fprintf(f, "%-22s %-28s %-10s %-16s %s\n", o->flag, o->env, def, range, o->help);
    }
    fprintf(f,
            "\nBatch specs: ramp | cifar10:PATH | npy:PATH | gaussian:SEED | tokens:SEED | tokens-file:PATH\n"
            "example: epsinas serve --port 8080 --batch cifar10=cifar10:data/cifar10_test_sample260.bin\n");
}
