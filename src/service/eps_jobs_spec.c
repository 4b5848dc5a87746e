/* eps_jobs_spec.c — a job spec -> its items (jobs.h): the enumerable
 * spaces for {"space": S, "all": true}, the fields a job may set once for
 * all items, the item request objects, and the validation of every item with
 * the same checks as a /v1/score request (request.h) before a job is
 * accepted. */
#include "eps_jobs_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/service/request.h"
#include "epsinas/spaces/nb101_enum.h"
#include "epsinas/spaces/nb201.h"
#include "epsinas/spaces/space.h"

/* ------------------------------------------------------------ enumerable spaces */

/* {"space": S, "all": true}: item idx of an enumerable space. Adding a space
 * is one line here (NB101: once its module can enumerate cells). */
static json_t *nb201_item(long idx)
{
    eps_nb201_cell c;
    char buf[EPS_NB201_STR_MAX];
    eps_nb201_from_index((int)idx, &c);
    eps_nb201_format(&c, buf);
    return json_pack("{s:s,s:s}", "space", "nb201", "arch", buf);
}

/* NB101: the enumeration runs once per process, on the first job that
 * needs it (10-15 s, ~423k cells kept for the life of the process). */
static eps_nb101_cell *nb101_cells;
static long nb101_n;
static pthread_once_t nb101_once = PTHREAD_ONCE_INIT;
static void nb101_enumerate_once(void)
{
    eps_error e = {0};
    if (eps_nb101_enumerate(EPS_NB101_MAX_VERTICES, 0, &nb101_cells, &nb101_n, &e)) nb101_n = 0;
}

static json_t *nb101_item(long idx)
{
    pthread_once(&nb101_once, nb101_enumerate_once);
    if (idx < 0 || idx >= nb101_n) return NULL;
    char *canon = eps_nb101_canonical(&nb101_cells[idx].spec);
    json_t *o = canon ? json_loads(canon, 0, NULL) : NULL;
    free(canon);
    if (json_is_object(o)) json_object_set_new(o, "space", json_string("nb101"));
    return o;
}

static const enum_space enumerable[] = {
    {"nb201", EPS_NB201_COUNT, nb201_item},
    {"nb101", EPS_NB101_COUNT, nb101_item},
};

static const enum_space *find_enum(const char *space)
{
    for (size_t i = 0; i < sizeof enumerable / sizeof enumerable[0]; i++)
        if (!strcmp(enumerable[i].space, space)) return &enumerable[i];
    return NULL;
}

/* Request fields a job may set once for all its items. */
static const char *const shared_keys[] = {"batch", "batch_size", "weights", "engine", "dataset", NULL};

/* ------------------------------------------------------------ validation */

/* Item idx's request object: the item (or the enumerated cell) plus the
 * job's shared fields it does not set itself. New ref or NULL. */
json_t *eps_jobs_item_request(const jjob *j, long idx)
{
    json_t *o = j->en ? j->en->item(idx) : json_deep_copy(json_array_get(j->items, (size_t)idx));
    if (!json_is_object(o)) return o;
    const char *k;
    json_t *v;
    json_object_foreach(j->shared, k, v) if (!json_object_get(o, k)) json_object_set(o, k, v);
    return o;
}

/* Builds a jjob from a (parsed) spec; err names the field. */
int eps_jobs_from_spec(eps_jobs *J, json_t *spec, jjob *j, eps_error *err)
{
    if (!json_is_object(spec)) return eps_error_set(err, EPS_EINVAL, "", "the request body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(spec, k, v)
    {
        int known = !strcmp(k, "space") || !strcmp(k, "all") || !strcmp(k, "items") || !strcmp(k, "label");
        for (int i = 0; shared_keys[i]; i++) known |= !strcmp(k, shared_keys[i]);
        if (!known) return eps_error_set(err, EPS_EINVAL, k, "unknown field '%.40s' in a job", k);
    }
    json_t *label = json_object_get(spec, "label");
    if (label && !(json_is_string(label) && json_string_length(label) <= 256))
        return eps_error_set(err, EPS_EINVAL, "label", "'label' must be a string of at most 256 bytes");
    j->shared = json_object();
    for (int i = 0; shared_keys[i]; i++)
        if ((v = json_object_get(spec, shared_keys[i]))) json_object_set(j->shared, shared_keys[i], v);
    json_t *items = json_object_get(spec, "items"), *all = json_object_get(spec, "all");
    json_t *space = json_object_get(spec, "space");
    if (items && all) return eps_error_set(err, EPS_EINVAL, "items", "give either 'items' or 'all', not both");
    if (all) {
        if (!json_is_true(all)) return eps_error_set(err, EPS_EINVAL, "all", "'all' must be true");
        if (!json_is_string(space))
            return eps_error_set(err, EPS_EINVAL, "space", "'all' needs 'space' (an enumerable space, e.g. \"nb201\")");
        const char *sn = json_string_value(space);
        if (!eps_space_find(sn)) return eps_error_set(err, EPS_EINVAL, "space", "unknown space '%.40s'", sn);
        j->en = find_enum(sn);
        if (!j->en)
            return eps_error_set(err, EPS_EINVAL, "space",
                                 "space '%.40s' is not enumerable: list its architectures in 'items'", sn);
        j->rec.total = j->en->count;
    } else {
        if (!json_is_array(items) || json_array_size(items) == 0)
            return eps_error_set(err, EPS_EINVAL, "items",
                                 "a job needs 'items' (a non-empty array of score requests) or 'space' + 'all': true");
        if (space) return eps_error_set(err, EPS_EINVAL, "space", "'space' goes inside each item (or use 'all')");
        j->items = json_incref(items);
        j->rec.total = (long)json_array_size(items);
    }
    if (j->rec.total > J->cfg.max_items)
        return eps_error_set(err, EPS_ELIMIT, j->en ? "all" : "items", "%ld items; at most %ld per job",
                             j->rec.total, J->cfg.max_items);
    return 0;
}

/* Validates every item up front (for 'all', one item: the cells of an
 * enumerable space are valid by construction; the shared fields are not). */
int eps_jobs_prepare(const eps_jobs *J, const json_t *req, eps_score_req *p, eps_error *err)
{
    eps_error_clear(err);
    return eps_score_req_prepare(req, J->batches, J->n_batches, J->cfg.max_request_memory, p, err);
}

int eps_jobs_validate_items(eps_jobs *J, const jjob *j, eps_error *err)
{
    long n = j->en ? 1 : j->rec.total;
    for (long i = 0; i < n; i++) {
        json_t *o = eps_jobs_item_request(j, i);
        eps_score_req p;
        eps_error e;
        int rc = eps_jobs_prepare(J, o, &p, &e);
        json_decref(o);
        if (rc < 0) {
            if (j->en) return eps_error_set(err, rc, e.field, "%s", e.msg);
            char field[64];
            snprintf(field, sizeof field, "items[%ld]%s%.30s", i, *e.field ? "." : "", e.field);
            return eps_error_set(err, rc, field, "item %ld: %s", i, e.msg);
        }
        eps_arch_free(&p.arch);
    }
    return 0;
}

