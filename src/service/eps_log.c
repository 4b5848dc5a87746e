/* eps_log.c — the process-wide logger of `epsinas serve` (service/log.h):
 * one line per event on stderr, text or JSON, each written with a single
 * fputs so lines from different threads never interleave. */
#include "epsinas/service/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static struct {
    int json;
    eps_log_level level;
} L = {0, EPS_LOG_INFO};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void eps_log_setup(const char *format, const char *level)
{
    L.json = format && !strcmp(format, "json");
    L.level = EPS_LOG_INFO;
    for (int i = 0; i < 4; i++)
        if (level && !strcmp(level, level_names[i])) L.level = (eps_log_level)i;
}

static void timestamp(char *buf, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Writes one line with a single fputs so lines from threads never interleave. */
void eps_log_emit(eps_log_level lvl, const char *msg, json_t *extra)
{
    char ts[40];
    timestamp(ts, sizeof ts);
    if (L.json) {
        json_t *o = json_object();
        json_object_set_new(o, "ts", json_string(ts));
        json_object_set_new(o, "level", json_string(level_names[lvl]));
        json_object_set_new(o, "msg", json_string(msg));
        if (extra) json_object_update(o, extra);
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (s) {
            size_t n = strlen(s);
            char *line = malloc(n + 2);
            if (line) {
                memcpy(line, s, n);
                line[n] = '\n';
                line[n + 1] = 0;
                fputs(line, stderr);
                free(line);
            }
            free(s);
        }
        return;
    }
    /* Control characters from anywhere (a library message quoting a
     * request, an error naming a field) would end or forge a line. */
    char line[2048];
    size_t k = (size_t)snprintf(line, sizeof line, "%s %-5s ", ts, level_names[lvl]);
    for (const unsigned char *p = (const unsigned char *)msg; *p && k + 6 < sizeof line; p++) {
        if (*p < 0x20 || *p == 0x7f) k += (size_t)snprintf(line + k, sizeof line - k, "\\x%02x", *p);
        else line[k++] = (char)*p;
    }
    line[k++] = '\n';
    line[k] = 0;
    fputs(line, stderr);
}

int eps_log_enabled(eps_log_level lvl) { return lvl <= L.level; }

int eps_log_is_json(void) { return L.json; }

void eps_log(eps_log_level lvl, const char *fmt, ...)
{
    if (lvl > L.level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    eps_log_emit(lvl, msg, NULL);
}

