
/*
 * agentlocator_metrics: the module's state in Prometheus's text format
 * (0.0.4), the sum over every worker whichever one answers.  Counters are
 * atomics in a zone of their own, "agentlocator_metrics", made with the
 * first agentlocator_metrics location; its name and size never change, so
 * a reload keeps it, as it keeps any nginx zone.  Gauges that belong to
 * one worker (its database pool and queues, its spool, its open streams)
 * are published by that worker in a slot of the zone and summed at each
 * scrape; a slot whose worker has died is skipped, and taken over by the
 * next worker that needs one.  Calls by state and zone usage are read
 * from the registry under its lock, media counters from its atomics.
 */


#include "ngx_agentlocator.h"

#include <curl/curl.h>


#define NGX_AGENTLOCATOR_METRICS_LAYOUT    0x4d450002   /* "ME", layout 2 */

/* how often a worker publishes its gauges for the others' scrapes */
#define NGX_AGENTLOCATOR_METRICS_PUBLISH   1000         /* ms */

/*
 * One slot per process nginx can have: after reloads, old workers that
 * still serve streams hold theirs beside the new ones.
 */
#define NGX_AGENTLOCATOR_METRICS_SLOTS     NGX_MAX_PROCESSES

/* the longest answer: about 150 lines, none near 256 bytes */
#define NGX_AGENTLOCATOR_METRICS_MAX_BODY  (64 * 1024)

/* a worker's gauges: index in its slot */
#define NGX_AGENTLOCATOR_G_STREAMS         0
#define NGX_AGENTLOCATOR_G_DB_STATE        1    /* PG_STATES of them */
#define NGX_AGENTLOCATOR_G_DB_WRITES                                          \
    (NGX_AGENTLOCATOR_G_DB_STATE + NGX_AGENTLOCATOR_PG_STATES)
#define NGX_AGENTLOCATOR_G_DB_READS        (NGX_AGENTLOCATOR_G_DB_WRITES + 1)
#define NGX_AGENTLOCATOR_G_DB_IN_FLIGHT    (NGX_AGENTLOCATOR_G_DB_WRITES + 2)
#define NGX_AGENTLOCATOR_G_SPOOL_FILES     (NGX_AGENTLOCATOR_G_DB_WRITES + 3)
#define NGX_AGENTLOCATOR_G_SPOOL_BYTES     (NGX_AGENTLOCATOR_G_DB_WRITES + 4)
#define NGX_AGENTLOCATOR_G_SPOOL_UNREAD    (NGX_AGENTLOCATOR_G_DB_WRITES + 5)
#define NGX_AGENTLOCATOR_GAUGES            (NGX_AGENTLOCATOR_G_DB_WRITES + 6)

/* the label values of each counter family (the tables below) */
#define NGX_AGENTLOCATOR_WS_REASONS        16
#define NGX_AGENTLOCATOR_REDIRECT_REASONS  3    /* _reason_e, less NONE */
#define NGX_AGENTLOCATOR_OUTCOMES          8
#define NGX_AGENTLOCATOR_REST_RESULTS      8
#define NGX_AGENTLOCATOR_REST_BUCKETS      10   /* and +Inf */
#define NGX_AGENTLOCATOR_CRM_RESULTS       3
#define NGX_AGENTLOCATOR_TX_RESULTS        7

/* a REST request's result: index in ngx_agentlocator_metrics_rest_results */
#define NGX_AGENTLOCATOR_REST_SUCCESS      0
#define NGX_AGENTLOCATOR_REST_CLIENT       1
#define NGX_AGENTLOCATOR_REST_RATE_LIMITED 2
#define NGX_AGENTLOCATOR_REST_SERVER       3
#define NGX_AGENTLOCATOR_REST_OTHER        4
#define NGX_AGENTLOCATOR_REST_TIMEOUT      5
#define NGX_AGENTLOCATOR_REST_NETWORK      6
#define NGX_AGENTLOCATOR_REST_ABORTED      7


/*
 * A worker's slot.  "owner" is set only once the gauges are the claiming
 * worker's own, so a scrape never adds a predecessor's values under the
 * new pid.
 */

typedef struct {
    ngx_atomic_t                      pid;      /* 0: free */
    ngx_atomic_t                      owner;    /* pid whose gauges these are */
    ngx_atomic_t                      gauge[NGX_AGENTLOCATOR_GAUGES];
} ngx_agentlocator_metrics_slot_t;


typedef struct {
    ngx_atomic_t                      layout;
    ngx_atomic_t                      ws_errors[NGX_AGENTLOCATOR_WS_REASONS];
    /* by reason (less NONE) and outcome */
    ngx_atomic_t                      redirects[
                                          NGX_AGENTLOCATOR_REDIRECT_REASONS
                                          * NGX_AGENTLOCATOR_OUTCOMES];
    ngx_atomic_t                      rest[NGX_AGENTLOCATOR_REST_RESULTS];
    /* per bucket, not cumulative; the last one: over the largest bound */
    ngx_atomic_t                      rest_le[NGX_AGENTLOCATOR_REST_BUCKETS
                                              + 1];
    ngx_atomic_t                      rest_ms;  /* the observations' sum */
    ngx_atomic_t                      crm[NGX_AGENTLOCATOR_CRM_RESULTS];
    ngx_atomic_t                      tx[NGX_AGENTLOCATOR_TX_RESULTS];
    ngx_agentlocator_metrics_slot_t   slot[NGX_AGENTLOCATOR_METRICS_SLOTS];
} ngx_agentlocator_metrics_sh_t;


