/* nlp.h — the NAS-Bench-NLP space: recurrent cells given as recipes, their
 * 3-layer language model, the two forward engines, and token batches.
 *
 * Request: {"space":"nlp", "recipe":{...} | "<recipe JSON text>",
 *           "vocab_size"?: N (default 33278, WikiText-2)}
 * A recipe maps node names to {"op": OP, "input": [names]} (spec §5).
 * Inputs are `x` (the layer input), `h_prev_K` (previous hidden state K) or
 * another node. Outputs are the nodes `h_new_0 .. h_new_{K-1}`; the layer
 * emits h_new_0 every step. Validation (errors name the node, field
 * "recipe.NAME"):
 *   - at most EPS_NLP_MAX_NODES nodes, canonical text at most
 *     EPS_NLP_RECIPE_MAX_BYTES; node names 1..EPS_NLP_NAME_MAX chars of
 *     [A-Za-z0-9_], not `x`, not `h_prev_*`; a node is exactly {op, input};
 *   - ops and arity: linear 2-3 inputs, blend 3, elementwise_prod/sum 2,
 *     activation_tanh/sigm/leaky_relu 1;
 *   - `x` may only feed a linear node (its width, 400 or 600, differs from
 *     the hidden width in layers 1 and 3, so no other op could take it);
 *   - every input exists, the graph is acyclic (the cycle is reported);
 *   - h_new_0 exists; the used h_prev_K and the h_new_K form the same set
 *     {0..K-1} (all 345 NAS-Bench-NLP WikiText-2 recipes do);
 *   - vocab_size is an integer in [1, EPS_NLP_VOCAB_MAX].
 * Nodes that no h_new_K depends on are validated and counted in the
 * parameters (the reference model creates their weights) but never run.
 * Canonical text: the recipe dumped with JSON_COMPACT | JSON_SORT_KEYS (key
 * order and whitespace do not matter; input order does). Hash: MD5 hex of
 * the canonical text.
 *
 * Model (NAS-Bench-NLP CustomRNN, eval mode): embedding vocab x 400; three
 * recurrent layers of the recipe's cell, (input, hidden) = (400, 600),
 * (600, 600), (600, 400) — the last is 400 because the decoder is tied to
 * the embedding. A linear node is sum_i W_i * input_i + b with one weight
 * matrix per input (hidden x width(input)) and ONE bias (hidden); blend is
 * a*b + (1-a)*c; leaky_relu has slope 0.01; sigmoid and tanh as in torch.
 * epsinas init: every recurrent weight and bias = w, every initial hidden
 * state = w (all units, all layers). The embedding table is uniform(0,1):
 *   element (r, j) = float32((mix(seed + (r*400 + j + 1) * 0x9E3779B97F4A7C15)
 *                     >> 11) * 2^-53)                       (mod 2^64)
 *   mix(z): z = (z ^ z>>30) * 0xBF58476D1CE4E5B9; z = (z ^ z>>27) *
 *           0x94D049BB133111EB; return z ^ z>>31           (splitmix64)
 * with seed EPS_NLP_EMB_SEED (0), so any row is generated on demand and the
 * table is the same for both weights and every vocab_size.
 * Output used: the last layer's output h_new_0, hidden unit 0, for every
 * step and stream, step-major: y[t * streams + s] (70 x 256 values).
 *
 * Parameter count (matches num_params of all 341 completed WikiText-2
 * records of NAS-Bench-NLP):
 *   vocab*400 (embedding) + vocab (decoder bias; the decoder weight is the
 *   tied embedding) + sum over the 3 layers (I, H) of sum over EVERY linear
 *   node of [H (bias) + sum over its inputs of H * (I if input is x else H)].
 * MACs (eps_arch.macs): per token step and stream, the recurrent linear maps
 * that the outputs depend on, over the 3 layers: sum over live linear nodes
 * and inputs of H * width(input). The embedding lookup and the tied decoder
 * (never run by the score) are not counted.
 *
 * Engines (eps_run_opts.engine):
 *   EPS_ENGINE_DENSE: full float32 matrices, one cblas_sgemm per linear input,
 *                     the embedding rows actually generated.
 *   EPS_ENGINE_FAST:  every hidden unit is identical (constant weights and
 *                     initial states), so a state is one scalar per stream;
 *                     W x is w * (sum of x), for the embedding the row sum.
 * Both apply the same float32 op semantics and agree on epsilon within
 * 1e-4 relative + 1e-5 absolute. Fast sums exactly (double) where dense and
 * PyTorch sum H equal float32 terms in BLAS order; at w = 1e-5 some cells'
 * states vary across streams by only ~1e-5 of their size, so that rounding
 * alone moves epsilon by up to ~1e-4 relative (tests/test_nlp.c).
 * The dense engine runs at most 256 streams at a time (memory bound);
 * opts->cancel is polled between steps. */
