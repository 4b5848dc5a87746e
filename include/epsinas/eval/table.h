/* table.h — a small, bounded CSV reader (RFC 4180) for score and truth tables,
 * and the output files the evaluation commands write.
 *
 * Accepted: a header line naming the columns, then one record per line;
 * fields separated by ',', optionally quoted with '"' (a quoted field may hold
 * commas, newlines and doubled quotes ""). LF or CRLF line ends, an optional
 * UTF-8 BOM, a missing final newline. Blank lines are skipped. Every record
 * must have as many fields as the header. Errors name "file:line" (the line
 * a record starts on) and what is wrong. */
#ifndef EPSINAS_TABLE_H
#define EPSINAS_TABLE_H

#include <stddef.h>
#include <stdio.h>
#include "epsinas/core/error.h"

#define EPS_TABLE_MAX_BYTES (512L << 20) /* whole file */
#define EPS_TABLE_MAX_COLS 256
#define EPS_TABLE_MAX_RECORD (1L << 20)  /* bytes in one record (line) */
#define EPS_TABLE_MAX_ROWS 20000000L

typedef struct eps_table {
    char name[256];    /* file name used in messages */
    int ncols;
    long nrows;        /* data records (header excluded) */
    char **header;     /* ncols names (point into buf) */
    char **cells;      /* nrows * ncols, row-major (point into buf) */
    long *line;        /* nrows: 1-based source line each record starts on */
    char *buf;         /* owned storage of every unquoted, NUL-terminated field */
} eps_table;

/* Parses len bytes of CSV text; name is used in error messages. On success
 * the caller owns *t (eps_table_free); on error *t is empty. */
int eps_table_parse(const char *text, size_t len, const char *name, eps_table *t, eps_error *err);
/* Reads and parses a file (at most EPS_TABLE_MAX_BYTES). */
int eps_table_read(const char *path, eps_table *t, eps_error *err);
void eps_table_free(eps_table *t);

/* Index of the column called name, or -1. */
int eps_table_col(const eps_table *t, const char *name);
/* Cell text (never NULL; "" for an empty field). Borrowed from t. */
const char *eps_table_cell(const eps_table *t, long row, int col);

/* Parses a numeric cell: returns 1 and *out = NaN for "", "nan", "NaN",
 * "null", "NA" (any case); 0 for a finite or infinite number; -1 (and *out
 * untouched) when the text is not a number. Leading/trailing blanks allowed. */
int eps_table_number(const char *s, double *out);

/* The output files of the evaluation commands (CSV curves, SVG plots):
 * open path for writing (NULL and EPS_EIO naming the path and the reason),
 * and close it, EPS_EIO when anything failed to be written. */
FILE *eps_table_open_out(const char *path, eps_error *err);
int eps_table_close_out(FILE *f, const char *path, eps_error *err);

#endif
