
/*
 * The call registry's structures in the agentlocator_zone, shared by
 * every worker: the entry table, the CallSid index, the deadline tree and
 * the queues, and their repair.  What a call's state means is
 * ngx_agentlocator_call_state.c's business.  All access is under the
 * zone's own slab mutex, the one lock nginx releases when a worker dies
 * holding it.  A change to the structures is bracketed by sh->changing,
 * so the next locker can tell a half-done change (the holder died) and
 * rebuild them from sh->table.
 */


#include "ngx_agentlocator_registry.h"

#include <openssl/rand.h>


/* entries evicted at once when the slab is full, before trying again */
#define NGX_AGENTLOCATOR_EVICT_BATCH    4

/* the share of the zone that remembers ended calls, and its sets' ways */
#define NGX_AGENTLOCATOR_ENDED_SHARE    8
#define NGX_AGENTLOCATOR_ENDED_WAYS     8


static ngx_int_t ngx_agentlocator_registry_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_agentlocator_registry_repair(ngx_agentlocator_registry_t *reg);
static void ngx_agentlocator_registry_link(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call);
static ngx_uint_t ngx_agentlocator_registry_evict(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_timeouts_t *to,
    ngx_msec_t now);
static void ngx_agentlocator_index_insert(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call);
static void ngx_agentlocator_index_delete(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call);
static void ngx_agentlocator_registry_wake_check(ngx_msec_t due);
static uint64_t ngx_agentlocator_registry_hash(
    ngx_agentlocator_registry_sh_t *sh, u_char *call_sid);
static void ngx_agentlocator_registry_remember(
    ngx_agentlocator_registry_sh_t *sh, ngx_agentlocator_timeouts_t *to,
    ngx_agentlocator_call_t *call);
static ngx_uint_t ngx_agentlocator_ended_minutes(
    ngx_agentlocator_timeouts_t *to);


/* a change to the structures begins and ends in this order, even if killed */
#define ngx_agentlocator_change_begin(sh)                                     \
    (sh)->changing = ngx_pid; ngx_memory_barrier()
#define ngx_agentlocator_change_end(sh)                                       \
    ngx_memory_barrier(); (sh)->changing = 0


#if (NGX_DEBUG)

/*
 * Debug builds only: AGENTLOCATOR_TEST_CRASH_IN_CHANGE=N (passed with
 * "env") makes a worker SIGKILL itself in the middle of its Nth registry
 * change, so the tests can prove the repair path.
 */

static ngx_uint_t  ngx_agentlocator_crash_countdown;

#define ngx_agentlocator_crash_point()                                        \
    if (ngx_agentlocator_crash_countdown                                      \
        && --ngx_agentlocator_crash_countdown == 0)                           \
    {                                                                         \
        (void) kill(ngx_pid, SIGKILL);                                        \
    }

#else

#define ngx_agentlocator_crash_point()

#endif


/*
 * This worker's watchdog, told when a deadline earlier than its next tick
 * is filed (after the lock is released): see ngx_agentlocator_registry_wake.
 */

static ngx_agentlocator_wake_pt  ngx_agentlocator_registry_waker;
static ngx_msec_t                ngx_agentlocator_registry_wake_at;
static ngx_msec_t                ngx_agentlocator_registry_wake_due;


char *
ngx_agentlocator_registry_zone(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf, ngx_str_t *name, ngx_str_t *size)
{
    ssize_t                       n;
    ngx_shm_zone_t               *shm_zone;
    ngx_agentlocator_registry_t  *reg;

    if (amcf->shm_zone) {
        return "is duplicate: only one agentlocator_zone may be declared";
    }

    if (name->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentlocator_zone needs a name");
        return NGX_CONF_ERROR;
    }

    n = ngx_parse_size(size);

    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_zone size \"%V\"", size);
        return NGX_CONF_ERROR;
    }

    if (n < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentlocator_zone \"%V\" is too small: \"%V\", "
                           "the minimum is %uzk", name, size,
                           8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    reg = ngx_pcalloc(cf->pool, sizeof(ngx_agentlocator_registry_t));
    if (reg == NULL) {
        return NGX_CONF_ERROR;
    }

    reg->name = *name;
    reg->size = n;

    shm_zone = ngx_shared_memory_add(cf, name, n,
                                     &ngx_http_agentlocator_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentlocator_zone \"%V\" is already declared",
                           name);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_agentlocator_registry_init_zone;
    shm_zone->data = reg;

    amcf->shm_zone = shm_zone;

    return NGX_CONF_OK;
}



