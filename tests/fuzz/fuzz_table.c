/* fuzz_table.c — CSV tables (eps_table_parse, what `epsinas eval` reads),
 * then every cell through eps_table_number and every header through
 * eps_table_col. Invariants: nrows x ncols cells, each NUL-terminated,
 * record lines increasing, a header name finds a column of that name. */
#include <math.h>

#include "epsinas/eval/table.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eps_table t;
    eps_error err;
    eps_error_clear(&err);
    if (eps_table_parse((const char *)data, size, "fuzz.csv", &t, &err) < 0) {
        FUZZ_CHECK(err.msg[0], "error without a message");
        return 0;
    }
    FUZZ_CHECK(t.ncols >= 1 && t.ncols <= EPS_TABLE_MAX_COLS && t.nrows >= 0, "shape %d x %ld", t.ncols, t.nrows);
    for (int c = 0; c < t.ncols; c++) {
        int k = eps_table_col(&t, t.header[c]);
        FUZZ_CHECK(k >= 0 && !strcmp(t.header[k], t.header[c]), "header '%s' not found", t.header[c]);
    }
    for (long r = 0; r < t.nrows; r++) {
        FUZZ_CHECK(t.line[r] >= 2 && (r == 0 || t.line[r] > t.line[r - 1]), "record lines out of order");
        for (int c = 0; c < t.ncols; c++) {
            double v = 0;
            const char *cell = eps_table_cell(&t, r, c);
            FUZZ_CHECK(cell, "NULL cell");
            int rc = eps_table_number(cell, &v);
            FUZZ_CHECK(rc >= -1 && rc <= 1, "eps_table_number returned %d", rc);
            if (rc == 1) FUZZ_CHECK(isnan(v), "missing value is not NaN");
        }
    }
    eps_table_free(&t);
    return 0;
}
