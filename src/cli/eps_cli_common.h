/* eps_cli_common.h — argument helpers shared by the subcommands (private). */
#ifndef EPS_CLI_COMMON_H
#define EPS_CLI_COMMON_H

#include <jansson.h>
#include <stdio.h>
#include "epsinas/core/error.h"

/* Prints "epsinas <cmd>: <msg>" (with the field when set) and returns the
 * exit code for err->code: 2 for bad input/limits/io, 1 otherwise. */
int eps_cli_fail(const char *cmd, const eps_error *err);
/* Strict integer / weights parsing; return 0 or EPS_EINVAL with a message. */
int eps_cli_int(const char *flag, const char *s, long lo, long hi, long *out, eps_error *err);
int eps_cli_weights(const char *s, double w[2], eps_error *err);
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
/* Turns "(a, b, ...)" into "[a, b, ...]" in place (leading/trailing blanks
 * allowed); other text is left as it is. */
void eps_cli_tuple_to_array(char *text);

#endif
