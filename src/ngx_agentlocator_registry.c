
/*
 * The call registry: one entry per live call in the agentlocator_zone,
 * shared by every worker.  All access is under the zone's own slab mutex,
 * the one lock nginx releases when a worker dies holding it.  A tree or
 * queue change is bracketed by sh->changing, so the next locker can tell a
 * half-done change (the holder died) and rebuild from sh->table.
 */


#include "ngx_agentlocator.h"


#define NGX_AGENTLOCATOR_EXPIRE_BATCH   8     /* reaped per allocation */
#define NGX_AGENTLOCATOR_EVICT_SCAN     64    /* entries looked at when full */


static ngx_int_t ngx_agentlocator_registry_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_agentlocator_registry_lock(ngx_agentlocator_registry_t *reg);
static void ngx_agentlocator_registry_repair(ngx_agentlocator_registry_t *reg);
static ngx_agentlocator_call_t *ngx_agentlocator_registry_lookup(
    ngx_agentlocator_registry_sh_t *sh, ngx_str_t *call_sid);
static ngx_agentlocator_call_t *ngx_agentlocator_registry_alloc(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_timeouts_t *to,
    ngx_msec_t now);
static ngx_uint_t ngx_agentlocator_registry_expire(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_timeouts_t *to,
    ngx_msec_t now, ngx_uint_t force);
static void ngx_agentlocator_registry_free(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_t *call);
static void ngx_agentlocator_registry_link(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call);
static void ngx_agentlocator_registry_touch(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call, ngx_agentlocator_timeouts_t *to,
    ngx_msec_t now);
static void ngx_agentlocator_registry_refile(
    ngx_agentlocator_registry_sh_t *sh, ngx_agentlocator_call_t *call,
    ngx_msec_t due);
static ngx_msec_t ngx_agentlocator_call_due(ngx_agentlocator_call_t *call,
    ngx_agentlocator_timeouts_t *to);
static void ngx_agentlocator_index_insert(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call);
static void ngx_agentlocator_index_delete(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call);
static void ngx_agentlocator_copy_bounded(u_char *dst, uint8_t *dst_len,
    size_t size, ngx_str_t *src);


#define ngx_agentlocator_call_of(n, field)                                    \
    ((ngx_agentlocator_call_t *) ((u_char *) (n)                             \
                                  - offsetof(ngx_agentlocator_call_t, field)))

/* a change to the trees begins and ends in this order, even if killed */
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


static const char  *ngx_agentlocator_state_names[] = {
    "none", "armed", "streaming", "stopped", "redirecting", "redirected",
    "completed"
};


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

    ngx_rbtree_init(&sh->deadlines, &sh->deadlines_sentinel,
                    ngx_rbtree_insert_timer_value);
    ngx_queue_init(&sh->lru);

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
    char       *crash;
    ngx_int_t   n;

    crash = getenv("AGENTLOCATOR_TEST_CRASH_IN_CHANGE");

    if (crash) {
        n = ngx_atoi((u_char *) crash, ngx_strlen(crash));
        ngx_agentlocator_crash_countdown = (n > 0) ? (ngx_uint_t) n : 0;

        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "agentlocator: this worker will kill itself in its "
                      "registry change #%ui "
                      "(AGENTLOCATOR_TEST_CRASH_IN_CHANGE)",
                      ngx_agentlocator_crash_countdown);
    }
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


static void
ngx_agentlocator_registry_lock(ngx_agentlocator_registry_t *reg)
{
    ngx_shmtx_lock(&reg->shpool->mutex);

    if (reg->sh->changing) {
        /* the previous holder died mid-change: nginx unlocked for it */
        ngx_agentlocator_registry_repair(reg);
    }
}


#define ngx_agentlocator_registry_unlock(reg)                                 \
    ngx_shmtx_unlock(&(reg)->shpool->mutex)


/* The call, with the zone locked; NULL, and unlocked, when it is unknown. */