typedef struct {
    ngx_agentlocator_metrics_sh_t    *sh;
    ngx_slab_pool_t                  *shpool;
} ngx_agentlocator_metrics_ctx_t;


/* this worker's side */

typedef struct {
    ngx_agentlocator_metrics_sh_t    *sh;       /* NULL: no metrics */
    ngx_agentlocator_metrics_slot_t  *slot;     /* NULL: none was free */
    ngx_atomic_uint_t                 streams;
    ngx_event_t                       publish;
    ngx_connection_t                  dummy;    /* publish.data */
} ngx_agentlocator_metrics_worker_t;


typedef struct {
    const char                       *error;    /* the codec's words */
    const char                       *label;
} ngx_agentlocator_metrics_reason_t;


typedef struct {
    u_char                           *pos;
    u_char                           *last;
} ngx_agentlocator_metrics_out_t;


/* what one scrape adds up */

typedef struct {
    ngx_uint_t                        workers;
    ngx_atomic_uint_t                 gauge[NGX_AGENTLOCATOR_GAUGES];
} ngx_agentlocator_metrics_sum_t;


static ngx_int_t ngx_agentlocator_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_agentlocator_metrics_slot_t *ngx_agentlocator_metrics_claim(
    ngx_agentlocator_metrics_sh_t *sh);
static ngx_uint_t ngx_agentlocator_metrics_dead(ngx_pid_t pid);
static void ngx_agentlocator_metrics_publish(void);
static void ngx_agentlocator_metrics_publish_handler(ngx_event_t *ev);
static void ngx_agentlocator_metrics_sum(ngx_agentlocator_metrics_sh_t *sh,
    ngx_agentlocator_metrics_sum_t *sum);
static ngx_uint_t ngx_agentlocator_metrics_rest_result(
    ngx_agentlocator_http_result_t *result);
static void ngx_agentlocator_metrics_registry(
    ngx_agentlocator_metrics_out_t *out, ngx_agentlocator_registry_t *reg);
static void ngx_agentlocator_metrics_media(ngx_agentlocator_metrics_out_t *out,
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_metrics_sh_t *sh,
    ngx_agentlocator_metrics_sum_t *sum);
static void ngx_agentlocator_metrics_watchdog(
    ngx_agentlocator_metrics_out_t *out, ngx_agentlocator_metrics_sh_t *sh);
static void ngx_agentlocator_metrics_database(
    ngx_agentlocator_metrics_out_t *out, ngx_agentlocator_metrics_sh_t *sh,
    ngx_agentlocator_metrics_sum_t *sum);
static void ngx_agentlocator_metrics_spool(ngx_agentlocator_metrics_out_t *out,
    ngx_agentlocator_metrics_sum_t *sum);
static void ngx_agentlocator_metrics_transcriptions(
    ngx_agentlocator_metrics_out_t *out, ngx_agentlocator_metrics_sh_t *sh);
static void ngx_agentlocator_metrics_family(
    ngx_agentlocator_metrics_out_t *out, const char *name, const char *type,
    const char *help);
static void ngx_agentlocator_metrics_print(ngx_agentlocator_metrics_out_t *out,
    const char *fmt, ...);


/*
 * WS_PROTOCOL_ERROR's reasons as the codec words them, and their labels;
 * a reason not listed here (a new one in the codec) is "other".
 */

static ngx_agentlocator_metrics_reason_t
    ngx_agentlocator_metrics_ws_reasons[NGX_AGENTLOCATOR_WS_REASONS] =
{
    { "reserved bits set", "reserved_bits" },
    { "unknown opcode", "unknown_opcode" },
    { "unmasked client frame", "unmasked_frame" },
    { "non-minimal length", "non_minimal_length" },
    { "length has its top bit set", "length_top_bit" },
    { "fragmented control frame", "fragmented_control" },
    { "control frame over 125 bytes", "control_too_long" },
    { "continuation without a message", "orphan_continuation" },
    { "new message inside a fragmented one", "interleaved_message" },
    { "message too big", "message_too_big" },
    { "text message is not UTF-8", "invalid_utf8" },
    { "close frame of one byte", "bad_close_frame" },
    { "invalid close code", "invalid_close_code" },
    { "close reason is not UTF-8", "invalid_close_reason" },
    { "out of memory", "out_of_memory" },
    { NULL, "other" }
};


/* the watchdog's outcome tokens (WATCHDOG_REDIRECT, the CRM's timeline) */

static const char  *ngx_agentlocator_metrics_outcomes[] = {
    "redirected", "retrying", "call_ended", "refused", "gave_up",
    "moved_on", "abandoned", "error"
};


static const char  *ngx_agentlocator_metrics_rest_results[] = {
    "success", "client_error", "rate_limited", "server_error",
    "other_status", "timeout", "network_error", "aborted"
};