/*
 * nginx reuses a zone across reload only when name, size and tag match; then
 * "data" is the previous cycle's registry and the calls in it live on.  A
 * size change gives a new, empty zone (documented in the README).
 */

static ngx_int_t
ngx_agentlocator_registry_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_agentlocator_registry_t  *oreg = data;

    size_t                           len, chunk, size;
    ngx_agentlocator_registry_t     *reg;
    ngx_agentlocator_registry_sh_t  *sh;

    reg = shm_zone->data;

    if (oreg) {
        if (oreg->sh->layout != NGX_AGENTLOCATOR_REGISTRY_LAYOUT) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "agentlocator_zone \"%V\" was created by an "
                          "incompatible module version; give it a new name "
                          "or size to start with an empty registry",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        reg->sh = oreg->sh;
        reg->shpool = oreg->shpool;

        return NGX_OK;
    }

    reg->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        reg->sh = reg->shpool->data;

        return NGX_OK;
    }

    sh = ngx_slab_calloc(reg->shpool, sizeof(ngx_agentlocator_registry_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    /*
     * The table needs a slot for every entry the zone could ever hold: at
     * most one per slab chunk of an entry's size (fewer, as the zone also
     * holds the slab's pages, this table and the index).  No more: a
     * power-of-two zone then gets an index of exactly twice the table,
     * not four times, and the index's pages are what a worker touches
     * first as calls hash into it.
     */

    for (chunk = 8; chunk < sizeof(ngx_agentlocator_call_t); chunk <<= 1) {
        /* void */
    }

    sh->table_size = shm_zone->shm.size / chunk;

    sh->table = ngx_slab_calloc(reg->shpool,
                                sh->table_size
                                * sizeof(ngx_agentlocator_call_t *));
    if (sh->table == NULL) {
        return NGX_ERROR;
    }

    /* at most half full, so probe sequences stay short */

    for (size = 2; size < 2 * sh->table_size; size <<= 1) {
        /* void */
    }

    sh->index = ngx_slab_calloc(reg->shpool,
                                size * sizeof(ngx_agentlocator_call_t *));
    if (sh->index == NULL) {
        return NGX_ERROR;
    }

    sh->index_mask = size - 1;

    /*
     * The index's hash is keyed, so that nobody who picks CallSids can
     * pile them into one probe sequence (which every worker would then
     * walk under the lock); the key is the zone's, as the entries' hashes
     * outlive a reload with it.
     */

    if (RAND_bytes(sh->hash_key, NGX_AGENTLOCATOR_SIPHASH_KEY_LEN) != 1) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "agentlocator_zone \"%V\": RAND_bytes() failed",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    for (size = NGX_AGENTLOCATOR_ENDED_WAYS;
         size * 2 * sizeof(uint64_t)
         <= shm_zone->shm.size / NGX_AGENTLOCATOR_ENDED_SHARE;
         size <<= 1)
    {
        /* void */
    }

    sh->ended = ngx_slab_calloc(reg->shpool, size * sizeof(uint64_t));
    if (sh->ended == NULL) {
        return NGX_ERROR;
    }

    sh->ended_sets_mask = size / NGX_AGENTLOCATOR_ENDED_WAYS - 1;

    ngx_rbtree_init(&sh->deadlines, &sh->deadlines_sentinel,
                    ngx_rbtree_insert_timer_value);
    ngx_queue_init(&sh->lru);
    ngx_queue_init(&sh->completed);
    ngx_queue_init(&sh->finished);

    sh->layout = NGX_AGENTLOCATOR_REGISTRY_LAYOUT;

    reg->sh = sh;
    reg->shpool->data = sh;

    len = sizeof(" in agentlocator_zone \"\"") + shm_zone->shm.name.len;

    reg->shpool->log_ctx = ngx_slab_alloc(reg->shpool, len);
    if (reg->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(reg->shpool->log_ctx, " in agentlocator_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full registry is reported by our own ZONE_FULL line */
    reg->shpool->log_nomem = 0;

    return NGX_OK;
}


void
ngx_agentlocator_registry_init_worker(ngx_cycle_t *cycle)
{
#if (NGX_DEBUG)
    ngx_agentlocator_crash_countdown = ngx_agentlocator_test_countdown(cycle,
        "AGENTLOCATOR_TEST_CRASH_IN_CHANGE",
        "this worker will kill itself in its registry change");
#endif
}


ngx_agentlocator_registry_t *
ngx_agentlocator_registry_get(ngx_agentlocator_main_conf_t *amcf)
{
    ngx_agentlocator_registry_t  *reg;

    if (amcf == NULL || amcf->shm_zone == NULL) {
        return NULL;
    }

    reg = amcf->shm_zone->data;

    return reg->sh ? reg : NULL;
}


void
ngx_agentlocator_registry_lock(ngx_agentlocator_registry_t *reg)
{
    ngx_shmtx_lock(&reg->shpool->mutex);

    if (reg->sh->changing) {
        /* the previous holder died mid-change: nginx unlocked for it */
        ngx_agentlocator_registry_repair(reg);
    }
}


void
ngx_agentlocator_registry_unlock(ngx_agentlocator_registry_t *reg)
{
    ngx_msec_t  due;

    due = ngx_agentlocator_registry_wake_due;
    ngx_agentlocator_registry_wake_due = 0;

    ngx_shmtx_unlock(&reg->shpool->mutex);

    if (due) {
        ngx_agentlocator_registry_waker(due);
    }
}


/*
 * The watchdog's tick fires at "at" (0: it is not armed); "waker" is
 * called with any earlier deadline this worker files from now on, so that
 * a new call's deadline never waits for a tick armed before it existed.
 */

void
ngx_agentlocator_registry_wake(ngx_agentlocator_wake_pt waker, ngx_msec_t at)
{
    ngx_agentlocator_registry_waker = waker;
    ngx_agentlocator_registry_wake_at = at;
}


/* The call, with the zone locked; NULL, and unlocked, when it is unknown. */

ngx_agentlocator_call_t *
ngx_agentlocator_registry_lock_call(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_ref_t *ref)
{
    ngx_agentlocator_call_t  *call;

    ngx_agentlocator_registry_lock(reg);

    call = ngx_agentlocator_registry_lookup(reg->sh, ref);

    if (call == NULL) {
        ngx_agentlocator_registry_unlock(reg);
    }

    return call;
}


/*
 * Rebuilds the index, the tree and the queues from the table, keeping
 * every entry that is whole.  An entry allocated but not yet in the
 * table, or taken out of the table but not yet freed, is lost to the
 * slab: bounded and logged.
 */

static void
ngx_agentlocator_registry_repair(ngx_agentlocator_registry_t *reg)
{
    ngx_uint_t                       i, kept, dropped;
    ngx_agentlocator_call_t         *call;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;

    ngx_memzero(sh->index,
                (sh->index_mask + 1) * sizeof(ngx_agentlocator_call_t *));
    ngx_rbtree_init(&sh->deadlines, &sh->deadlines_sentinel,
                    ngx_rbtree_insert_timer_value);
    ngx_queue_init(&sh->lru);
    ngx_queue_init(&sh->completed);
    ngx_queue_init(&sh->finished);

    kept = 0;
    dropped = 0;

    for (i = 0; i < sh->table_size; i++) {
        call = sh->table[i];

        if (call == NULL) {
            continue;
        }

        if ((u_char *) call < reg->shpool->start
            || (u_char *) call + sizeof(ngx_agentlocator_call_t)
               > reg->shpool->end
            || call->magic != NGX_AGENTLOCATOR_CALL_MAGIC
            || call->slot != i)
        {
            sh->table[i] = NULL;
            dropped++;
            continue;
        }

        call->in_deadlines = 0;
        ngx_agentlocator_registry_link(sh, call);
        kept++;
    }

    sh->entries = kept;
    sh->repaired++;
    sh->changing = 0;

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "REGISTRY_REPAIRED zone=\"%V\" entries=%ui dropped=%ui: "
                  "a worker died while changing the registry",
                  &reg->name, kept, dropped);
}


/* Inserts a whole entry into the index, the tree and its queues. */

static void
ngx_agentlocator_registry_link(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call)
{
    ngx_agentlocator_index_insert(sh, call);
    ngx_queue_insert_head(&sh->lru, &call->lru);

    switch (call->done_queue) {

    case NGX_AGENTLOCATOR_QUEUE_COMPLETED:
        ngx_queue_insert_head(&sh->completed, &call->done);
        break;

    case NGX_AGENTLOCATOR_QUEUE_FINISHED:
        ngx_queue_insert_head(&sh->finished, &call->done);
        break;

    default:
        break;
    }

    if (call->deadline.key) {
        ngx_rbtree_insert(&sh->deadlines, &call->deadline);
        call->in_deadlines = 1;
    }
}


/* "ref": a checked CallSid and its hash (ngx_agentlocator_call_ref_t) */

ngx_agentlocator_call_t *
ngx_agentlocator_registry_lookup(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_ref_t *ref)
{
    uint32_t                  hash;
    ngx_uint_t                i;
    ngx_agentlocator_call_t  *call;

    hash = (uint32_t) ref->hash;

    for (i = hash & sh->index_mask; /* void */ ; i = (i + 1) & sh->index_mask)
    {
        call = sh->index[i];

        if (call == NULL) {
            return NULL;
        }

        if (call->hash == hash
            && ngx_memcmp(call->call_sid, ref->sid.data,
                          NGX_AGENTLOCATOR_SID_LEN) == 0)
        {
            return call;
        }
    }
}


/* Linear probing; the index is never more than half full. */

static void
ngx_agentlocator_index_insert(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call)
{
    ngx_uint_t  i;

    for (i = call->hash & sh->index_mask;
         sh->index[i] != NULL;
         i = (i + 1) & sh->index_mask)
    {
        /* void */
    }

    sh->index[i] = call;
}


/*
 * Deletion without tombstones: the entries after the hole that would no
 * longer be found move back into it (Knuth's algorithm R).
 */

static void
ngx_agentlocator_index_delete(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call)
{
    ngx_uint_t                i, j, home, mask;
    ngx_agentlocator_call_t  *c;

    mask = sh->index_mask;

    for (i = call->hash & mask; sh->index[i] != call; i = (i + 1) & mask) {
        if (sh->index[i] == NULL) {
            return;    /* not indexed: nothing to do */
        }
    }

    for (j = (i + 1) & mask; (c = sh->index[j]) != NULL; j = (j + 1) & mask)
    {
        home = c->hash & mask;

        /* c may fill the hole at i if its home is not in (i, j] */

        if ((j > i) ? (home <= i || home > j) : (home <= i && home > j)) {
            sh->index[i] = c;
            i = j;
        }
    }

    sh->index[i] = NULL;
}


/*
 * A zeroed entry with a table slot, due at "due", not yet filled in nor
 * linked (ngx_agentlocator_registry_insert does that once it is whole).
 * When the slab is full, the oldest calls the watchdog is done with are
 * evicted first, as limit_req does: completed ones, then finished ones
 * idle for completed_grace.  A live call is never evicted.  NULL: there
 * is no room (counted in sh->full).
 */

ngx_agentlocator_call_t *
ngx_agentlocator_registry_new(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_ref_t *ref,
    ngx_msec_t due, ngx_msec_t now)
{
    ngx_uint_t                       i, slot;
    ngx_agentlocator_call_t         *call;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    call = NULL;

    if (sh->entries < sh->table_size) {
        call = ngx_slab_alloc_locked(reg->shpool,
                                     sizeof(ngx_agentlocator_call_t));

        if (call == NULL && ngx_agentlocator_registry_evict(reg, to, now)) {
            call = ngx_slab_alloc_locked(reg->shpool,
                                         sizeof(ngx_agentlocator_call_t));
        }
    }

    if (call == NULL) {
        sh->full++;
        return NULL;
    }

    slot = 0;

    for (i = 0; i < sh->table_size; i++) {
        slot = (sh->table_hint + i) % sh->table_size;

        if (sh->table[slot] == NULL) {
            break;
        }
    }

    if (i == sh->table_size) {
        ngx_slab_free_locked(reg->shpool, call);
        sh->full++;
        return NULL;
    }

    ngx_memzero(call, sizeof(ngx_agentlocator_call_t));

    call->slot = (uint32_t) slot;
    call->created = now;
    call->created_at = ngx_time();
    call->updated = now;

    ngx_memcpy(call->call_sid, ref->sid.data, NGX_AGENTLOCATOR_SID_LEN);
    call->hash = (uint32_t) ref->hash;
    call->deadline.key = due ? due : 1;

    return call;
}


/* The entry from ngx_agentlocator_registry_new(), whole, becomes visible. */

void
ngx_agentlocator_registry_insert(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_t *call)
{
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    call->magic = NGX_AGENTLOCATOR_CALL_MAGIC;

    ngx_agentlocator_change_begin(sh);

    sh->table[call->slot] = call;
    sh->table_hint = (call->slot + 1) % sh->table_size;

    ngx_agentlocator_index_insert(sh, call);

    ngx_agentlocator_crash_point();

    ngx_queue_insert_head(&sh->lru, &call->lru);
    ngx_rbtree_insert(&sh->deadlines, &call->deadline);
    call->in_deadlines = 1;

    sh->entries++;

    ngx_agentlocator_change_end(sh);

    ngx_agentlocator_registry_wake_check(call->deadline.key);
}


/*
 * Zone full: the oldest completed calls, else the oldest finished ones
 * idle for completed_grace (stream_ended and late callbacks have come by
 * then).  Returns how many were freed.
 */

static ngx_uint_t
ngx_agentlocator_registry_evict(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_msec_t now)
{
    ngx_uint_t                       n;
    ngx_queue_t                     *q;
    ngx_agentlocator_call_t         *call;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;

    for (n = 0; n < NGX_AGENTLOCATOR_EVICT_BATCH; n++) {

        if (!ngx_queue_empty(&sh->completed)) {
            q = ngx_queue_last(&sh->completed);

        } else if (!ngx_queue_empty(&sh->finished)) {
            q = ngx_queue_last(&sh->finished);
            call = ngx_queue_data(q, ngx_agentlocator_call_t, done);

            if ((ngx_msec_int_t) (now - call->updated)
                < (ngx_msec_int_t) to->completed_grace)
            {
                break;
            }

        } else {
            break;
        }

        call = ngx_queue_data(q, ngx_agentlocator_call_t, done);
        ngx_agentlocator_registry_free(reg, to, call);
        sh->evicted++;
    }

    return n;
}


void
ngx_agentlocator_registry_free(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_t *call)
{
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;

    ngx_agentlocator_registry_remember(sh, to, call);

    ngx_agentlocator_change_begin(sh);

    ngx_agentlocator_index_delete(sh, call);

    if (call->in_deadlines) {
        ngx_rbtree_delete(&sh->deadlines, &call->deadline);
        call->in_deadlines = 0;
    }

    ngx_queue_remove(&call->lru);

    if (call->done_queue) {
        ngx_queue_remove(&call->done);
        call->done_queue = NGX_AGENTLOCATOR_QUEUE_NONE;
    }

    sh->table[call->slot] = NULL;
    sh->entries--;
    call->magic = 0;

    ngx_agentlocator_change_end(sh);

    ngx_slab_free_locked(reg->shpool, call);
}


/* The call is due at "due" instead. */

void
ngx_agentlocator_registry_refile(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_t *call, ngx_msec_t due)
{
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;

    if (due == 0) {
        due = 1;    /* 0 means "not in the deadline tree" */
    }

    if (call->in_deadlines && call->deadline.key == due) {
        return;
    }

    ngx_agentlocator_change_begin(sh);

    if (call->in_deadlines) {
        ngx_rbtree_delete(&sh->deadlines, &call->deadline);
    }

    call->deadline.key = due;
    ngx_rbtree_insert(&sh->deadlines, &call->deadline);
    call->in_deadlines = 1;

    ngx_agentlocator_change_end(sh);

    ngx_agentlocator_registry_wake_check(due);
}


/* Activity: to the head of the LRU (what /status lists first). */

void
ngx_agentlocator_registry_touch(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_t *call, ngx_msec_t now)
{
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    call->updated = now;

    if (ngx_queue_head(&sh->lru) == &call->lru) {
        return;
    }

    ngx_agentlocator_change_begin(sh);

    ngx_queue_remove(&call->lru);
    ngx_queue_insert_head(&sh->lru, &call->lru);

    ngx_agentlocator_change_end(sh);
}


/*
 * The eviction queue the call belongs in now (_queue_e).  It enters at
 * the head: the tail is the oldest.
 */

void
ngx_agentlocator_registry_queue(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_t *call, ngx_uint_t queue)
{
    ngx_agentlocator_registry_sh_t  *sh;

    if (call->done_queue == queue) {
        return;
    }

    sh = reg->sh;

    ngx_agentlocator_change_begin(sh);

    if (call->done_queue) {
        ngx_queue_remove(&call->done);
    }

    call->done_queue = queue;

    if (queue == NGX_AGENTLOCATOR_QUEUE_COMPLETED) {
        ngx_queue_insert_head(&sh->completed, &call->done);

    } else if (queue == NGX_AGENTLOCATOR_QUEUE_FINISHED) {
        ngx_queue_insert_head(&sh->finished, &call->done);
    }

    ngx_agentlocator_change_end(sh);
}


void
ngx_agentlocator_registry_usage(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_registry_usage_t *usage)
{
    size_t            chunk;
    ngx_uint_t        shift, slot, spare;
    ngx_slab_pool_t  *shpool;

    shpool = reg->shpool;

    /* the slab class entries are allocated from */

    for (chunk = 8, shift = 3; chunk < sizeof(ngx_agentlocator_call_t);
         chunk <<= 1, shift++)
    {
        /* void */
    }

    slot = shift - shpool->min_shift;

    ngx_agentlocator_registry_lock(reg);

    usage->entries = reg->sh->entries;
    usage->pages_free = shpool->pfree;
    usage->full = reg->sh->full;
    usage->evicted = reg->sh->evicted;
    usage->expired = reg->sh->expired;
    usage->repaired = reg->sh->repaired;
    usage->ended_forgotten = reg->sh->ended_forgotten;
    usage->replays = reg->sh->replays;
    usage->ended_capacity = (reg->sh->ended_sets_mask + 1)
                            * NGX_AGENTLOCATOR_ENDED_WAYS;

    /* free chunks in pages of that class (shared with the zone's own data) */
    spare = shpool->stats[slot].total - shpool->stats[slot].used;

    ngx_agentlocator_registry_unlock(reg);

    usage->size = reg->size;
    usage->pages_total = (shpool->end - shpool->start) / ngx_pagesize;
    /* the entry, its table slot and its share of the index */
    usage->entry_bytes = chunk + sizeof(ngx_agentlocator_call_t *)
                         * (1 + (reg->sh->index_mask + 1)
                                / reg->sh->table_size);
    usage->capacity = usage->entries + spare
                      + usage->pages_free * (ngx_pagesize / chunk);
}


/*
 * Copies of up to "max" entries, most recently active first, into "calls"
 * (an array of ngx_agentlocator_call_t).  Copying keeps the lock short; the
 * caller formats outside it.
 */

ngx_int_t
ngx_agentlocator_registry_snapshot(ngx_agentlocator_registry_t *reg,
    ngx_pool_t *pool, ngx_array_t *calls, ngx_uint_t max)
{
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_agentlocator_call_t  *call, *copy;

    ngx_shmtx_lock(&reg->shpool->mutex);
    n = reg->sh->entries;
    ngx_shmtx_unlock(&reg->shpool->mutex);

    n = ngx_min(n + 16, max);

    if (ngx_array_init(calls, pool, n ? n : 1, sizeof(ngx_agentlocator_call_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_agentlocator_registry_lock(reg);

    for (q = ngx_queue_head(&reg->sh->lru);
         q != ngx_queue_sentinel(&reg->sh->lru) && calls->nelts < n;
         q = ngx_queue_next(q))
    {
        call = ngx_queue_data(q, ngx_agentlocator_call_t, lru);

        copy = ngx_array_push(calls);    /* within nalloc: no allocation */
        *copy = *call;
    }

    ngx_agentlocator_registry_unlock(reg);

    return NGX_OK;
}


/*
 * How many entries are in each state (counts[state], for states below n),
 * under the lock, so they add up to the entries at one instant.  The walk
 * is over the entry table, an array, rather than the LRU list: its loads
 * do not wait on each other, which keeps the lock short.
 */

void
ngx_agentlocator_registry_states(ngx_agentlocator_registry_t *reg,
    ngx_uint_t *counts, ngx_uint_t n)
{
    ngx_uint_t                        i;
    ngx_agentlocator_call_t          *call;
    ngx_agentlocator_registry_sh_t   *sh;

    ngx_memzero(counts, n * sizeof(ngx_uint_t));

    sh = reg->sh;

    ngx_agentlocator_registry_lock(reg);

    for (i = 0; i < sh->table_size; i++) {
        call = sh->table[i];

        if (call && call->state < n) {
            counts[call->state]++;
        }
    }

    ngx_agentlocator_registry_unlock(reg);
}


static void
ngx_agentlocator_registry_wake_check(ngx_msec_t due)
{
    ngx_msec_t  *pending;

    if (ngx_agentlocator_registry_waker == NULL) {
        return;
    }

    if (ngx_agentlocator_registry_wake_at
        && (ngx_msec_int_t) (due - ngx_agentlocator_registry_wake_at) >= 0)
    {
        return;
    }

    pending = &ngx_agentlocator_registry_wake_due;

    if (*pending == 0 || (ngx_msec_int_t) (due - *pending) < 0) {
        *pending = due;
    }
}


/*
 * The hash of ref->sid, a CallSid the caller checked
 * (ngx_agentlocator_valid_sid): made here once by whoever holds the SID (a
 * webhook, a stream, the watchdog) for all the registry calls that follow,
 * up to four per webhook (prefetch, lookup, the ended set, the new entry).
 * The hash is keyed by the zone: "reg" is the one "ref" is used with.
 */

void
ngx_agentlocator_registry_ref(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_ref_t *ref)
{
    ref->hash = ngx_agentlocator_registry_hash(reg->sh, ref->sid.data);
}


/*
 * The keyed hash of a CallSid: the index's slot (its low 32 bits, kept in
 * the entry) and the ended calls' set and tag (all 64).
 */

static uint64_t
ngx_agentlocator_registry_hash(ngx_agentlocator_registry_sh_t *sh,
    u_char *call_sid)
{
    return ngx_agentlocator_siphash24(sh->hash_key, call_sid,
                                      NGX_AGENTLOCATOR_SID_LEN);
}


/*
 * The memory of calls that left the table: a captured incoming_call
 * replayed after its call was reaped must not arm a new one.  A call is
 * remembered by 48 bits of its keyed hash (a false match among 8 ways is
 * 1 in 2^45) and the minute it left, in one 64-bit word, written with one
 * store: a worker killed at any instruction leaves every word whole.  A
 * set full of calls younger than stale_after forgets its oldest early,
 * counted in ended_forgotten.
 */

#define ngx_agentlocator_ended_tag(h)     (((h) >> 16) | 1)
#define ngx_agentlocator_ended_word(tag, minute)                              \
    (((tag) << 16) | ((minute) & 0xffff))
#define ngx_agentlocator_ended_age(word, now)                                 \
    ((uint16_t) ((now) - (word)))
#define ngx_agentlocator_ended_set(sh, h)                                     \
    ((sh)->ended + (((h) >> 32) & (sh)->ended_sets_mask)                      \
                   * NGX_AGENTLOCATOR_ENDED_WAYS)


static void
ngx_agentlocator_registry_remember(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_t *call)
{
    uint64_t    h, tag, *set, *slot;
    uint16_t    age, oldest;
    ngx_uint_t  i, now;

    /* the entry keeps 32 bits of it: the set and the tag need all 64 */
    h = ngx_agentlocator_registry_hash(sh, call->call_sid);
    tag = ngx_agentlocator_ended_tag(h);
    set = ngx_agentlocator_ended_set(sh, h);
    now = (ngx_uint_t) ngx_time() / 60;

    slot = NULL;
    oldest = 0;

    for (i = 0; i < NGX_AGENTLOCATOR_ENDED_WAYS; i++) {
        if (set[i] == 0 || (set[i] >> 16) == tag) {
            slot = &set[i];
            break;
        }

        age = ngx_agentlocator_ended_age(set[i], now);

        if (slot == NULL || age > oldest) {
            slot = &set[i];
            oldest = age;
        }
    }

    if (*slot && (*slot >> 16) != tag
        && oldest <= ngx_agentlocator_ended_minutes(to))
    {
        sh->ended_forgotten++;
    }

    *slot = ngx_agentlocator_ended_word(tag, now);
}


/*
 * The index slot and the set of ended calls a CallSid hashes to, asked of
 * the memory ahead of the lookup: both are random places in tables of
 * megabytes, and each missed the cache (and the TLB) in nearly every new
 * call's incoming_call, the largest items of the webhook's own CPU.  A
 * caller with work to do before it takes the lock (the signature) lets
 * the loads run meanwhile.  Only hints: nothing is read or locked here.
 */

void
ngx_agentlocator_registry_prefetch(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_ref_t *ref)
{
#if (defined __GNUC__ || defined __clang__)
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;

    __builtin_prefetch(&sh->index[(uint32_t) ref->hash & sh->index_mask]);
    __builtin_prefetch(ngx_agentlocator_ended_set(sh, ref->hash));
#endif
}


/* Whether the call left the table less than stale_after ago. */

ngx_uint_t
ngx_agentlocator_registry_ended(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_ref_t *ref)
{
    uint64_t                         h, tag, *set;
    ngx_uint_t                       i, now, minutes;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    minutes = ngx_agentlocator_ended_minutes(to);

    h = ref->hash;
    tag = ngx_agentlocator_ended_tag(h);
    set = ngx_agentlocator_ended_set(sh, h);
    now = (ngx_uint_t) ngx_time() / 60;

    for (i = 0; i < NGX_AGENTLOCATOR_ENDED_WAYS; i++) {
        if (set[i] && (set[i] >> 16) == tag) {
            return ngx_agentlocator_ended_age(set[i], now) <= minutes;
        }
    }

    return 0;
}


/* the words keep minutes modulo 2^16 (45 days): at most 40 days */

static ngx_uint_t
ngx_agentlocator_ended_minutes(ngx_agentlocator_timeouts_t *to)
{
    return ngx_min(to->stale_after / 60000 + 1, 40 * 24 * 60);
}
