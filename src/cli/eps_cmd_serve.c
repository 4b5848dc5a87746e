/* eps_cmd_serve.c — `epsinas serve`: parses the configuration, loads the
 * named batches, runs the HTTP server until SIGTERM/SIGINT, then drains.
 * The signal handler only writes to a self-pipe; everything else happens on
 * the main thread. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "epsinas/spaces/space.h"
#include "epsinas/core/batch.h"
#include "epsinas/service/config.h"
#include "epsinas/engine/engine.h"
#include "epsinas/service/http.h"

/* OpenBLAS is used by the dense engine on the worker threads; its own
 * threads would oversubscribe the pool. Declared here so the service does
 * not depend on which cblas.h variant is installed. */
extern void openblas_set_num_threads(int num_threads);

static int sig_pipe[2] = {-1, -1};

/* --max-connections sockets plus files, pipes and Redis: raise the soft fd
 * limit toward the hard one when it is lower (often 1024), else accept()
 * fails with EMFILE long before the connection limit. */
static void raise_fd_limit(long long max_conn)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = (rlim_t)max_conn + 256;
    if (rl.rlim_cur >= want) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        fprintf(stderr, "epsinas serve: warning: open-file limit %llu is below --max-connections + 256\n",
                (unsigned long long)rl.rlim_cur);
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    ssize_t w = write(sig_pipe[1], &c, 1);
    (void)w;
    errno = saved;
}

/* Built-in batches, each unless the configuration names its own: the
 * default spec of every space (and dataset) under its own name ("ramp",
 * "tokens:1", ...), so a request without "batch" finds its space's, plus the
 * aliases "default" (ramp) and "tokens" (tokens:1) that requests named
 * before defaults were per space. */
#define MAX_BUILTIN 32
static int builtin_specs(const char *names[], const char *specs[])
{
    int n = 0;
    names[n] = "default", specs[n++] = "ramp";
    names[n] = "tokens", specs[n++] = "tokens:1";
    for (const eps_space *const *p = eps_space_all(); *p; p++)
        for (int k = -1; k < 0 || ((*p)->datasets && (*p)->datasets[k].dataset); k++) {
            const char *spec = k < 0 ? (*p)->default_batch : (*p)->datasets[k].batch;
            int seen = !spec;
            for (int i = 0; i < n && !seen; i++) seen = !strcmp(names[i], spec);
            if (!seen && n < MAX_BUILTIN) names[n] = spec, specs[n++] = spec;
        }
    return n;
}

static int given(const eps_config *cfg, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < cfg->n_batches; i++)
        if (!strncmp(cfg->batches[i], name, len) && cfg->batches[i][len] == '=') return 1;
    return 0;
}

/* Loads one batch into nb with its size-hash memo (see batch.h). */
static int load_one(eps_named_batch *nb, const char *name, const char *spec, int size, int builtin, eps_error *err)
{
    snprintf(nb->name, sizeof nb->name, "%s", name);
    nb->builtin = builtin;
    int rc = eps_batch_load_shape(spec, size, EPS_IMAGE_SHAPE_ANY, &nb->batch, err); /* an npy file at its own shape */
    if (rc < 0) return rc;
    nb->size_hash = calloc((size_t)nb->batch.n + 1, sizeof *nb->size_hash);
    if (!nb->size_hash) {
        eps_batch_free(&nb->batch);
        return eps_error_set(err, EPS_ENOMEM, "batch", "out of memory");
    }
    return 0;
}

static void free_batches(eps_named_batch *nb, int n)
{
    for (int k = 0; k < n; k++) {
        eps_batch_free(&nb[k].batch);
        free(nb[k].size_hash);
        nb[k].size_hash = NULL;
    }
}