/* REST latency bounds, ms, from a quick 2xx to the longest timeout= */

static ngx_msec_t  ngx_agentlocator_metrics_rest_bounds[] = {
    10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};

static const char  *ngx_agentlocator_metrics_rest_le[] = {
    "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
    "+Inf"
};


static const char  *ngx_agentlocator_metrics_crm_results[] = {
    "done", "failed", "dropped"
};


/* by NGX_AGENTLOCATOR_METRICS_TX_*: each a log line of its own */

static const char  *ngx_agentlocator_metrics_tx_results[] = {
    "transcribed", "retried", "failed", "given_up", "resumed", "abandoned",
    "skipped"
};


static ngx_str_t  ngx_agentlocator_metrics_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");

static ngx_str_t  ngx_agentlocator_metrics_zone_name =
    ngx_string("agentlocator_metrics");


static ngx_agentlocator_metrics_worker_t  ngx_agentlocator_metrics_worker;


/* The zone, made once per configuration however many locations use it. */

char *
ngx_agentlocator_metrics_zone(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf)
{
    size_t                           size;
    ngx_shm_zone_t                  *shm_zone;
    ngx_agentlocator_metrics_ctx_t  *ctx;

    if (amcf->metrics_zone) {
        return NGX_CONF_OK;
    }

    /* (an agentlocator_zone declared after this is nginx's own conflict) */
    if (amcf->shm_zone
        && amcf->shm_zone->shm.name.len
           == ngx_agentlocator_metrics_zone_name.len
        && ngx_strncmp(amcf->shm_zone->shm.name.data,
                       ngx_agentlocator_metrics_zone_name.data,
                       ngx_agentlocator_metrics_zone_name.len) == 0)
    {
        goto taken;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_agentlocator_metrics_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the counters and slots, and room for the slab pool's own pages */
    size = ngx_align(sizeof(ngx_agentlocator_metrics_sh_t), ngx_pagesize)
           + 8 * ngx_pagesize;

    shm_zone = ngx_shared_memory_add(cf, &ngx_agentlocator_metrics_zone_name,
                                     size, &ngx_http_agentlocator_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        goto taken;
    }

    shm_zone->init = ngx_agentlocator_metrics_init_zone;
    shm_zone->data = ctx;

    amcf->metrics_zone = shm_zone;

    return NGX_CONF_OK;

taken:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "an agentlocator_zone is named \"%V\", the name of "
                       "the metrics' own zone: give it another name",
                       &ngx_agentlocator_metrics_zone_name);
    return NGX_CONF_ERROR;
}


/*
 * limit_req's three cases: a reload with the zone unchanged keeps the old
 * counters; a remapped zone (Windows) finds them in the pool; else new.
 */

static ngx_int_t
ngx_agentlocator_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_agentlocator_metrics_ctx_t  *octx = data;

    ngx_agentlocator_metrics_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        if (octx->sh->layout != NGX_AGENTLOCATOR_METRICS_LAYOUT) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "the zone \"%V\" was made by another version of "
                          "the agentlocator module: restart nginx, a "
                          "reload cannot change it",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;

        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;
        return NGX_OK;
    }

    ctx->sh = ngx_slab_calloc(ctx->shpool,
                              sizeof(ngx_agentlocator_metrics_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->sh->layout = NGX_AGENTLOCATOR_METRICS_LAYOUT;
    ctx->shpool->data = ctx->sh;

    ctx->shpool->log_ctx = (u_char *) " in the agentlocator_metrics zone";

    return NGX_OK;
}


void
ngx_agentlocator_metrics_init_worker(ngx_cycle_t *cycle)
{
    ngx_agentlocator_main_conf_t       *amcf;
    ngx_agentlocator_metrics_ctx_t     *ctx;
    ngx_agentlocator_metrics_worker_t  *w;

    w = &ngx_agentlocator_metrics_worker;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_agentlocator_module);

    if (amcf == NULL || amcf->metrics_zone == NULL) {
        return;
    }

    ctx = amcf->metrics_zone->data;

    w->sh = ctx->sh;
    w->slot = ngx_agentlocator_metrics_claim(w->sh);

    if (w->slot == NULL) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "METRICS_NO_SLOT: all %d slots of the "
                      "agentlocator_metrics zone are held by live "
                      "processes; this worker's gauges are left out",
                      NGX_AGENTLOCATOR_METRICS_SLOTS);
        return;
    }

    ngx_agentlocator_metrics_publish();

    ngx_agentlocator_worker_timer(&w->publish, &w->dummy,
                                  ngx_agentlocator_metrics_publish_handler,
                                  cycle->log);
    ngx_add_timer(&w->publish, NGX_AGENTLOCATOR_METRICS_PUBLISH);
}


/*
 * A slot: this worker's index first, so that a worker the master respawns
 * after a crash takes its predecessor's; else any free one, or one whose
 * process is gone (a worker of an older generation that died: the master
 * does not respawn those).  An index still held by a live process is an
 * old worker draining after a reload.
 */

