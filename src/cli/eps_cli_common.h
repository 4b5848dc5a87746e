/* eps_cli_common.h — argument helpers shared by the subcommands (private). */
#ifndef EPS_CLI_COMMON_H
#define EPS_CLI_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include "epsinas/core/error.h"
#include "epsinas/engine/engine.h"

/* The one mapping from an EPS_E* code to the process exit status (README,
 * "Exit status"): 0 EPS_OK; 2 bad input (EPS_EINVAL, EPS_ELIMIT, EPS_EIO: a
 * file that cannot be read or written); 130 interrupted (EPS_ECANCELED: Ctrl-C
 * or SIGTERM, as a shell reports SIGINT); 1 anything else (EPS_ENOMEM,
 * EPS_EINTERNAL, an unknown code). */
int eps_cli_exit_code(int code);
/* Prints "epsinas <cmd>: <msg>" (with the field when set) and returns
 * eps_cli_exit_code(err->code). */
int eps_cli_fail(const char *cmd, const eps_error *err);
/* Strict integer / weights / engine parsing of an option's value; return 0
 * or EPS_EINVAL with a message naming flag. s NULL (the option was not
 * given): 0, *out unchanged. */
int eps_cli_int(const char *flag, const char *s, long lo, long hi, long *out, eps_error *err);
int eps_cli_weights(const char *s, double w[2], eps_error *err);
int eps_cli_engine(const char *s, eps_engine_kind *out, eps_error *err);
/* Reads a whole file (at most max bytes) as JSON; caller owns the result. */
int eps_cli_json_file(const char *flag, const char *path, size_t max, json_t **out, eps_error *err);
/* Builds the space request object from CLI-style options (any may be NULL):
 * space, --arch, --matrix/--ops (JSON text), --spec FILE (a JSON request or
 * the space's own object), --recipe FILE. Caller owns *out. */
int eps_cli_request(const char *space, const char *arch, const char *matrix, const char *ops, const char *spec,
                    const char *recipe, json_t **out, eps_error *err);

/* Prints the --batch / --batch-size help shared by score and sweep: every
 * generator's sentence and each space's default (from the space registry,
 * so it is what a run without --batch uses). */
void eps_cli_batch_help(FILE *f);
/* Sets req[field] to the JSON array/object given on the command line by
 * flag (--op-indices, --nni, --naslib). An array may also be written as a
 * Python tuple "(0, 1, ...)", as NASLib prints it. Errors name the flag. */
int eps_cli_request_encoding(json_t *req, const char *flag, const char *field, const char *text, eps_error *err);
/* Sets req["dataset"] from --dataset NAME (NULL: leaves req as it is; the
 * flag wins over a --spec file's field). Errors name --dataset: a space
 * without datasets, a name the space does not have. */
int eps_cli_request_dataset(json_t *req, const char *name, eps_error *err);
/* One --help line per space with datasets: "--dataset NAME ...". */
void eps_cli_dataset_help(FILE *f);
/* Turns "(a, b, ...)" into "[a, b, ...]" in place (leading/trailing blanks
 * allowed); other text is left as it is. */
void eps_cli_tuple_to_array(char *text);

/* ---- the evaluation commands' helpers (eval, select, search, search-weights) */

/* Prints "epsinas CMD: message" as ONE line (control characters from file
 * contents become spaces) and returns eps_cli_exit_code(code). */
int eps_cli_report(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* eps_cli_report of err's message and code (EPS_EINTERNAL when unset). */
int eps_cli_report_err(const char *cmd, const eps_error *e);

/* One command-line option: "--name VALUE", "--name=VALUE" or a flag. Every
 * command declares its options as a table of these; the values stay text
 * until the command converts them (eps_cli_int, eps_cli_weights, ...). */
typedef struct {
    const char *name; /* with the dashes: "--space" */
    int has_arg;
    const char **val; /* has_arg: set to the value (borrowed from argv) */
    int *flag;        /* !has_arg: set to 1 */
} eps_cli_opt;

/* The one option parser of every command: parses argv[1..] against specs
 * (ended by a NULL name); names match exactly (no abbreviations), a later
 * option wins, "--help"/"-h" prints help, "--" ends the options. npos NULL:
 * a positional argument is an error; else the positional arguments are
 * moved, in order, to argv[1..*npos]. Returns -1 when parsed, else the exit
 * code (0 after --help, 2 on error, one line printed). */
int eps_cli_parse_opts(const char *cmd, int argc, char **argv, const eps_cli_opt *specs, void (*help)(FILE *),
                       int *npos);
/* An integer option in [lo, hi] / a non-negative 64-bit one; return 0, or
 * print and return 2. */
int eps_cli_parse_long(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out);
int eps_cli_parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);

/* A JSON real, or null when v is not finite. Caller owns the reference. */
json_t *eps_cli_jnum(double v);
/* Prints j indented, 17 significant digits, keys in insertion order. */
void eps_cli_print_json(json_t *j);
/* v with fmt, or "n/a" for NaN. */
void eps_cli_fmt_stat(char *buf, size_t n, double v, const char *fmt);

#endif
