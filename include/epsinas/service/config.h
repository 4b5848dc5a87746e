/* config.h — configuration of `epsinas serve`.
 *
 * One table (eps_config_options() in src/service/eps_config.c) drives the command-line
 * flags, the EPSINAS_* environment variables, the defaults, the bounds and
 * the --help text. Precedence: built-in default < environment < flag. */
#ifndef EPSINAS_CONFIG_H
#define EPSINAS_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include "epsinas/core/error.h"

#define EPS_CONFIG_MAX_BATCHES 32

typedef enum {
    EPS_OPT_INT = 0,   /* integer within [min, max] */
    EPS_OPT_SIZE,      /* byte count, optional K/M/G suffix (powers of 1024), within [min, max] */
    EPS_OPT_STR,       /* free text, at most max bytes */
    EPS_OPT_ENUM,      /* one of the '|'-separated words in `choices` */
    EPS_OPT_LIST,      /* repeatable NAME=VALUE (flag); ';'-separated in the env var */
} eps_opt_type;

typedef struct eps_config {
    char *listen;              /* bind address (numeric IPv4/IPv6) */
    long long port;            /* 0 = ephemeral (the bound port is printed) */
    long long workers;         /* compute threads (libuv pool size) */
    long long http_threads;    /* libmicrohttpd polling threads */
    long long max_connections;
    long long max_connections_per_ip;
    long long idle_timeout_s;
    long long request_timeout_ms;
    long long queue_capacity;  /* queued + running compute jobs */
    long long cache_entries;
    long long cache_bytes;
    long long body_limit;
    long long max_request_memory; /* estimated peak bytes of one computation; more -> 413 */
    long long max_batch_items;
    long long json_depth;
    long long deadline_ms;
    long long shutdown_timeout_ms;
    char *cors_origins;        /* comma list, "" = CORS off, "*" = any origin */
    char *api_token;           /* "" = no auth */
    char *batches[EPS_CONFIG_MAX_BATCHES]; /* "NAME=SPEC", owned */
    int n_batches;
    long long batch_size;
    char *log_format;          /* "text" | "json" */
    char *log_level;           /* "error" | "warn" | "info" | "debug" */
    char *redis_url;           /* shared cache tier, "" = off (see redis.h) */
    long long redis_ttl_s;     /* 0 = keys never expire */
    long long redis_timeout_ms;
    /* sweep jobs */
    char *data_dir;            /* job database directory, "" = in memory */
    long long max_jobs;
    long long max_job_items;
    long long job_retention_s;
    long long job_window;      /* 0 = workers */
    char *replica_tag;         /* job id prefix, "" = none */
} eps_config;

typedef struct eps_config_opt {
    const char *flag;          /* "--port" */
    const char *env;           /* "EPSINAS_PORT" */
    eps_opt_type type;
    const char *def;           /* default as text; NULL = computed (see help) */
    long long min, max;        /* INT/SIZE bounds; STR/LIST: max length */
    const char *choices;       /* ENUM: "text|json" */
    const char *help;
    size_t offset;             /* field in eps_config */
} eps_config_opt;

/* The option table (static, NULL-flag-terminated). */
const eps_config_opt *eps_config_options(void);

/* Fills *cfg from defaults, then `environ`, then argv (argv[0] is the
 * subcommand name and is skipped). Returns 0, 1 when --help was asked for,
 * 2 for --help-markdown (nothing else parsed), or EPS_EINVAL with err naming the flag or
 * environment variable and the bound. The caller frees cfg with
 * eps_config_free in every case. */
int eps_config_parse(eps_config *cfg, int argc, char **argv, eps_error *err);
void eps_config_free(eps_config *cfg);

/* Prints the usage text and the option table (flag, env var, default,
 * bounds, help) to f. */
void eps_config_help(FILE *f);

/* The same table as a Markdown table (docs/service.md is generated from it). */
void eps_config_help_markdown(FILE *f);

/* Number of online CPUs (>= 1): the default of --workers. */
int eps_config_ncpu(void);

#endif