static ngx_agentlocator_metrics_slot_t *
ngx_agentlocator_metrics_claim(ngx_agentlocator_metrics_sh_t *sh)
{
    ngx_uint_t                        i, n;
    ngx_atomic_uint_t                 pid;
    ngx_agentlocator_metrics_slot_t  *slot;

    /* a dead process that had our pid (reused) would pass for us */

    for (i = 0; i < NGX_AGENTLOCATOR_METRICS_SLOTS; i++) {
        slot = &sh->slot[i];

        if (slot->pid == (ngx_atomic_uint_t) ngx_pid) {
            slot->owner = 0;
            (void) ngx_atomic_cmp_set(&slot->pid, ngx_pid, 0);
        }
    }

    for (n = 0; n < NGX_AGENTLOCATOR_METRICS_SLOTS; n++) {
        i = (ngx_worker + n) % NGX_AGENTLOCATOR_METRICS_SLOTS;
        slot = &sh->slot[i];

        pid = slot->pid;

        if (pid && !ngx_agentlocator_metrics_dead((ngx_pid_t) pid)) {
            continue;
        }

        if (!ngx_atomic_cmp_set(&slot->pid, pid, (ngx_atomic_uint_t) ngx_pid))
        {
            continue;
        }

        /* a dead predecessor's values stay out until they are ours */

        ngx_memzero((void *) slot->gauge, sizeof(slot->gauge));
        ngx_memory_barrier();
        slot->owner = ngx_pid;

        return slot;
    }

    return NULL;
}


static ngx_uint_t
ngx_agentlocator_metrics_dead(ngx_pid_t pid)
{
    return pid != ngx_pid && kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH;
}


/* Last thing a worker does: its gauges leave the sums with it. */

void
ngx_agentlocator_metrics_exit_worker(void)
{
    ngx_agentlocator_metrics_slot_t  *slot;

    slot = ngx_agentlocator_metrics_worker.slot;

    if (slot == NULL) {
        return;
    }

    ngx_agentlocator_metrics_worker.slot = NULL;

    slot->owner = 0;
    ngx_memory_barrier();
    ngx_memzero((void *) slot->gauge, sizeof(slot->gauge));

    (void) ngx_atomic_cmp_set(&slot->pid, (ngx_atomic_uint_t) ngx_pid, 0);
}


/* This worker's gauges, as it sees them now, into its slot. */

static void
ngx_agentlocator_metrics_publish(void)
{
    ngx_uint_t                        i;
    ngx_atomic_t                     *g;
    ngx_agentlocator_pg_status_t      pg;
    ngx_agentlocator_spool_status_t   spool;

    if (ngx_agentlocator_metrics_worker.slot == NULL) {
        return;
    }

    ngx_agentlocator_pg_status(&pg);
    ngx_agentlocator_spool_status(&spool);

    g = ngx_agentlocator_metrics_worker.slot->gauge;

    g[NGX_AGENTLOCATOR_G_STREAMS] = ngx_agentlocator_metrics_worker.streams;

    for (i = 0; i < NGX_AGENTLOCATOR_PG_STATES; i++) {
        g[NGX_AGENTLOCATOR_G_DB_STATE + i] = pg.by_state[i];
    }

    g[NGX_AGENTLOCATOR_G_DB_WRITES] = pg.queued;
    g[NGX_AGENTLOCATOR_G_DB_READS] = pg.reads;
    g[NGX_AGENTLOCATOR_G_DB_IN_FLIGHT] = pg.in_flight;
    g[NGX_AGENTLOCATOR_G_SPOOL_FILES] = spool.files;
    g[NGX_AGENTLOCATOR_G_SPOOL_BYTES] = (ngx_atomic_uint_t) spool.bytes;
    g[NGX_AGENTLOCATOR_G_SPOOL_UNREAD] = (ngx_atomic_uint_t) spool.unread;
}


/*
 * Also while exiting: an old worker that drains its streams for hours
 * keeps its queues' gauges true.  The timer is cancelable, so it never
 * holds the exit back.
 */

static void
ngx_agentlocator_metrics_publish_handler(ngx_event_t *ev)
{
    ngx_agentlocator_metrics_publish();

    ngx_add_timer(ev, NGX_AGENTLOCATOR_METRICS_PUBLISH);
}


/* The counting calls, from the rest of the module. */

void
ngx_agentlocator_metrics_streams(ngx_int_t delta)
{
    ngx_agentlocator_metrics_worker_t  *w;

    w = &ngx_agentlocator_metrics_worker;

    w->streams += delta;

    if (w->slot) {
        w->slot->gauge[NGX_AGENTLOCATOR_G_STREAMS] = w->streams;
    }
}