static int load_batches(const eps_config *cfg, eps_named_batch *nb, int *n_out)
{
    int n = 0;
    eps_error err;
    const char *names[MAX_BUILTIN], *specs[MAX_BUILTIN];
    int nbuiltin = builtin_specs(names, specs);
    for (int b = 0; b < nbuiltin; b++) {
        if (given(cfg, names[b])) continue;
        eps_error_clear(&err);
        if (load_one(&nb[n], names[b], specs[b], (int)cfg->batch_size, 1, &err) < 0) {
            fprintf(stderr, "epsinas serve: built-in batch %s (%s): %s\n", names[b], specs[b], err.msg);
            free_batches(nb, n);
            return err.code == EPS_EINVAL ? 2 : 1;
        }
        n++;
    }
    for (int i = 0; i < cfg->n_batches; i++) {
        const char *eq = strchr(cfg->batches[i], '=');
        char name[65];
        snprintf(name, sizeof name, "%.*s", (int)(eq - cfg->batches[i]), cfg->batches[i]);
        eps_error_clear(&err);
        if (load_one(&nb[n], name, eq + 1, (int)cfg->batch_size, 0, &err) < 0) {
            fprintf(stderr, "epsinas serve: --batch %s: %s\n", cfg->batches[i], err.msg);
            free_batches(nb, n);
            return err.code == EPS_EINVAL || err.code == EPS_EIO ? 2 : 1;
        }
        n++;
    }
    *n_out = n;
    return 0;
}

int eps_cmd_serve(int argc, char **argv)
{
    eps_config cfg;
    eps_error err;
    eps_error_clear(&err);
    int rc = eps_config_parse(&cfg, argc, argv, &err);
    if (rc == 1 || rc == 2) {
        if (rc == 1) eps_config_help(stdout);
        else eps_config_help_markdown(stdout);
        eps_config_free(&cfg);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "epsinas serve: %s\n", err.msg);
        eps_config_free(&cfg);
        return 2;
    }
    eps_log_setup(cfg.log_format, cfg.log_level);
    raise_fd_limit(cfg.max_connections);
    openblas_set_num_threads(1);
    eps_engine_blas_quiet(); /* workers run BLAS single-threaded: no pool */

    static eps_named_batch batches[EPS_CONFIG_MAX_BATCHES + MAX_BUILTIN];
    int nb = 0;
    rc = load_batches(&cfg, batches, &nb);
    if (rc) {
        eps_config_free(&cfg);
        return rc;
    }

    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "epsinas serve: pipe: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    eps_server *srv = NULL;
    eps_error_clear(&err);
    rc = eps_server_start(&cfg, batches, nb, &srv, &err);
    if (rc < 0) {
        fprintf(stderr, "epsinas serve: %s\n", err.msg);
        free_batches(batches, nb);
        eps_config_free(&cfg);
        return rc == EPS_EINVAL ? 2 : 1;
    }
    /* The address actually bound, so 0.0.0.0 (every interface) is not
     * mistaken for loopback-only. */
    const char *host = cfg.listen;
    int v6 = strchr(host, ':') != NULL;
    printf("listening on %s%s%s:%d\n", v6 ? "[" : "", host, v6 ? "]" : "", eps_server_port(srv));
    fflush(stdout);
    eps_log(EPS_LOG_INFO, "epsinas %s serving on %s port %d (workers %lld, queue %lld, %d batches)", EPS_VERSION,
            cfg.listen, eps_server_port(srv), cfg.workers, cfg.queue_capacity, nb);

    int sig = 0;
    for (;;) {
        struct pollfd p = {sig_pipe[0], POLLIN, 0};
        int k = poll(&p, 1, -1);
        if (k < 0 && errno == EINTR) continue;
        unsigned char c;
        if (k > 0 && read(sig_pipe[0], &c, 1) == 1) {
            sig = c;
            break;
        }
    }
    eps_log(EPS_LOG_INFO, "signal %d: draining (up to %lld ms)", sig, cfg.shutdown_timeout_ms);
    eps_server_begin_drain(srv);
    long left = eps_server_drain(srv, (long)cfg.shutdown_timeout_ms);
    if (eps_server_stop(srv) < 0) {
        fflush(stderr);
        _exit(0); /* a worker may still read the batches: do not free them */
    }
    eps_log(EPS_LOG_INFO, "stopped (%ld requests were cut short)", left);
    free_batches(batches, nb);
    eps_config_free(&cfg);
    return 0;
}
