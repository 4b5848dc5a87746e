/* space.h — search spaces and parsed architectures.
 *
 * A space turns a request (JSON object, or CLI flags turned into one) into
 * an eps_arch: a canonical text form (equivalent spellings give the same
 * text), a hash, and a network (graph IR, or a space-private model for NLP).
 * The service, the CLI and the sweep only talk to this interface. */
#ifndef EPSINAS_SPACE_H
#define EPSINAS_SPACE_H

#include <jansson.h>
#include "epsinas/core/batch.h"
#include "epsinas/engine/engine.h"
#include "epsinas/core/error.h"
#include "epsinas/core/graph.h"
#include "epsinas/core/score.h"

struct eps_space;

typedef struct eps_arch {
    const struct eps_space *space;
    char *canonical;         /* owned; canonical text of the architecture */
    char hash[33];           /* 32 lowercase hex chars (NB101: the dataset's module hash) */
    eps_graph graph;         /* image spaces: the network (owned) */
    void *impl;              /* space-private model (owned, freed by space->free_impl) */
    long long params;        /* trainable parameters as the reference counts them */
    long long macs;          /* multiply-accumulates per image / per token step */
    const char *dataset;     /* static: the dataset scored for (spaces with datasets), else NULL */
} eps_arch;

/* A dataset a space scores for (NB201: cifar10, cifar100, imagenet16-120):
 * the request field "dataset" names one; the first entry is the default.
 * The one table per space (eps_nb201.c) holds everything per dataset. */
typedef struct eps_space_dataset {
    const char *dataset;             /* e.g. "cifar10" */
    const char *batch;               /* its default batch spec */
    int c, h, w;                     /* the network's input image shape */
    int classes;                     /* the dataset's labels (informative: the network has ONE output, spec §1) */
} eps_space_dataset;

typedef struct eps_space {
    const char *name;                /* "nb201", "nb101", "nlp", "graph" */
    const char *title;               /* human name */
    double w1, w2;                   /* default weights (spec §2) */
    eps_batch_kind batch_kind;       /* what kind of batch it scores on */
    /* The batch spec used when a request names none, chosen by measurement
     * (make batch-study, docs/batches.md); datasets: per-dataset overrides,
     * terminated by {NULL}, or NULL. */
    const char *default_batch;
    const eps_space_dataset *datasets;
    const char *const *op_names;     /* NULL-terminated, for GET /v1/spaces */
    /* NULL-terminated names of the request fields this space reads (beyond
     * the common ones, EPS_REQUEST_COMMON_FIELDS). A request naming any other
     * field is rejected, so adding a field to a space is one line here plus
     * its parsing. Every field listed that can change a result must be
     * reflected in the canonical text (tests/test_cachekey.c walks them). */
    const char *const *fields;
    const char *limits;              /* one line describing size limits */
    /* Parses the request object's space-specific fields into *out
     * (out->space is set by the caller). */
    int (*from_json)(const json_t *req, eps_arch *out, eps_error *err);
    /* Custom forward pass (NLP); NULL -> eps_engine_forward(&a->graph, ...). */
    int (*forward)(const eps_arch *a, const eps_batch *b, float w,
                   const eps_run_opts *opts, float *y, eps_error *err);
    /* Number of output values per pass; NULL -> b->n * graph output size. */
    long (*output_count)(const eps_arch *a, const eps_batch *b);
    void (*free_impl)(void *impl);
    /* The canonical cell in every encoding of the space (a new JSON object
     * the caller owns; NULL on OOM), e.g. nb201: arch, op_indices, nni.
     * NULL hook: the space has only its canonical text. */
    json_t *(*encodings)(const eps_arch *a);
} eps_space;

/* Request fields every space accepts (handled by the service/CLI, not by
 * the space parser): NULL-terminated. Fields starting with "x-" are client
 * extensions: accepted and ignored everywhere. */
extern const char *const eps_request_common_fields[];

/* Rejects a request object holding a field that is neither in common[]
 * (NULL-terminated, may be NULL), nor "space", nor in the space's fields,
 * nor an "x-" extension: EPS_EINVAL with err->field = the field's name.
 * The space is req["space"]; an unknown or missing space is left to
 * eps_arch_from_json (returns 0). */
int eps_request_check_fields(const json_t *req, const char *const *common, eps_error *err);

/* A cell given in several encodings (nb201 arch / op_indices / nni): sets
 * *which to the one of names[] (NULL-terminated) present in req, or NULL
 * when none is; two present -> EPS_EINVAL with err->field "a,b" naming both
 * and choices (text) in the message. */
int eps_request_one_of(const json_t *req, const char *const *names, const char *choices, const char **which,
                       eps_error *err);

/* Validates a weight pair at an input boundary (HTTP, CLI): both finite,
 * positive and normal as float32 (the engines compute in float, where a
 * smaller value becomes 0 or a subnormal), and different as float32.
 * field names the source in the error ("weights", "--weights").
 * eps_arch_score itself stays permissive (tests and research code use
 * negative weights through the C API). */
int eps_weights_check(const double w[2], const char *field, eps_error *err);

/* The default batch spec of space s for dataset (NULL or not listed: the
 * space's own default). Static string. */
const char *eps_space_default_batch(const eps_space *s, const char *dataset);
/* The dataset named name of space s (NULL name: its default, the first),
 * or NULL when s has none or none of that name. */
const eps_space_dataset *eps_space_dataset_find(const eps_space *s, const char *name);
/* The names of s's datasets, ", "-separated, into buf (for messages). */
void eps_space_dataset_names(const eps_space *s, char *buf, size_t size);
/* The image shape a's network takes (input node): 1, or 0 when a has no
 * graph (token spaces). Batches are drawn at it (eps_batch_at). */
int eps_arch_input_shape(const eps_arch *a, eps_image_shape *shape);

/* Registry. Returns NULL when unknown. */
const eps_space *eps_space_find(const char *name);
/* NULL-terminated list of every space. */
const eps_space *const *eps_space_all(void);

/* Reads req["space"] and dispatches to the space's parser. On success the
 * caller owns *out and frees it with eps_arch_free. On error *out is clean. */
int eps_arch_from_json(const json_t *req, eps_arch *out, eps_error *err);
void eps_arch_free(eps_arch *a);
/* a's cell in every encoding of its space ("encodings" in responses): a new
 * object the caller owns, or NULL when the space has none (graph, nlp) or
 * on OOM. Derived from the canonical form, so every spelling of one cell
 * answers the same encodings. */
json_t *eps_arch_encodings(const eps_arch *a);

/* Floats one pass writes for batch b (the space's count, else batch x the
 * graph's output size), and one pass at constant weight w into y (the
 * space's forward, else the engine's). */
long eps_arch_output_count(const eps_arch *a, const eps_batch *b);
int eps_arch_forward(const eps_arch *a, const eps_batch *b, float w, const eps_run_opts *opts, float *y,
                     eps_error *err);

/* Runs both passes and computes epsilon. weights NULL -> space defaults. */
int eps_arch_score(const eps_arch *a, const eps_batch *b, const double *weights,
                   const eps_run_opts *opts, eps_score *out, eps_error *err);

/* Space registrations (each defined in its module). */
extern const eps_space eps_nb201_space;
extern const eps_space eps_nb101_space;
extern const eps_space eps_graph_space;
extern const eps_space eps_nlp_space;

#endif