void
ngx_agentlocator_metrics_ws_error(const char *error)
{
    ngx_uint_t                      i;
    ngx_agentlocator_metrics_sh_t  *sh;

    sh = ngx_agentlocator_metrics_worker.sh;

    if (sh == NULL) {
        return;
    }

    for (i = 0; i < NGX_AGENTLOCATOR_WS_REASONS - 1; i++) {
        if (error
            && ngx_strcmp(error, ngx_agentlocator_metrics_ws_reasons[i].error)
               == 0)
        {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->ws_errors[i], 1);
}


void
ngx_agentlocator_metrics_redirect(ngx_uint_t reason, const char *outcome)
{
    ngx_uint_t                      i;
    ngx_agentlocator_metrics_sh_t  *sh;

    sh = ngx_agentlocator_metrics_worker.sh;

    if (sh == NULL || reason == NGX_AGENTLOCATOR_REASON_NONE
        || reason > NGX_AGENTLOCATOR_REDIRECT_REASONS)
    {
        return;
    }

    for (i = 0; i < NGX_AGENTLOCATOR_OUTCOMES; i++) {
        if (ngx_strcmp(outcome, ngx_agentlocator_metrics_outcomes[i]) == 0) {
            (void) ngx_atomic_fetch_add(
                       &sh->redirects[(reason - 1) * NGX_AGENTLOCATOR_OUTCOMES
                                      + i], 1);
            return;
        }
    }
}


void
ngx_agentlocator_metrics_rest(ngx_agentlocator_http_result_t *result,
    ngx_msec_t ms)
{
    ngx_uint_t                      i, res;
    ngx_agentlocator_metrics_sh_t  *sh;

    sh = ngx_agentlocator_metrics_worker.sh;

    if (sh == NULL) {
        return;
    }

    res = ngx_agentlocator_metrics_rest_result(result);

    (void) ngx_atomic_fetch_add(&sh->rest[res], 1);

    if (res == NGX_AGENTLOCATOR_REST_ABORTED) {
        /* not an answer: the worker let it go */
        return;
    }

    for (i = 0; i < NGX_AGENTLOCATOR_REST_BUCKETS; i++) {
        if (ms <= ngx_agentlocator_metrics_rest_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->rest_le[i], 1);
    (void) ngx_atomic_fetch_add(&sh->rest_ms, (ngx_atomic_int_t) ms);
}


static ngx_uint_t
ngx_agentlocator_metrics_rest_result(ngx_agentlocator_http_result_t *result)
{
    ngx_uint_t  status;

    if (result->aborted) {
        return NGX_AGENTLOCATOR_REST_ABORTED;
    }

    if (result->error) {
        return result->curl_code == CURLE_OPERATION_TIMEDOUT
               ? NGX_AGENTLOCATOR_REST_TIMEOUT : NGX_AGENTLOCATOR_REST_NETWORK;
    }

    status = result->status;

    if (status >= 200 && status < 300) {
        return NGX_AGENTLOCATOR_REST_SUCCESS;
    }

    if (status == 429) {
        return NGX_AGENTLOCATOR_REST_RATE_LIMITED;
    }

    if (status >= 400 && status < 500) {
        return NGX_AGENTLOCATOR_REST_CLIENT;
    }

    if (status >= 500 && status < 600) {
        return NGX_AGENTLOCATOR_REST_SERVER;
    }

    return NGX_AGENTLOCATOR_REST_OTHER;
}


void
ngx_agentlocator_metrics_crm(ngx_uint_t result)
{
    ngx_agentlocator_metrics_sh_t  *sh;

    sh = ngx_agentlocator_metrics_worker.sh;

    if (sh == NULL || result >= NGX_AGENTLOCATOR_CRM_RESULTS) {
        return;
    }

    (void) ngx_atomic_fetch_add(&sh->crm[result], 1);
}


void
ngx_agentlocator_metrics_transcribe(ngx_uint_t result)
{
    ngx_agentlocator_metrics_sh_t  *sh;

    sh = ngx_agentlocator_metrics_worker.sh;

    if (sh == NULL || result >= NGX_AGENTLOCATOR_TX_RESULTS) {
        return;
    }

    (void) ngx_atomic_fetch_add(&sh->tx[result], 1);
}


ngx_int_t
ngx_agentlocator_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        body;
    ngx_agentlocator_registry_t     *reg;
    ngx_agentlocator_metrics_sh_t   *sh;
    ngx_agentlocator_main_conf_t    *amcf;
    ngx_agentlocator_metrics_ctx_t  *ctx;
    ngx_agentlocator_metrics_out_t   out;
    ngx_agentlocator_metrics_sum_t   sum;

    rc = ngx_agentlocator_allow_methods(r, NGX_HTTP_GET|NGX_HTTP_HEAD,
                                        "GET, HEAD");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);

    ctx = amcf->metrics_zone->data;
    sh = ctx->sh;

    reg = ngx_agentlocator_registry_get(amcf);

    /* this worker's own gauges as of now, the others' as of their last */
    ngx_agentlocator_metrics_publish();
    ngx_agentlocator_metrics_sum(sh, &sum);

    body.data = ngx_pnalloc(r->pool, NGX_AGENTLOCATOR_METRICS_MAX_BODY);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out.pos = body.data;
    out.last = body.data + NGX_AGENTLOCATOR_METRICS_MAX_BODY;

    ngx_agentlocator_metrics_family(&out, "agentlocator_workers", "gauge",
        "Worker processes whose gauges are summed here, old ones still "
        "serving streams after a reload included.");
    ngx_agentlocator_metrics_print(&out, "agentlocator_workers %ui\n",
                                   sum.workers);

    if (reg) {
        ngx_agentlocator_metrics_registry(&out, reg);
        ngx_agentlocator_metrics_media(&out, reg, sh, &sum);
    }

    ngx_agentlocator_metrics_watchdog(&out, sh);

    if (amcf->pg_conninfo.len) {
        ngx_agentlocator_metrics_database(&out, sh, &sum);
    }

    if (amcf->spool) {
        ngx_agentlocator_metrics_spool(&out, &sum);
    }

    if (amcf->transcribe) {
        ngx_agentlocator_metrics_transcriptions(&out, sh);
    }

    if (out.pos == out.last) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "agentlocator_metrics: the answer outgrew its %uz "
                      "bytes", (size_t) NGX_AGENTLOCATOR_METRICS_MAX_BODY);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.len = out.pos - body.data;

    return ngx_agentlocator_reply(r, NGX_HTTP_OK,
                                  &ngx_agentlocator_metrics_type, &body);
}


