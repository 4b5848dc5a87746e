/* fuzz_http.c — the HTTP request path of `epsinas serve`: raw bytes to the
 * real server (eps_server_start, started once, in this process, on an
 * ephemeral loopback port), over a TCP connection. The client writes the
 * input, half-closes, and reads the answer with a bounded wait. Findings
 * are sanitizer reports from the server threads, an answer that does not
 * start with an HTTP status line, or a server that stops answering
 * (checked with GET /livez every 200 inputs).
 * The server runs 1 worker, batches of 8 and a 1 s deadline, so requests
 * that do compute finish quickly. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include "epsinas/core/batch.h"
#include "epsinas/service/config.h"
#include "epsinas/service/http.h"
#include "fuzz.h"

#define READ_TIMEOUT_MS 2000
#define LIVE_TIMEOUT_MS 10000
#define IDLE_MS 150

static int g_port;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    static char *args[] = {"serve", "--listen", "127.0.0.1", "--port", "0", "--workers", "1", "--http-threads",
                           "1", "--batch-size", "8", "--deadline-ms", "1000", "--log-level", "error",
                           "--max-connections", "64", NULL};
    static eps_config cfg;
    static eps_named_batch nb[2];
    eps_error err;
    eps_error_clear(&err);
    if (eps_config_parse(&cfg, (int)(sizeof args / sizeof args[0]) - 1, args, &err) != 0) {
        fprintf(stderr, "fuzz_http: config: %s\n", err.msg);
        abort();
    }
    eps_log_setup(cfg.log_format, cfg.log_level);
    snprintf(nb[0].name, sizeof nb[0].name, "default");
    snprintf(nb[1].name, sizeof nb[1].name, "tokens");
    if (eps_batch_load("ramp", 8, &nb[0].batch, &err) < 0 || eps_batch_load("tokens:1", 8, &nb[1].batch, &err) < 0) {
        fprintf(stderr, "fuzz_http: batch: %s\n", err.msg);
        abort();
    }
    eps_server *s;
    if (eps_server_start(&cfg, nb, 2, &s, &err) < 0) {
        fprintf(stderr, "fuzz_http: server: %s\n", err.msg);
        abort();
    }
    g_port = eps_server_port(s);
    return 0; /* the server lives until the process exits */
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to the server: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Sends data, half-closes, reads until EOF, timeout_ms, or IDLE_MS without
 * a byte once an answer has started (a keep-alive server need not close on
 * a half-close); returns bytes read into buf (at most cap - 1,
 * NUL-terminated; the rest is drained). */
static size_t exchange(const uint8_t *data, size_t size, char *buf, size_t cap, int timeout_ms)
{
    int fd = dial();
    long long end = now_ms() + timeout_ms;
    size_t off = 0, got = 0;
    int wr_done = 0;
    long long last_rx = 0;
    while (now_ms() < end) {
        if (last_rx && wr_done && now_ms() - last_rx >= IDLE_MS) break;
        struct pollfd p = {fd, POLLIN | (wr_done ? 0 : POLLOUT), 0};
        long long left = end - now_ms();
        if (last_rx && wr_done && left > IDLE_MS) left = IDLE_MS;
        int k = poll(&p, 1, (int)(left > 0 ? left : 0));
        if (k <= 0) continue;
        if ((p.revents & POLLOUT) && !wr_done) {
            ssize_t w = off < size ? send(fd, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
            if (w > 0) off += (size_t)w;
            if (w < 0 && errno != EAGAIN && errno != EINTR) wr_done = 1; /* the server closed on us */
            if (off == size && !wr_done) {
                shutdown(fd, SHUT_WR);
                wr_done = 1;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            char tmp[4096];
            ssize_t r = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) break;
            if (r > 0) {
                last_rx = now_ms();
                size_t take = (size_t)r < cap - 1 - got ? (size_t)r : cap - 1 - got;
                memcpy(buf + got, tmp, take);
                got += take;
            }
        }
    }
    close(fd);
    buf[got] = 0;
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[1 << 16];
    static unsigned long runs;
    size_t got = exchange(data, size, buf, sizeof buf, READ_TIMEOUT_MS);
    if (got >= 5) FUZZ_CHECK(!memcmp(buf, "HTTP/", 5), "answer is not HTTP: %.80s", buf);
    if (++runs % 200 == 0) {
        static const char live[] = "GET /livez HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
        got = exchange((const uint8_t *)live, sizeof live - 1, buf, sizeof buf, LIVE_TIMEOUT_MS);
        FUZZ_CHECK(got >= 12 && !memcmp(buf, "HTTP/1.1 200", 12), "the server stopped answering /livez: %.80s",
                   buf);
    }
    return 0;
}