static ngx_agentlocator_call_t *
ngx_agentlocator_registry_lock_call(ngx_agentlocator_registry_t *reg,
    ngx_str_t *call_sid)
{
    ngx_agentlocator_call_t  *call;

    ngx_agentlocator_registry_lock(reg);

    call = ngx_agentlocator_registry_lookup(reg->sh, call_sid);

    if (call == NULL) {
        ngx_agentlocator_registry_unlock(reg);
    }

    return call;
}


/*
 * Rebuilds the trees and the queue from the table, keeping every entry that
 * is whole.  An entry allocated but not yet in the table, or taken out of
 * the table but not yet freed, is lost to the slab: bounded and logged.
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


/* Inserts a whole entry into the three structures. */

static void
ngx_agentlocator_registry_link(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call)
{
    ngx_agentlocator_index_insert(sh, call);
    ngx_queue_insert_head(&sh->lru, &call->lru);

    if (call->deadline.key) {
        ngx_rbtree_insert(&sh->deadlines, &call->deadline);
        call->in_deadlines = 1;
    }
}


static ngx_agentlocator_call_t *
ngx_agentlocator_registry_lookup(ngx_agentlocator_registry_sh_t *sh,
    ngx_str_t *call_sid)
{
    uint32_t                  hash;
    ngx_uint_t                i;
    ngx_agentlocator_call_t  *call;

    if (call_sid->len != NGX_AGENTLOCATOR_SID_LEN) {
        return NULL;
    }

    hash = ngx_crc32_short(call_sid->data, call_sid->len);

    for (i = hash & sh->index_mask; /* void */ ; i = (i + 1) & sh->index_mask)
    {
        call = sh->index[i];

        if (call == NULL) {
            return NULL;
        }

        if (call->hash == hash
            && ngx_memcmp(call->call_sid, call_sid->data,
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
 * incoming_call: a new entry in state "armed" due at start_timeout.  A
 * repeated webhook for a known CallSid changes nothing ("created" = 0).
 * NGX_BUSY: the zone is full even after eviction; the caller answers the
 * call anyway, unprotected.
 */

ngx_int_t
ngx_agentlocator_registry_incoming(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_info_t *info,
    ngx_uint_t *created)
{
    ngx_uint_t                       i, slot;
    ngx_msec_t                       now;
    ngx_agentlocator_call_t         *call;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    now = ngx_current_msec;
    *created = 0;

    ngx_agentlocator_registry_lock(reg);

    call = ngx_agentlocator_registry_lookup(sh, &info->call_sid);

    if (call) {
        ngx_agentlocator_registry_touch(sh, call, to, now);
        ngx_agentlocator_registry_unlock(reg);
        return NGX_OK;
    }

    call = NULL;
    slot = 0;

    if (sh->entries < sh->table_size) {
        call = ngx_agentlocator_registry_alloc(reg, to, now);
    }

    if (call) {
        for (i = 0; i < sh->table_size; i++) {
            slot = (sh->table_hint + i) % sh->table_size;

            if (sh->table[slot] == NULL) {
                break;
            }
        }

        if (i == sh->table_size) {
            ngx_slab_free_locked(reg->shpool, call);
            call = NULL;
        }
    }

    if (call == NULL) {
        sh->full++;
        ngx_agentlocator_registry_unlock(reg);
        return NGX_BUSY;
    }

    ngx_memzero(call, sizeof(ngx_agentlocator_call_t));

    call->magic = NGX_AGENTLOCATOR_CALL_MAGIC;
    call->slot = (uint32_t) slot;
    call->state = NGX_AGENTLOCATOR_CALL_ARMED;
    call->created = now;
    call->created_at = ngx_time();
    call->updated = now;

    ngx_memcpy(call->call_sid, info->call_sid.data, NGX_AGENTLOCATOR_SID_LEN);

    if (info->account_sid.len == NGX_AGENTLOCATOR_SID_LEN) {
        ngx_memcpy(call->account_sid, info->account_sid.data,
                   NGX_AGENTLOCATOR_SID_LEN);
    }

    ngx_agentlocator_copy_bounded(call->from, &call->from_len,
                                  NGX_AGENTLOCATOR_PARTY_LEN, &info->from);
    ngx_agentlocator_copy_bounded(call->to, &call->to_len,
                                  NGX_AGENTLOCATOR_PARTY_LEN, &info->to);

    call->hash = ngx_crc32_short(call->call_sid, NGX_AGENTLOCATOR_SID_LEN);
    call->deadline.key = ngx_agentlocator_call_due(call, to);

    /* the entry is whole before anything points at it */

    ngx_agentlocator_change_begin(sh);

    sh->table[slot] = call;
    sh->table_hint = (slot + 1) % sh->table_size;

    ngx_agentlocator_index_insert(sh, call);

    ngx_agentlocator_crash_point();

    ngx_queue_insert_head(&sh->lru, &call->lru);
    ngx_rbtree_insert(&sh->deadlines, &call->deadline);
    call->in_deadlines = 1;

    sh->entries++;

    ngx_agentlocator_change_end(sh);

    ngx_agentlocator_registry_unlock(reg);

    *created = 1;

    return NGX_OK;
}


/*
 * stream_status: "stream-started" moves an armed (or stopped) call to
 * streaming; "stream-stopped" and "stream-error" move it to stopped.  A call
 * the watchdog owns or that completed keeps its state.
 */

ngx_int_t
ngx_agentlocator_registry_stream_event(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_str_t *call_sid, ngx_uint_t started,
    ngx_uint_t error, ngx_str_t *stream_sid)
{
    ngx_msec_t                       now;
    ngx_agentlocator_call_t         *call;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    now = ngx_current_msec;

    call = ngx_agentlocator_registry_lock_call(reg, call_sid);
    if (call == NULL) {
        return NGX_DECLINED;
    }

    if (stream_sid && stream_sid->len == NGX_AGENTLOCATOR_SID_LEN) {
        ngx_memcpy(call->stream_sid, stream_sid->data,
                   NGX_AGENTLOCATOR_SID_LEN);
    }

    if (error) {
        call->stream_error = 1;
    }

    switch (call->state) {

    case NGX_AGENTLOCATOR_CALL_ARMED:
    case NGX_AGENTLOCATOR_CALL_STOPPED:
        if (started) {
            call->state = NGX_AGENTLOCATOR_CALL_STREAMING;

            if (call->stream_start == 0) {
                call->stream_start = now;
            }

        } else {
            call->state = NGX_AGENTLOCATOR_CALL_STOPPED;
        }

        break;

    case NGX_AGENTLOCATOR_CALL_STREAMING:
        if (!started) {
            call->state = NGX_AGENTLOCATOR_CALL_STOPPED;
        }

        break;

    default:
        break;
    }

    ngx_agentlocator_registry_touch(sh, call, to, now);

    ngx_agentlocator_registry_unlock(reg);

    return NGX_OK;
}


/*
 * stream_ended (<Connect action>): "redirected" is set only when the
 * watchdog's redirect has landed; while it is still being attempted the
 * fallback is the safer answer (a landed redirect replaces it anyway).
 */

ngx_int_t
ngx_agentlocator_registry_stream_ended(ngx_agentlocator_registry_t *reg,
    ngx_str_t *call_sid, ngx_uint_t *redirected)
{
    ngx_agentlocator_call_t  *call;

    *redirected = 0;

    call = ngx_agentlocator_registry_lock_call(reg, call_sid);
    if (call == NULL) {
        return NGX_DECLINED;
    }

    if (call->state == NGX_AGENTLOCATOR_CALL_REDIRECTED
        || call->redirect_outcome == NGX_AGENTLOCATOR_REDIRECT_DONE)
    {
        *redirected = 1;

    } else if (call->state == NGX_AGENTLOCATOR_CALL_ARMED
               || call->state == NGX_AGENTLOCATOR_CALL_STREAMING)
    {
        call->state = NGX_AGENTLOCATOR_CALL_STOPPED;
    }

    call->updated = ngx_current_msec;

    ngx_agentlocator_registry_unlock(reg);

    return NGX_OK;
}


ngx_int_t
ngx_agentlocator_registry_recording(ngx_agentlocator_registry_t *reg,
    ngx_str_t *call_sid)
{
    ngx_agentlocator_call_t  *call;

    ngx_agentlocator_registry_lock(reg);

    call = ngx_agentlocator_registry_lookup(reg->sh, call_sid);

    if (call) {
        call->recording = 1;
        call->updated = ngx_current_msec;
    }

    ngx_agentlocator_registry_unlock(reg);

    return call ? NGX_OK : NGX_DECLINED;
}


/*
 * call_status: records Twilio's CallStatus; a final one completes the call,
 * which then stays visible for completed_grace (late stream_ended or status
 * callbacks still find it) and is reaped after.
 */

ngx_int_t
ngx_agentlocator_registry_call_status(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_str_t *call_sid, ngx_str_t *status,
    ngx_uint_t terminal)
{
    ngx_msec_t                       now;
    ngx_agentlocator_call_t         *call;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    now = ngx_current_msec;

    call = ngx_agentlocator_registry_lock_call(reg, call_sid);
    if (call == NULL) {
        return NGX_DECLINED;
    }

    ngx_agentlocator_copy_bounded(call->call_status, &call->call_status_len,
                                  NGX_AGENTLOCATOR_CALL_STATUS_LEN, status);

    if (terminal && call->state != NGX_AGENTLOCATOR_CALL_COMPLETED) {
        call->state = NGX_AGENTLOCATOR_CALL_COMPLETED;
        call->completed = now;
    }

    ngx_agentlocator_registry_touch(sh, call, to, now);

    ngx_agentlocator_registry_unlock(reg);

    return NGX_OK;
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
 * The watchdog's pass over what is due, in due order, at most "max" claims:
 * a call whose stream never started or whose media stopped is claimed
 * (state "redirecting", this worker, a lease) and copied into "claims"; a
 * claim whose lease ran out (its worker died, or a retry is due) is claimed
 * again; finished calls past their time are reaped; a streaming call with
 * recent media is filed again at its real deadline.  Every call handled
 * leaves with a due time in the future, so the pass always ends.
 */

ngx_uint_t
ngx_agentlocator_registry_due(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_claim_t *claims,
    ngx_uint_t max)
{
    ngx_uint_t                       n, reason, takeover, visited;
    ngx_msec_t                       now, t;
    ngx_rbtree_node_t               *node;
    ngx_agentlocator_call_t         *call;
    ngx_agentlocator_claim_t        *claim;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    now = ngx_current_msec;
    n = 0;

    ngx_agentlocator_registry_lock(reg);

    for (visited = 0; n < max && visited < 4 * max; visited++) {

        if (sh->deadlines.root == sh->deadlines.sentinel) {
            break;
        }

        node = ngx_rbtree_min(sh->deadlines.root, sh->deadlines.sentinel);

        if ((ngx_msec_int_t) (node->key - now) > 0) {
            break;
        }

        call = ngx_agentlocator_call_of(node, deadline);
        reason = NGX_AGENTLOCATOR_REASON_NONE;
        takeover = 0;

        switch (call->state) {

        case NGX_AGENTLOCATOR_CALL_ARMED:
            reason = NGX_AGENTLOCATOR_REASON_NO_STREAM_START;
            break;

        case NGX_AGENTLOCATOR_CALL_STREAMING:
            t = (call->last_media ? call->last_media : call->stream_start)
                + to->no_media_timeout;

            if ((ngx_msec_int_t) (t - now) > 0) {
                ngx_agentlocator_registry_refile(sh, call, t);
                continue;
            }

            reason = NGX_AGENTLOCATOR_REASON_NO_MEDIA;
            break;

        case NGX_AGENTLOCATOR_CALL_REDIRECTING:
            /* a retry that is due, or a claimant that died: lease over */
            reason = call->redirect_reason;
            takeover = (call->claimant != 0);
            break;

        case NGX_AGENTLOCATOR_CALL_COMPLETED:
            ngx_agentlocator_registry_free(reg, call);
            sh->expired++;
            continue;

        default: /* stopped, redirected */
            t = call->updated + to->stale_after;

            if ((ngx_msec_int_t) (t - now) > 0) {
                ngx_agentlocator_registry_refile(sh, call, t);
                continue;
            }

            ngx_agentlocator_registry_free(reg, call);
            sh->expired++;
            continue;
        }

        /* the claim: one state change under the lock, so exactly once */

        call->state = NGX_AGENTLOCATOR_CALL_REDIRECTING;
        call->redirect_reason = (uint8_t) reason;
        call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_PENDING;
        call->redirect_attempts++;
        call->claimant = ngx_pid;
        call->lease_until = now + to->lease;

        ngx_agentlocator_registry_refile(sh, call, call->lease_until);

        claim = &claims[n++];
        ngx_memcpy(claim->call_sid, call->call_sid, NGX_AGENTLOCATOR_SID_LEN);
        ngx_memcpy(claim->account_sid, call->account_sid,
                   NGX_AGENTLOCATOR_SID_LEN);
        claim->attempt = call->redirect_attempts;
        claim->reason = reason;
        claim->takeover = takeover;
    }

    ngx_agentlocator_registry_unlock(reg);

    return n;
}


/*
 * The claimant's REST attempt ended.  Only the current claim counts: an
 * answer that comes after the lease passed to another worker is ignored.
 */

ngx_int_t
ngx_agentlocator_registry_attempt_done(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, u_char *call_sid, ngx_uint_t attempt,
    ngx_uint_t result, ngx_uint_t status, ngx_msec_t retry_at)
{
    ngx_str_t                        sid;
    ngx_msec_t                       now;
    ngx_agentlocator_call_t         *call;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    now = ngx_current_msec;

    sid.data = call_sid;
    sid.len = NGX_AGENTLOCATOR_SID_LEN;

    ngx_agentlocator_registry_lock(reg);

    call = ngx_agentlocator_registry_lookup(sh, &sid);

    if (call == NULL
        || call->state != NGX_AGENTLOCATOR_CALL_REDIRECTING
        || call->claimant != ngx_pid
        || call->redirect_attempts != attempt)
    {
        ngx_agentlocator_registry_unlock(reg);
        return NGX_DECLINED;
    }

    call->redirect_status = (uint16_t) status;
    call->updated = now;

    switch (result) {

    case NGX_AGENTLOCATOR_ATTEMPT_DONE:
        call->state = NGX_AGENTLOCATOR_CALL_REDIRECTED;
        call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_DONE;
        call->claimant = 0;
        ngx_agentlocator_registry_refile(sh, call, now + to->stale_after);
        break;

    case NGX_AGENTLOCATOR_ATTEMPT_RETRY:
        /* any worker may make the next attempt when it is due */
        call->claimant = 0;
        call->lease_until = retry_at;
        ngx_agentlocator_registry_refile(sh, call, retry_at);
        break;

    case NGX_AGENTLOCATOR_ATTEMPT_GONE:
        call->state = NGX_AGENTLOCATOR_CALL_COMPLETED;
        call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_GAVE_UP;
        call->claimant = 0;
        call->completed = now;
        ngx_agentlocator_registry_refile(sh, call,
                                         now + to->completed_grace);
        break;

    default: /* NGX_AGENTLOCATOR_ATTEMPT_GIVE_UP */
        call->state = NGX_AGENTLOCATOR_CALL_STOPPED;
        call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_GAVE_UP;
        call->claimant = 0;
        ngx_agentlocator_registry_refile(sh, call, now + to->stale_after);
        break;
    }

    ngx_agentlocator_registry_unlock(reg);

    return NGX_OK;
}


const char *
ngx_agentlocator_reason_name(ngx_uint_t reason)
{
    static const char  *names[] = { "none", "no_stream_start", "no_media" };

    return names[reason <= NGX_AGENTLOCATOR_REASON_NO_MEDIA ? reason : 0];
}


/*
 * The media stream's "start": the call is streaming.  A call the registry
 * does not know (its incoming_call went to another host, or the zone lost
 * it) is registered here, so the watchdog protects the stream all the same.
 */

ngx_int_t
ngx_agentlocator_registry_media_start(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_str_t *call_sid,
    ngx_str_t *stream_sid, ngx_str_t *account_sid, ngx_uint_t *known)
{
    ngx_int_t                      rc;
    ngx_uint_t                     created;
    ngx_agentlocator_call_info_t   info;

    ngx_memzero(&info, sizeof(ngx_agentlocator_call_info_t));
    info.call_sid = *call_sid;
    info.account_sid = *account_sid;

    rc = ngx_agentlocator_registry_incoming(reg, to, &info, &created);
    if (rc != NGX_OK) {
        *known = 0;
        return rc;
    }

    *known = !created;

    return ngx_agentlocator_registry_stream_event(reg, to, call_sid, 1, 0,
                                                  stream_sid);
}


/*
 * Media counters and the last media time, batched by the stream (not one
 * lock per frame).  The due time is not re-filed: the watchdog reads
 * last_media when the entry comes due.
 */

ngx_int_t
ngx_agentlocator_registry_media_progress(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_str_t *call_sid, uint64_t frames,
    uint64_t bytes, ngx_msec_t last_media, ngx_uint_t stopped)
{
    ngx_agentlocator_call_t  *call;

    call = ngx_agentlocator_registry_lock_call(reg, call_sid);
    if (call == NULL) {
        return NGX_DECLINED;
    }

    call->frames += frames;
    call->bytes += bytes;

    if (last_media) {
        call->last_media = last_media;
    }

    if (stopped) {
        if (call->state == NGX_AGENTLOCATOR_CALL_STREAMING
            || call->state == NGX_AGENTLOCATOR_CALL_ARMED)
        {
            call->state = NGX_AGENTLOCATOR_CALL_STOPPED;
        }

        ngx_agentlocator_registry_touch(reg->sh, call, to, ngx_current_msec);
    }

    ngx_agentlocator_registry_unlock(reg);

    return NGX_OK;
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


const char *
ngx_agentlocator_call_state_name(ngx_uint_t state)
{
    if (state > NGX_AGENTLOCATOR_CALL_COMPLETED) {
        state = 0;
    }

    return ngx_agentlocator_state_names[state];
}


/*
 * A new entry: first reap a few expired ones (as limit_req does), then try
 * the slab; when it is full, evict the oldest completed or stale entries
 * and try once more.
 */

static ngx_agentlocator_call_t *
ngx_agentlocator_registry_alloc(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_msec_t now)
{
    ngx_agentlocator_call_t  *call;

    (void) ngx_agentlocator_registry_expire(reg, to, now, 0);

    call = ngx_slab_alloc_locked(reg->shpool, sizeof(ngx_agentlocator_call_t));

    if (call == NULL
        && ngx_agentlocator_registry_expire(reg, to, now, 1) > 0)
    {
        call = ngx_slab_alloc_locked(reg->shpool,
                                     sizeof(ngx_agentlocator_call_t));
    }

    return call;
}


/*
 * force = 0: frees entries whose time is up and that nobody needs: a
 * completed call past its grace, a call idle for stale_after.
 * force = 1 (zone full): also the oldest completed calls still in grace, then
 * stale ones by age of last activity.  Live calls are never evicted.
 */

static ngx_uint_t
ngx_agentlocator_registry_expire(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_msec_t now, ngx_uint_t force)
{
    ngx_uint_t                       n, freed, limit;
    ngx_queue_t                     *q, *prev;
    ngx_rbtree_node_t               *node, *next;
    ngx_agentlocator_call_t         *call;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    freed = 0;
    limit = force ? NGX_AGENTLOCATOR_EVICT_SCAN : NGX_AGENTLOCATOR_EXPIRE_BATCH;

    /* in due order: completed calls are due when their grace ends */

    if (sh->deadlines.root != sh->deadlines.sentinel) {
        node = ngx_rbtree_min(sh->deadlines.root, sh->deadlines.sentinel);

        for (n = 0; node && n < limit; n++, node = next) {
            next = ngx_rbtree_next(&sh->deadlines, node);
            call = ngx_agentlocator_call_of(node, deadline);

            if (!force && (ngx_msec_int_t) (node->key - now) > 0) {
                break;
            }

            if (call->state == NGX_AGENTLOCATOR_CALL_COMPLETED
                || (ngx_msec_int_t) (now - call->updated)
                   >= (ngx_msec_int_t) to->stale_after)
            {
                ngx_agentlocator_registry_free(reg, call);
                freed++;

                if (force) {
                    sh->evicted++;

                } else {
                    sh->expired++;
                }
            }
        }
    }

    if (!force || freed) {
        return freed;
    }

    /* no completed call to evict: the least recently active stale ones */

    q = ngx_queue_last(&sh->lru);

    for (n = 0; q != ngx_queue_sentinel(&sh->lru) && n < limit; n++, q = prev) {
        prev = ngx_queue_prev(q);
        call = ngx_queue_data(q, ngx_agentlocator_call_t, lru);

        if ((ngx_msec_int_t) (now - call->updated)
            >= (ngx_msec_int_t) to->stale_after)
        {
            ngx_agentlocator_registry_free(reg, call);
            sh->evicted++;
            freed++;
        }
    }

    return freed;
}


static void
ngx_agentlocator_registry_free(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_t *call)
{
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;

    ngx_agentlocator_change_begin(sh);

    ngx_agentlocator_index_delete(sh, call);

    if (call->in_deadlines) {
        ngx_rbtree_delete(&sh->deadlines, &call->deadline);
        call->in_deadlines = 0;
    }

    ngx_queue_remove(&call->lru);
    sh->table[call->slot] = NULL;
    sh->entries--;
    call->magic = 0;

    ngx_agentlocator_change_end(sh);

    ngx_slab_free_locked(reg->shpool, call);
}


/* The call is due at "due" instead. */

static void
ngx_agentlocator_registry_refile(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call, ngx_msec_t due)
{
    ngx_agentlocator_change_begin(sh);

    if (call->in_deadlines) {
        ngx_rbtree_delete(&sh->deadlines, &call->deadline);
    }

    call->deadline.key = due ? due : 1;
    ngx_rbtree_insert(&sh->deadlines, &call->deadline);
    call->in_deadlines = 1;

    ngx_agentlocator_change_end(sh);
}


/* Activity: to the head of the LRU, and re-filed by its new due time. */

static void
ngx_agentlocator_registry_touch(ngx_agentlocator_registry_sh_t *sh,
    ngx_agentlocator_call_t *call, ngx_agentlocator_timeouts_t *to,
    ngx_msec_t now)
{
    call->updated = now;

    ngx_agentlocator_change_begin(sh);

    ngx_queue_remove(&call->lru);
    ngx_queue_insert_head(&sh->lru, &call->lru);

    ngx_agentlocator_change_end(sh);

    ngx_agentlocator_registry_refile(sh, call,
                                     ngx_agentlocator_call_due(call, to));
}


/*
 * When the call next needs attention.  Media frames do not re-file a
 * streaming call: its entry comes due at the latest possible time and the
 * watchdog looks at last_media then, so the hot path stays off the tree.
 */

static ngx_msec_t
ngx_agentlocator_call_due(ngx_agentlocator_call_t *call,
    ngx_agentlocator_timeouts_t *to)
{
    ngx_msec_t  due;

    switch (call->state) {

    case NGX_AGENTLOCATOR_CALL_ARMED:
        due = call->created + to->start_timeout;
        break;

    case NGX_AGENTLOCATOR_CALL_STREAMING:
        due = (call->last_media ? call->last_media : call->stream_start)
              + to->no_media_timeout;
        break;

    case NGX_AGENTLOCATOR_CALL_COMPLETED:
        due = call->completed + to->completed_grace;
        break;

    case NGX_AGENTLOCATOR_CALL_REDIRECTING:
        due = call->lease_until;
        break;

    default:
        due = call->updated + to->stale_after;
        break;
    }

    /* 0 means "not in the deadline tree" */
    return due ? due : 1;
}


static void
ngx_agentlocator_copy_bounded(u_char *dst, uint8_t *dst_len, size_t size,
    ngx_str_t *src)
{
    size_t  len;

    len = ngx_min(src->len, size);

    ngx_memcpy(dst, src->data, len);
    *dst_len = (uint8_t) len;
}