/*
 * The slots of live workers.  A slot whose pid is gone is a worker that
 * died: left out from the moment it died, not from when it is replaced.
 */

static void
ngx_agentlocator_metrics_sum(ngx_agentlocator_metrics_sh_t *sh,
    ngx_agentlocator_metrics_sum_t *sum)
{
    ngx_uint_t                        i, j;
    ngx_atomic_uint_t                 pid;
    ngx_agentlocator_metrics_slot_t  *slot;

    ngx_memzero(sum, sizeof(ngx_agentlocator_metrics_sum_t));

    for (i = 0; i < NGX_AGENTLOCATOR_METRICS_SLOTS; i++) {
        slot = &sh->slot[i];

        pid = slot->pid;

        if (pid == 0 || slot->owner != pid
            || ngx_agentlocator_metrics_dead((ngx_pid_t) pid))
        {
            continue;
        }

        sum->workers++;

        for (j = 0; j < NGX_AGENTLOCATOR_GAUGES; j++) {
            sum->gauge[j] += slot->gauge[j];
        }
    }
}


static void
ngx_agentlocator_metrics_registry(ngx_agentlocator_metrics_out_t *out,
    ngx_agentlocator_registry_t *reg)
{
    ngx_uint_t                          i;
    ngx_uint_t                          states[NGX_AGENTLOCATOR_CALL_FALLBACK
                                               + 1];
    ngx_agentlocator_registry_usage_t   usage;

    ngx_agentlocator_registry_states(reg, states,
                                     NGX_AGENTLOCATOR_CALL_FALLBACK + 1);
    ngx_agentlocator_registry_usage(reg, &usage);

    ngx_agentlocator_metrics_family(out, "agentlocator_calls", "gauge",
        "Calls in the registry zone by state, counted under its lock.");

    for (i = NGX_AGENTLOCATOR_CALL_ARMED;
         i <= NGX_AGENTLOCATOR_CALL_FALLBACK;
         i++)
    {
        ngx_agentlocator_metrics_print(out,
            "agentlocator_calls{state=\"%s\"} %ui\n",
            ngx_agentlocator_call_state_name(i), states[i]);
    }

    ngx_agentlocator_metrics_family(out, "agentlocator_zone_size_bytes",
        "gauge", "Size of the agentlocator_zone.");
    ngx_agentlocator_metrics_print(out, "agentlocator_zone_size_bytes %uz\n",
                                   usage.size);

    ngx_agentlocator_metrics_family(out, "agentlocator_zone_used_bytes",
        "gauge", "Bytes of the zone's pages in use: its tables and the "
        "calls' entries.");
    ngx_agentlocator_metrics_print(out, "agentlocator_zone_used_bytes %uz\n",
        (size_t) (usage.pages_total - usage.pages_free) * ngx_pagesize);

    ngx_agentlocator_metrics_family(out, "agentlocator_zone_entries", "gauge",
        "Calls in the zone, live or remembered after they ended.");
    ngx_agentlocator_metrics_print(out, "agentlocator_zone_entries %ui\n",
                                   usage.entries);

    ngx_agentlocator_metrics_family(out, "agentlocator_zone_entries_max",
        "gauge", "Calls the zone can hold: its entries and the room left.");
    ngx_agentlocator_metrics_print(out, "agentlocator_zone_entries_max %ui\n",
                                   usage.capacity);

    ngx_agentlocator_metrics_family(out, "agentlocator_zone_full_total",
        "counter", "Calls answered without the watchdog: no room in the zone "
        "(ZONE_FULL).");
    ngx_agentlocator_metrics_print(out, "agentlocator_zone_full_total %ui\n",
                                   usage.full);

    ngx_agentlocator_metrics_family(out, "agentlocator_zone_evicted_total",
        "counter", "Ended calls evicted from the zone to make room.");
    ngx_agentlocator_metrics_print(out,
                                   "agentlocator_zone_evicted_total %ui\n",
                                   usage.evicted);
}


/* Counted in the registry zone since it was made, and ours (reasons). */