#ifndef EPSINAS_NLP_H
#define EPSINAS_NLP_H

#include <stdint.h>
#include <jansson.h>
#include "epsinas/core/batch.h"
#include "epsinas/engine/engine.h"
#include "epsinas/core/error.h"

#define EPS_NLP_MAX_NODES 256
#define EPS_NLP_NAME_MAX 48
#define EPS_NLP_RECIPE_MAX_BYTES (64 * 1024)
#define EPS_NLP_VOCAB_MAX EPS_TOKENS_VOCAB_MAX
#define EPS_NLP_DEFAULT_VOCAB 33278     /* WikiText-2 */
#define EPS_NLP_EMB 400
#define EPS_NLP_HIDDEN 600
#define EPS_NLP_LAYERS 3
#define EPS_NLP_STEPS EPS_TOKENS_STEPS
#define EPS_NLP_EMB_SEED 0
#define EPS_NLP_MAX_IN 3

typedef enum eps_nlp_op {
    EPS_NLP_LINEAR = 0,
    EPS_NLP_BLEND,
    EPS_NLP_PROD,
    EPS_NLP_SUM,
    EPS_NLP_TANH,
    EPS_NLP_SIGM,
    EPS_NLP_LEAKY_RELU,
    EPS_NLP_OP__COUNT
} eps_nlp_op;

/* Recipe op names indexed by eps_nlp_op, NULL-terminated. */
extern const char *const eps_nlp_op_names[];

/* Input references in eps_nlp_node.in: >= 0 is a node index (always smaller
 * than the node's own), EPS_NLP_IN_X the layer input, EPS_NLP_IN_HPREV(k)
 * the previous hidden state k. */
#define EPS_NLP_IN_X (-1)
#define EPS_NLP_IN_HPREV(k) (-2 - (k))
#define EPS_NLP_HPREV_INDEX(ref) (-2 - (ref))

typedef struct eps_nlp_node {
    char name[EPS_NLP_NAME_MAX + 1];
    eps_nlp_op op;
    int n_in;
    int in[EPS_NLP_MAX_IN];
    int live;                   /* some h_new_k depends on it */
} eps_nlp_node;

typedef struct eps_nlp_model {
    eps_nlp_node *nodes;        /* owned; topological order */
    int n_nodes;
    int n_hidden;               /* K: h_prev_0..K-1 / h_new_0..K-1 */
    int *h_new;                 /* owned; node index of h_new_k, k < K */
    long long vocab_size;
    uint64_t emb_seed;
} eps_nlp_model;

/* Validates `recipe` (a JSON object, or a string holding one) and builds
 * *out (caller frees with eps_nlp_model_free). When canonical is non-NULL it
 * receives the malloc'd canonical text (caller frees). */
int eps_nlp_parse(const json_t *recipe, long long vocab_size, eps_nlp_model *out, char **canonical,
                  eps_error *err);
void eps_nlp_model_free(eps_nlp_model *m);

long long eps_nlp_params(const eps_nlp_model *m);
long long eps_nlp_macs(const eps_nlp_model *m);

/* Embedding element (r, j) as documented above. */
float eps_nlp_embedding(uint64_t seed, long long row, int col);

/* One pass at weight w on a token batch: y (caller-allocated) receives
 * b->steps * b->n floats, step-major. opts may be NULL (fast engine). */
int eps_nlp_forward(const eps_nlp_model *m, const eps_batch *b, float w, const eps_run_opts *opts, float *y,
                    eps_error *err);


#endif
