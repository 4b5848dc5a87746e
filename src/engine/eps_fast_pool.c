/* eps_fast_pool.c — the fast engine's memory: a per-thread pool of planes
 * (whole-batch planes on 2 MB-aligned huge-page slabs, chunk buffers
 * malloc'd), reused by exact size so a warm run allocates nothing; a bump
 * arena for a run's small allocations; the input batch cached as channel
 * planes across runs. Planes are reference counted; the last put returns
 * one to the free list and lets its producer job drop its inputs. */
#include "epsinas/engine/engine.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "eps_fast.h"

struct arena_chunk { struct arena_chunk *next; size_t cap, used; };
typedef struct arena_chunk arena_chunk;

/* Whole-batch planes (1 MB each for NB201's first stage) are read and
 * written as long streams; on 4 KB pages the hardware prefetchers stop at
 * every page (every image), on 2 MB pages they do not. Large planes are
 * therefore carved from 2 MB-aligned slabs advised for transparent huge
 * pages; they return to the plane pool, never to the slab. */
#define SLAB_BYTES ((size_t)32 << 20)
#define SLAB_MIN_PLANE_BYTES ((size_t)64 << 10)
typedef struct slab { struct slab *next; void *map; size_t map_len; char *base; size_t used; } slab;

static _Thread_local fpool tl_pool;

fpool *eps_fast_thread_pool(void) { return &tl_pool; }

void *eps_fast_arena_alloc(fpool *fp, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    for (arena_chunk *c = fp->chunks; c; c = c->next)
        if (c->cap - c->used >= n) {
            void *p = (char *)(c + 1) + c->used;
            c->used += n;
            return p;
        }
    size_t cap = n > (1u << 16) ? n : (1u << 16);
    arena_chunk *c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->cap = cap;
    c->used = n;
    c->next = fp->chunks;
    fp->chunks = c;
    return c + 1;
}

void eps_fast_arena_reset(fpool *fp)
{
    for (arena_chunk *c = fp->chunks; c; c = c->next) c->used = 0;
}

/* A plane of nimg images of isz floats each; virt: a chunk buffer. */
plane *eps_fast_plane_get(fpool *fp, size_t nimg, size_t isz, int virt)
{
    size_t size = nimg * isz;
    plane *p = eps_fast_plane_get_sized(fp, size);
    if (p) p->istride = isz, p->virt = virt;
    return p;
}

static void *slab_alloc(fpool *fp, size_t bytes)
{
    bytes = (bytes + 4095) & ~(size_t)4095;
    if (bytes > SLAB_BYTES) return NULL;
    slab *sb = fp->slabs;
    if (!sb || SLAB_BYTES - sb->used < bytes) {
        size_t huge = (size_t)2 << 20, len = SLAB_BYTES + huge;
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        sb = malloc(sizeof *sb);
        if (!sb) {
            munmap(m, len);
            return NULL;
        }
        sb->map = m, sb->map_len = len, sb->used = 0;
        sb->base = (char *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
        (void)madvise(sb->base, SLAB_BYTES, MADV_HUGEPAGE); /* advice only: 4 KB pages also work */
        sb->next = fp->slabs;
        fp->slabs = sb;
        fp->bytes += len;
    }
    void *p = sb->base + sb->used;
    sb->used += bytes;
    return p;
}

plane *eps_fast_plane_get_sized(fpool *fp, size_t size)
{
    for (plane **pp = &fp->free_list; *pp; pp = &(*pp)->next)
        if ((*pp)->size == size) {
            plane *p = *pp;
            *pp = p->next;
            p->refs = 1;
            p->has_stats = 0, p->maxabs_known = 0;
            p->producer = NULL;
            p->next = NULL;
            return p;
        }
    plane *p = malloc(sizeof *p);
    if (!p) return NULL;
    size_t bytes = size * sizeof(float);
    p->data = bytes >= SLAB_MIN_PLANE_BYTES ? slab_alloc(fp, bytes) : NULL;
    p->in_slab = p->data != NULL;
    if (!p->data) {
        p->data = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        fp->bytes += bytes;
    }
    if (!p->data) {
        free(p);
        return NULL;
    }
    p->size = size;
    p->refs = 1;
    p->has_stats = 0, p->maxabs_known = 0;
    p->producer = NULL;
    p->next = NULL;
    return p;
}

void eps_fast_plane_put(fpool *fp, plane *p)
{
    if (!p || --p->refs > 0) return;
    struct job *j = p->producer;
    p->producer = NULL;
    p->next = fp->free_list;
    fp->free_list = p;
    if (j) eps_fast_job_drop_inputs(fp, j);
}

void eps_fast_tensor_release(fpool *fp, ftensor *t)
{
    if (!t->valid) return;
    for (int i = 0; i < t->ng; i++) eps_fast_plane_put(fp, t->g[i].p);
    t->valid = 0;
}

void eps_fast_input_cache_drop(fpool *fp)
{
    for (int e = 0; e < 2; e++) {
        for (int k = 0; fp->stem[e].valid && k < fp->stem[e].ng; k++) eps_fast_plane_put(fp, fp->stem[e].g[k].p);
        fp->stem[e].valid = 0;
    }
    for (int c = 0; c < INPUT_CACHE_MAX_C; c++) {
        eps_fast_plane_put(fp, fp->in_planes[c]);
        fp->in_planes[c] = NULL;
    }
    fp->in_data = NULL;
    fp->in_hash[0] = 0;
}

void eps_engine_fast_release_thread_cache(void)
{
    fpool *fp = eps_fast_thread_pool();
    eps_fast_input_cache_drop(fp);
    while (fp->free_list) {
        plane *p = fp->free_list;
        fp->free_list = p->next;
        if (!p->in_slab) free(p->data);
        free(p);
    }
    while (fp->chunks) {
        arena_chunk *c = fp->chunks;
        fp->chunks = c->next;
        free(c);
    }
    while (fp->slabs) {
        slab *sb = fp->slabs;
        fp->slabs = sb->next;
        munmap(sb->map, sb->map_len);
        free(sb);
    }
    fp->bytes = 0;
}

size_t eps_engine_fast_thread_cache_bytes(void) { return tl_pool.bytes; }