static void
ngx_agentlocator_metrics_media(ngx_agentlocator_metrics_out_t *out,
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_metrics_sh_t *sh,
    ngx_agentlocator_metrics_sum_t *sum)
{
    ngx_uint_t                       i;
    ngx_agentlocator_registry_sh_t  *rsh;

    rsh = reg->sh;

    ngx_agentlocator_metrics_family(out, "agentlocator_media_streams_total",
        "counter", "Media stream WebSockets accepted (101 sent).");
    ngx_agentlocator_metrics_print(out,
                                   "agentlocator_media_streams_total %uA\n",
                                   rsh->ws_accepted);

    ngx_agentlocator_metrics_family(out, "agentlocator_media_streams_open",
        "gauge", "Media streams open now, in all workers.");
    ngx_agentlocator_metrics_print(out,
        "agentlocator_media_streams_open %uA\n",
        sum->gauge[NGX_AGENTLOCATOR_G_STREAMS]);

    ngx_agentlocator_metrics_family(out, "agentlocator_media_frames_total",
        "counter", "Media messages received (Twilio's 20 ms audio frames); "
        "each stream adds its own every 200 ms and at its end.");
    ngx_agentlocator_metrics_print(out,
                                   "agentlocator_media_frames_total %uA\n",
                                   rsh->ws_frames);

    ngx_agentlocator_metrics_family(out, "agentlocator_media_bytes_total",
        "counter", "Audio bytes received in media messages, decoded.");
    ngx_agentlocator_metrics_print(out,
                                   "agentlocator_media_bytes_total %uA\n",
                                   rsh->ws_bytes);

    ngx_agentlocator_metrics_family(out,
        "agentlocator_media_bad_messages_total", "counter",
        "Stream messages that could not be used (WS_BAD_MESSAGE); the "
        "stream goes on.");
    ngx_agentlocator_metrics_print(out,
                                   "agentlocator_media_bad_messages_total "
                                   "%uA\n", rsh->ws_bad_messages);

    ngx_agentlocator_metrics_family(out,
        "agentlocator_media_protocol_errors_total", "counter",
        "Streams closed for a WebSocket protocol error (WS_PROTOCOL_ERROR), "
        "by reason.");

    for (i = 0; i < NGX_AGENTLOCATOR_WS_REASONS; i++) {
        ngx_agentlocator_metrics_print(out,
            "agentlocator_media_protocol_errors_total{reason=\"%s\"} %uA\n",
            ngx_agentlocator_metrics_ws_reasons[i].label, sh->ws_errors[i]);
    }
}


static void
ngx_agentlocator_metrics_watchdog(ngx_agentlocator_metrics_out_t *out,
    ngx_agentlocator_metrics_sh_t *sh)
{
    ngx_uint_t         i, j;
    ngx_atomic_uint_t  n;

    ngx_agentlocator_metrics_family(out,
        "agentlocator_watchdog_redirects_total", "counter",
        "The watchdog's redirect attempts by reason and outcome "
        "(WATCHDOG_REDIRECT).");

    for (i = 0; i < NGX_AGENTLOCATOR_REDIRECT_REASONS; i++) {
        for (j = 0; j < NGX_AGENTLOCATOR_OUTCOMES; j++) {
            ngx_agentlocator_metrics_print(out,
                "agentlocator_watchdog_redirects_total{reason=\"%s\","
                "outcome=\"%s\"} %uA\n",
                ngx_agentlocator_reason_name(i + 1),
                ngx_agentlocator_metrics_outcomes[j],
                sh->redirects[i * NGX_AGENTLOCATOR_OUTCOMES + j]);
        }
    }

    ngx_agentlocator_metrics_family(out,
        "agentlocator_watchdog_rest_requests_total", "counter",
        "Requests to Twilio's REST API to redirect a call, by result.");

    for (i = 0; i < NGX_AGENTLOCATOR_REST_RESULTS; i++) {
        ngx_agentlocator_metrics_print(out,
            "agentlocator_watchdog_rest_requests_total{result=\"%s\"} %uA\n",
            ngx_agentlocator_metrics_rest_results[i], sh->rest[i]);
    }

    ngx_agentlocator_metrics_family(out,
        "agentlocator_watchdog_rest_duration_seconds", "histogram",
        "Time from a REST redirect request's start to its answer or "
        "error.");

    for (n = 0, i = 0; i <= NGX_AGENTLOCATOR_REST_BUCKETS; i++) {
        n += sh->rest_le[i];

        ngx_agentlocator_metrics_print(out,
            "agentlocator_watchdog_rest_duration_seconds_bucket{le=\"%s\"} "
            "%uA\n", ngx_agentlocator_metrics_rest_le[i], n);
    }

    ngx_agentlocator_metrics_print(out,
        "agentlocator_watchdog_rest_duration_seconds_sum %uA.%03uA\n",
        sh->rest_ms / 1000, sh->rest_ms % 1000);
    ngx_agentlocator_metrics_print(out,
        "agentlocator_watchdog_rest_duration_seconds_count %uA\n", n);
}


static void
ngx_agentlocator_metrics_database(ngx_agentlocator_metrics_out_t *out,
    ngx_agentlocator_metrics_sh_t *sh, ngx_agentlocator_metrics_sum_t *sum)
{
    ngx_uint_t  i;

    ngx_agentlocator_metrics_family(out, "agentlocator_db_connections",
        "gauge", "The CRM database's connections in all workers' pools, by "
        "state (ready: up; the others: on their way up or down).");

    for (i = 0; i < NGX_AGENTLOCATOR_PG_STATES; i++) {
        ngx_agentlocator_metrics_print(out,
            "agentlocator_db_connections{state=\"%s\"} %uA\n",
            ngx_agentlocator_pg_state_name(i),
            sum->gauge[NGX_AGENTLOCATOR_G_DB_STATE + i]);
    }

    ngx_agentlocator_metrics_family(out, "agentlocator_db_writes_queued",
        "gauge", "CRM writes waiting in memory for a connection.");
    ngx_agentlocator_metrics_print(out, "agentlocator_db_writes_queued %uA\n",
                                   sum->gauge[NGX_AGENTLOCATOR_G_DB_WRITES]);

    ngx_agentlocator_metrics_family(out, "agentlocator_db_reads_queued",
        "gauge", "API reads waiting for a connection.");
    ngx_agentlocator_metrics_print(out, "agentlocator_db_reads_queued %uA\n",
                                   sum->gauge[NGX_AGENTLOCATOR_G_DB_READS]);

    ngx_agentlocator_metrics_family(out, "agentlocator_db_in_flight",
        "gauge", "Writes and reads sent to the database, not answered yet.");
    ngx_agentlocator_metrics_print(out, "agentlocator_db_in_flight %uA\n",
                                   sum->gauge[NGX_AGENTLOCATOR_G_DB_IN_FLIGHT]);

    ngx_agentlocator_metrics_family(out, "agentlocator_crm_writes_total",
        "counter", "CRM writes by result: done, failed (refused for good, "
        "CRM_WRITE_FAILED) or dropped (no room, no spool: CRM_QUEUE_FULL).");

    for (i = 0; i < NGX_AGENTLOCATOR_CRM_RESULTS; i++) {
        ngx_agentlocator_metrics_print(out,
            "agentlocator_crm_writes_total{result=\"%s\"} %uA\n",
            ngx_agentlocator_metrics_crm_results[i], sh->crm[i]);
    }
}


static void
ngx_agentlocator_metrics_spool(ngx_agentlocator_metrics_out_t *out,
    ngx_agentlocator_metrics_sum_t *sum)
{
    ngx_agentlocator_metrics_family(out, "agentlocator_spool_files", "gauge",
        "Spool journals holding writes the database has not taken.");
    ngx_agentlocator_metrics_print(out, "agentlocator_spool_files %uA\n",
                                   sum->gauge[NGX_AGENTLOCATOR_G_SPOOL_FILES]);

    ngx_agentlocator_metrics_family(out, "agentlocator_spool_bytes", "gauge",
        "Bytes of those journals.");
    ngx_agentlocator_metrics_print(out, "agentlocator_spool_bytes %uA\n",
                                   sum->gauge[NGX_AGENTLOCATOR_G_SPOOL_BYTES]);

    ngx_agentlocator_metrics_family(out, "agentlocator_spool_unread_bytes",
        "gauge", "Bytes of writes still only on disk, not read back into "
        "the queue yet.");
    ngx_agentlocator_metrics_print(out, "agentlocator_spool_unread_bytes %uA\n",
                                   sum->gauge[NGX_AGENTLOCATOR_G_SPOOL_UNREAD]);
}


/*
 * One count per log line.  A job ends once: transcribed, failed (it may
 * pass: the sweep takes the recording again) or given_up; a job that
 * could not start (no free one) is a failed too.  retried and skipped are
 * the jobs' other lines, resumed and abandoned the sweep's.
 */

static void
ngx_agentlocator_metrics_transcriptions(ngx_agentlocator_metrics_out_t *out,
    ngx_agentlocator_metrics_sh_t *sh)
{
    ngx_uint_t  i;

    ngx_agentlocator_metrics_family(out, "agentlocator_transcriptions_total",
        "counter", "Transcription events by result: transcribed (a "
        "transcript handed to the CRM as a write, TRANSCRIPT), retried (a "
        "fetch or post failed, tried again by its job, TRANSCRIBE_RETRY), "
        "failed (a job ended or could not start; a sweep takes its "
        "recording again, TRANSCRIBE_FAILED), given_up (a job ended for "
        "good: it would fail the same way again, TRANSCRIBE_FAILED), resumed "
        "(a recording taken up again by the sweep, TRANSCRIBE_RESUMED), "
        "abandoned (out of attempts or a day old, given up by the sweep, "
        "TRANSCRIBE_ABANDONED), skipped (a recording not sent: its URL not "
        "Twilio's API, its WAV not this host's, TRANSCRIBE_SKIPPED).");

    for (i = 0; i < NGX_AGENTLOCATOR_TX_RESULTS; i++) {
        ngx_agentlocator_metrics_print(out,
            "agentlocator_transcriptions_total{result=\"%s\"} %uA\n",
            ngx_agentlocator_metrics_tx_results[i], sh->tx[i]);
    }
}


static void
ngx_agentlocator_metrics_family(ngx_agentlocator_metrics_out_t *out,
    const char *name, const char *type, const char *help)
{
    ngx_agentlocator_metrics_print(out, "# HELP %s %s\n# TYPE %s %s\n",
                                   name, help, name, type);
}


static void
ngx_agentlocator_metrics_print(ngx_agentlocator_metrics_out_t *out,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    out->pos = ngx_vslprintf(out->pos, out->last, fmt, args);
    va_end(args);
}
