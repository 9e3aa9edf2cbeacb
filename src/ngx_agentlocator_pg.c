
/*
 * The CRM's PostgreSQL connections (SPEC §7): each worker keeps its own
 * small pool, every connection nonblocking from its first byte
 * (PQconnectStart, PQconnectPoll), its socket an nginx connection driven by
 * the event loop.  A connection that fails or breaks is made again after a
 * backoff (a cancelable timer: a quitting worker never waits for it).  On
 * each new connection the schema's version is read, so a database older
 * than this module needs is logged (CRM_SCHEMA_OLD) and /readyz says so.
 *
 * Writes (ngx_agentlocator_pg_write) are appended to the spool first
 * when there is one (ngx_agentlocator_spool.c), then queue in the worker,
 * bounded (what the bound leaves out waits in the spool), and go out in
 * batches on whichever connection is free, in libpq's pipeline mode: one
 * round trip per batch, each write its own transaction (a sync after each),
 * so that one write's failure is its own, and two workers' batches never
 * deadlock on each other's rows.  A write whose connection broke, or that
 * the database asked to retry (a serialization failure, a shutdown), goes
 * back to the head of the queue: every write is idempotent.  A write the
 * database refuses for good (a constraint) is logged and not retried.
 */


#include "ngx_agentlocator.h"

#include <libpq-fe.h>
#include <netdb.h>


#define NGX_AGENTLOCATOR_PG_BACKOFF_MIN   100      /* ms, doubled per failure */
#define NGX_AGENTLOCATOR_PG_BACKOFF_MAX   30000

/*
 * PQconnectPoll() has no clock: a server that never answers needs ours,
 * the conninfo's connect_timeout (seconds) or this
 */
#define NGX_AGENTLOCATOR_PG_CONNECT_TIMEOUT  10000

/* what sql/ holds: the highest NNN of sql/NNN_*.sql */
#define NGX_AGENTLOCATOR_SCHEMA_VERSION   3

#define NGX_AGENTLOCATOR_PG_VERSION_SQL                                       \
    "SELECT coalesce(max(version), 0) FROM schema_version"

/* writes a worker holds in memory while the database is slow or away */
#define NGX_AGENTLOCATOR_PG_QUEUE_MAX     10000

/* writes per pipeline: one round trip */
#define NGX_AGENTLOCATOR_PG_BATCH         64

/* batches in a row a write was retried in before the connection backs off */
#define NGX_AGENTLOCATOR_PG_RETRIES       5


/*
 * A batch holds writes and reads; each begins with its queue link and its
 * kind.
 */

#define NGX_AGENTLOCATOR_PG_WRITE         0
#define NGX_AGENTLOCATOR_PG_READ          1

typedef struct {
    ngx_queue_t                 queue;
    ngx_uint_t                  kind;
} ngx_agentlocator_pg_entry_t;


typedef struct {
    ngx_queue_t                 queue;
    ngx_uint_t                  kind;     /* NGX_AGENTLOCATOR_PG_WRITE */
    ngx_agentlocator_crm_statement_t  *st;
    void                       *spooled;  /* its journal; NULL: memory only */
    unsigned                    refused:1; /* by the database, for good */
    unsigned                    retry:1;   /* the database said: again */
    int                         n;
    const char                 *values[NGX_AGENTLOCATOR_PG_MAX_PARAMS];
    int                         lengths[NGX_AGENTLOCATOR_PG_MAX_PARAMS];
    u_char                      data[1];
} ngx_agentlocator_pg_write_t;


/*
 * A read: up to NGX_AGENTLOCATOR_PG_READ_MAX statements sent together and
 * answered together, to whoever asked, unless they cancelled it.
 */

struct ngx_agentlocator_pg_read_s {
    ngx_queue_t                 queue;
    ngx_uint_t                  kind;     /* NGX_AGENTLOCATOR_PG_READ */
    ngx_uint_t                  nq;
    ngx_uint_t                  got;      /* results so far */
    unsigned                    sent:1;   /* in a connection's batch */
    unsigned                    cancelled:1;
    ngx_agentlocator_pg_read_pt done;
    void                       *data;
    PGresult                   *res[NGX_AGENTLOCATOR_PG_READ_MAX];
    ngx_agentlocator_crm_statement_t  *st[NGX_AGENTLOCATOR_PG_READ_MAX];
    int                         n[NGX_AGENTLOCATOR_PG_READ_MAX];
    const char                 *values[NGX_AGENTLOCATOR_PG_READ_MAX]
                                      [NGX_AGENTLOCATOR_PG_MAX_PARAMS];
    int                         lengths[NGX_AGENTLOCATOR_PG_READ_MAX]
                                       [NGX_AGENTLOCATOR_PG_MAX_PARAMS];
    u_char                      buf[1];
};


typedef enum {
    NGX_AGENTLOCATOR_PG_IDLE = 0,         /* not connected, no timer */
    NGX_AGENTLOCATOR_PG_WAITING,          /* the backoff timer runs */
    NGX_AGENTLOCATOR_PG_CONNECTING,
    NGX_AGENTLOCATOR_PG_CHECKING,         /* reading the schema version */
    NGX_AGENTLOCATOR_PG_PREPARING,        /* preparing the statements */
    NGX_AGENTLOCATOR_PG_READY
} ngx_agentlocator_pg_state_e;

/* fails to compile unless NGX_AGENTLOCATOR_PG_STATES counts them all */
typedef char  ngx_agentlocator_pg_states_check[
    NGX_AGENTLOCATOR_PG_READY + 1 == NGX_AGENTLOCATOR_PG_STATES ? 1 : -1];


typedef struct {
    PGconn                     *conn;
    ngx_connection_t           *c;        /* nginx's view of PQsocket() */
    ngx_event_t                 backoff;
    ngx_event_t                 deadline; /* of connecting */
    ngx_msec_t                  delay;    /* the next backoff */
    ngx_uint_t                  state;    /* _pg_state_e */
    ngx_uint_t                  index;
    ngx_uint_t                  checking; /* the version query is out */
    ngx_queue_t                 batch;    /* writes sent, in order */
    ngx_uint_t                  nbatch;
    ngx_queue_t                *cursor;   /* whose results come next */
    ngx_uint_t                  retries;  /* batches in a row */
    ngx_uint_t                  later;    /* a retry wants the backoff */
    ngx_uint_t                  failed;   /* a statement did not prepare */
    char                        sqlstate[6];
} ngx_agentlocator_pg_conn_t;


typedef struct {
    ngx_agentlocator_pg_conn_t  *conns;
    ngx_uint_t                   nconns;
    ngx_msec_t                   connect_timeout;
    const char                 **keywords;   /* the conninfo, host looked up */
    const char                 **values;
    ngx_int_t                    schema;     /* -1: not read yet */
    ngx_uint_t                   failures;   /* in a row, all connections */
    ngx_log_t                   *log;
    ngx_queue_t                  writes;
    ngx_queue_t                  reads;      /* waiting for a connection */
    ngx_uint_t                   nreads;
    ngx_uint_t                   queued;
    ngx_uint_t                   done;
    ngx_uint_t                   failed;     /* refused by the database */
    ngx_uint_t                   dropped;    /* no room in the queue */
} ngx_agentlocator_pg_pool_t;


static void ngx_agentlocator_pg_connect(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_poll(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_check(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_event(ngx_event_t *ev);
static void ngx_agentlocator_pg_backoff_handler(ngx_event_t *ev);
static void ngx_agentlocator_pg_deadline_handler(ngx_event_t *ev);
static ngx_int_t ngx_agentlocator_pg_watch(ngx_agentlocator_pg_conn_t *pc,
    ngx_uint_t want_write);
static void ngx_agentlocator_pg_unwatch(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_fail(ngx_agentlocator_pg_conn_t *pc,
    const char *what);
static void ngx_agentlocator_pg_close(ngx_agentlocator_pg_conn_t *pc);
static u_char *ngx_agentlocator_pg_error(PGconn *conn, u_char *buf,
    size_t size);
static void ngx_agentlocator_pg_notice(void *arg, const char *message);
static u_char *ngx_agentlocator_pg_result_error(PGresult *res, u_char *buf,
    size_t size);
static u_char *ngx_agentlocator_pg_one_line(const char *msg, u_char *buf,
    size_t size);
static void ngx_agentlocator_pg_checked(ngx_agentlocator_pg_conn_t *pc,
    PGresult *res);
static void ngx_agentlocator_pg_ready(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_prepared(ngx_agentlocator_pg_conn_t *pc);
static char *ngx_agentlocator_pg_statement_name(
    ngx_agentlocator_crm_statement_t *st, u_char *buf);
static void ngx_agentlocator_pg_up(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_results(ngx_agentlocator_pg_conn_t *pc);
static ngx_uint_t ngx_agentlocator_pg_result(ngx_agentlocator_pg_conn_t *pc,
    PGresult *res);
static void ngx_agentlocator_pg_deliver(ngx_queue_t *ready);
static void ngx_agentlocator_pg_read_free(ngx_agentlocator_pg_read_t *rd);
static void ngx_agentlocator_pg_reads_fail(const char *why);
static void ngx_agentlocator_pg_batch_done(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_requeue(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_taken(ngx_agentlocator_pg_write_t *w);
static void ngx_agentlocator_pg_dispatch(void);
static void ngx_agentlocator_pg_send(ngx_agentlocator_pg_conn_t *pc,
    ngx_uint_t reads);
static ngx_int_t ngx_agentlocator_pg_flush(ngx_agentlocator_pg_conn_t *pc);
static ngx_agentlocator_pg_write_t *ngx_agentlocator_pg_write_new(
    ngx_agentlocator_crm_statement_t *st, ngx_uint_t n, ngx_str_t *params);


static ngx_agentlocator_pg_pool_t  *ngx_agentlocator_pg;

#define NGX_AGENTLOCATOR_PG_NKEEPALIVE  4

static const char  *ngx_agentlocator_pg_keepalive[][2] = {
    { "keepalives_idle", "30" },
    { "keepalives_interval", "10" },
    { "keepalives_count", "3" },
    { "tcp_user_timeout", "60000" }
};

static char *ngx_agentlocator_pg_resolve(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf);


char *
ngx_agentlocator_pg_conf(ngx_conf_t *cf, ngx_agentlocator_main_conf_t *amcf)
{
    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t   i;
    const char  *err;

    if (amcf->pg_conninfo.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    err = ngx_agentlocator_secret_load(cf, &value[1], &amcf->pg_conninfo);
    if (err) {
        /* the value may hold a password: name only where it came from */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"agentlocator_postgres\" conninfo %s", err);
        return NGX_CONF_ERROR;
    }

    amcf->pg_pool = 2;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "pool=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            if (n < 1 || n > 32) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "agentlocator_postgres \"%V\": pool is "
                                   "1 to 32 connections per worker",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            amcf->pg_pool = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_postgres parameter \"%V\", "
                           "expected \"pool=N\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return ngx_agentlocator_pg_resolve(cf, amcf);
}


/*
 * libpq looks host names up with getaddrinfo(), which blocks, inside
 * PQconnectStart(): unless "hostaddr" is given.  So the names are looked
 * up here, while the configuration is read (as nginx does for upstream
 * servers; again at every reload), and given to libpq as "hostaddr", "host"
 * staying for TLS and .pgpass.  The conninfo becomes keyword/value arrays
 * for PQconnectStartParams().
 */

static char *
ngx_agentlocator_pg_resolve(ngx_conf_t *cf, ngx_agentlocator_main_conf_t *amcf)
{
    int                 rc;
    char               *errmsg, **kw, **val, *hosts, *host, *next;
    u_char             *conninfo, *p;
    size_t              len;
    ngx_uint_t          n, i, h, given;
    PQconninfoOption   *opts, *o;
    struct addrinfo     hints, *ai;
    u_char              text[NGX_SOCKADDR_STRLEN];
    u_char              addrs[1024];

    conninfo = ngx_pnalloc(cf->pool, amcf->pg_conninfo.len + 1);
    if (conninfo == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_cpystrn(conninfo, amcf->pg_conninfo.data,
                       amcf->pg_conninfo.len + 1);

    errmsg = NULL;
    opts = PQconninfoParse((char *) conninfo, &errmsg);

    if (opts == NULL) {
        /* libpq's message names an option, never a value */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"agentlocator_postgres\" conninfo is invalid: %s",
                           errmsg ? errmsg : "out of memory");
        PQfreemem(errmsg);
        return NGX_CONF_ERROR;
    }

    n = 0;
    hosts = NULL;
    given = 0;

    for (o = opts; o->keyword; o++) {
        if (o->val && o->val[0]) {
            n++;

            if (ngx_strcmp(o->keyword, "host") == 0) {
                hosts = o->val;

            } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
                given = 1;

            } else if (ngx_strcmp(o->keyword, "connect_timeout") == 0) {
                rc = ngx_atoi((u_char *) o->val, ngx_strlen(o->val));
                if (rc > 0) {
                    amcf->pg_connect_timeout = (ngx_msec_t) rc * 1000;
                }
            }
        }
    }

    if (given) {
        hosts = NULL;   /* hostaddr given: nothing to look up */
    }

    kw = ngx_pcalloc(cf->pool,
                     (n + 2 + NGX_AGENTLOCATOR_PG_NKEEPALIVE) * sizeof(char *));
    val = ngx_pcalloc(cf->pool,
                      (n + 2 + NGX_AGENTLOCATOR_PG_NKEEPALIVE)
                      * sizeof(char *));
    if (kw == NULL || val == NULL) {
        PQconninfoFree(opts);
        return NGX_CONF_ERROR;
    }

    i = 0;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        len = ngx_strlen(o->keyword) + 1;
        kw[i] = ngx_pnalloc(cf->pool, len);
        len = ngx_strlen(o->val) + 1;
        val[i] = ngx_pnalloc(cf->pool, len);
        if (kw[i] == NULL || val[i] == NULL) {
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }

        (void) ngx_cpystrn((u_char *) kw[i], (u_char *) o->keyword,
                           ngx_strlen(o->keyword) + 1);
        (void) ngx_cpystrn((u_char *) val[i], (u_char *) o->val, len);
        i++;
    }

    if (hosts) {
        /* one hostaddr per host, in order; a socket directory has none */
        p = addrs;
        host = (char *) ngx_pnalloc(cf->pool, ngx_strlen(hosts) + 1);
        if (host == NULL) {
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }

        (void) ngx_cpystrn((u_char *) host, (u_char *) hosts,
                           ngx_strlen(hosts) + 1);

        for (h = 0; host; host = next, h++) {
            next = strchr(host, ',');
            if (next) {
                *next++ = '\0';
            }

            if (h && p < addrs + sizeof(addrs) - 1) {
                *p++ = ',';
            }

            if (host[0] == '/' || host[0] == '@' || host[0] == '\0') {
                continue;
            }

            ngx_memzero(&hints, sizeof(struct addrinfo));
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;

            rc = getaddrinfo(host, NULL, &hints, &ai);

            if (rc != 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"agentlocator_postgres\" host \"%s\" "
                                   "could not be resolved: %s",
                                   host, gai_strerror(rc));
                PQconninfoFree(opts);
                return NGX_CONF_ERROR;
            }

            len = ngx_sock_ntop(ai->ai_addr, ai->ai_addrlen, text,
                                NGX_SOCKADDR_STRLEN, 0);
            freeaddrinfo(ai);

            if ((size_t) (addrs + sizeof(addrs) - 1 - p) < len) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"agentlocator_postgres\" has too many "
                                   "hosts");
                PQconninfoFree(opts);
                return NGX_CONF_ERROR;
            }

            /* ngx_sock_ntop() puts IPv6 in brackets; libpq wants it bare */
            if (text[0] == '[') {
                p = ngx_cpymem(p, text + 1, len - 2);

            } else {
                p = ngx_cpymem(p, text, len);
            }
        }

        *p = '\0';

        kw[i] = "hostaddr";
        val[i] = ngx_pnalloc(cf->pool, p - addrs + 1);
        if (val[i] == NULL) {
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }

        (void) ngx_cpystrn((u_char *) val[i], addrs, p - addrs + 1);
        i++;
    }

    /*
     * A server that vanished without a word (a network cut) must not hold
     * a connection's writes for the kernel's two hours: TCP keepalives
     * find it in about a minute, unless the conninfo says otherwise.
     * Ignored on unix sockets.
     */

    for (h = 0; h < NGX_AGENTLOCATOR_PG_NKEEPALIVE; h++) {
        for (o = opts; o->keyword; o++) {
            if (o->val && o->val[0]
                && ngx_strcmp(o->keyword,
                              ngx_agentlocator_pg_keepalive[h][0]) == 0)
            {
                break;
            }
        }

        if (o->keyword == NULL) {
            kw[i] = (char *) ngx_agentlocator_pg_keepalive[h][0];
            val[i] = (char *) ngx_agentlocator_pg_keepalive[h][1];
            i++;
        }
    }

    kw[i] = NULL;
    val[i] = NULL;

    PQconninfoFree(opts);

    amcf->pg_keywords = kw;
    amcf->pg_values = val;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_agentlocator_pg_init_worker(ngx_cycle_t *cycle)
{
    ngx_uint_t                     i;
    ngx_agentlocator_pg_pool_t    *pool;
    ngx_agentlocator_pg_conn_t    *pc;
    ngx_agentlocator_main_conf_t  *amcf;

    ngx_agentlocator_pg = NULL;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_agentlocator_module);
    if (amcf == NULL || amcf->pg_conninfo.len == 0) {
        return NGX_OK;
    }

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_agentlocator_pg_pool_t));
    if (pool == NULL) {
        return NGX_ERROR;
    }

    pool->conns = ngx_pcalloc(cycle->pool,
                              amcf->pg_pool * sizeof(ngx_agentlocator_pg_conn_t));
    if (pool->conns == NULL) {
        return NGX_ERROR;
    }

    pool->connect_timeout = amcf->pg_connect_timeout
                            ? amcf->pg_connect_timeout
                            : NGX_AGENTLOCATOR_PG_CONNECT_TIMEOUT;
    pool->keywords = (const char **) amcf->pg_keywords;
    pool->values = (const char **) amcf->pg_values;

    pool->nconns = amcf->pg_pool;
    pool->schema = -1;
    pool->log = cycle->log;
    ngx_queue_init(&pool->writes);
    ngx_queue_init(&pool->reads);

    ngx_agentlocator_pg = pool;

    for (i = 0; i < pool->nconns; i++) {
        pc = &pool->conns[i];
        pc->index = i;
        pc->delay = NGX_AGENTLOCATOR_PG_BACKOFF_MIN;

        pc->backoff.handler = ngx_agentlocator_pg_backoff_handler;
        pc->backoff.data = pc;
        pc->backoff.log = cycle->log;
        pc->backoff.cancelable = 1;

        pc->deadline.handler = ngx_agentlocator_pg_deadline_handler;
        pc->deadline.data = pc;
        pc->deadline.log = cycle->log;
        pc->deadline.cancelable = 1;

        ngx_queue_init(&pc->batch);

        ngx_agentlocator_pg_connect(pc);
    }

    return NGX_OK;
}


void
ngx_agentlocator_pg_exit_worker(void)
{
    ngx_uint_t                    i, lost;
    ngx_queue_t                  *q;
    ngx_agentlocator_pg_pool_t   *pool;
    ngx_agentlocator_pg_write_t  *w;

    pool = ngx_agentlocator_pg;

    if (pool == NULL) {
        return;
    }

    for (i = 0; i < pool->nconns; i++) {
        /* sent, their results not seen: maybe done, maybe not */
        ngx_agentlocator_pg_requeue(&pool->conns[i]);
        ngx_agentlocator_pg_close(&pool->conns[i]);
    }

    /* their requests are not answered: the worker is going away */
    while (!ngx_queue_empty(&pool->reads)) {
        q = ngx_queue_head(&pool->reads);
        ngx_queue_remove(q);
        ngx_agentlocator_pg_read_free(
            ngx_queue_data(q, ngx_agentlocator_pg_read_t, queue));
    }

    pool->nreads = 0;
    lost = 0;

    while (!ngx_queue_empty(&pool->writes)) {
        q = ngx_queue_head(&pool->writes);
        ngx_queue_remove(q);
        w = ngx_queue_data(q, ngx_agentlocator_pg_write_t, queue);

        /* a spooled write stays in its journal for the next worker */
        if (w->spooled == NULL) {
            lost++;
        }

        ngx_free(w);
    }

    if (lost) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "CRM_LOST writes=%ui: queued or unanswered when the "
                      "worker exited, and not in a spool", lost);
    }

    ngx_agentlocator_pg = NULL;
}


/*
 * Queues one write: statement "st" (ON CONFLICT, so that doing it twice
 * changes nothing) and its "n" parameters, copied (a NULL data is SQL
 * NULL).  With a spool it is on disk before this returns.  Never blocks
 * on the database, never waits: NGX_DECLINED when there is no database
 * configured, NGX_BUSY when it could be neither spooled nor queued
 * (counted, logged).
 */

ngx_int_t
ngx_agentlocator_pg_write(ngx_agentlocator_crm_statement_t *st, ngx_uint_t n,
    ngx_str_t *params)
{
    void                         *spooled;
    ngx_uint_t                    room;
    ngx_agentlocator_pg_pool_t   *pool;

    pool = ngx_agentlocator_pg;

    if (pool == NULL) {
        return NGX_DECLINED;
    }

    room = (pool->queued < NGX_AGENTLOCATOR_PG_QUEUE_MAX);
    spooled = NULL;

    if (ngx_agentlocator_spool_on()) {
        /* in memory as well only when nothing older waits on disk */
        room = room && !ngx_agentlocator_spool_backlog();

        if (ngx_agentlocator_spool_append(st->name, n, params, room,
                                          &spooled)
            == NGX_OK)
        {
            if (!room) {
                ngx_agentlocator_pg_dispatch();
                return NGX_OK;
            }

        } else {
            room = (pool->queued < NGX_AGENTLOCATOR_PG_QUEUE_MAX);
        }
    }

    if (!room) {
        ngx_agentlocator_metrics_crm(NGX_AGENTLOCATOR_METRICS_CRM_DROPPED);

        if (pool->dropped++ % 1000 == 0) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "CRM_QUEUE_FULL dropped=%ui: %ui writes wait for "
                          "the database; this one (%s) is lost",
                          pool->dropped, pool->queued, st->name);
        }

        return NGX_BUSY;
    }

    if (ngx_agentlocator_pg_load(st, n, params, spooled) != NGX_OK) {
        /* on disk, if there is a spool: the next worker has it */
        return NGX_ERROR;
    }

    ngx_agentlocator_pg_dispatch();

    return NGX_OK;
}


/* A write joins the queue: a new one, or one read back from the spool. */

ngx_int_t
ngx_agentlocator_pg_load(ngx_agentlocator_crm_statement_t *st, ngx_uint_t n,
    ngx_str_t *params, void *spooled)
{
    ngx_agentlocator_pg_write_t  *w;

    w = ngx_agentlocator_pg_write_new(st, n, params);
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->spooled = spooled;

    ngx_queue_insert_tail(&ngx_agentlocator_pg->writes, &w->queue);
    ngx_agentlocator_pg->queued++;

    return NGX_OK;
}


/* The spool found work (a journal left by a worker that is gone). */

void
ngx_agentlocator_pg_kick(void)
{
    if (ngx_agentlocator_pg) {
        ngx_agentlocator_pg_dispatch();
    }
}


static ngx_agentlocator_pg_write_t *
ngx_agentlocator_pg_write_new(ngx_agentlocator_crm_statement_t *st,
    ngx_uint_t n, ngx_str_t *params)
{
    u_char                       *p;
    size_t                        size;
    ngx_uint_t                    i;
    ngx_agentlocator_pg_write_t  *w;

    size = sizeof(ngx_agentlocator_pg_write_t);

    for (i = 0; i < n; i++) {
        size += params[i].len + 1;
    }

    w = ngx_alloc(size, ngx_agentlocator_pg->log);
    if (w == NULL) {
        return NULL;
    }

    w->kind = NGX_AGENTLOCATOR_PG_WRITE;
    w->st = st;
    w->spooled = NULL;
    w->refused = 0;
    w->retry = 0;
    w->n = (int) n;
    p = w->data;

    for (i = 0; i < n; i++) {
        if (params[i].data == NULL) {
            w->values[i] = NULL;
            w->lengths[i] = 0;
            continue;
        }

        w->values[i] = (char *) p;
        w->lengths[i] = (int) params[i].len;
        p = ngx_cpymem(p, params[i].data, params[i].len);
        *p++ = '\0';
    }

    return w;
}


/*
 * Each free connection takes a batch of the oldest writes; the queue is
 * topped up from the spool first.
 */

static void
ngx_agentlocator_pg_dispatch(void)
{
    ngx_uint_t                    i, idle, share;
    ngx_agentlocator_pg_conn_t   *pc;
    ngx_agentlocator_pg_pool_t   *pool;

    pool = ngx_agentlocator_pg;

    if (pool->queued < NGX_AGENTLOCATOR_PG_QUEUE_MAX / 2
        && ngx_agentlocator_spool_backlog())
    {
        ngx_agentlocator_spool_load(NGX_AGENTLOCATOR_PG_QUEUE_MAX
                                    - pool->queued);
    }

    /*
     * the reads waiting are shared out among the idle connections: each
     * batch's statements run one after another in its backend, and a read
     * behind another waits for it
     */
    idle = 0;

    for (i = 0; i < pool->nconns; i++) {
        pc = &pool->conns[i];
        idle += (pc->state == NGX_AGENTLOCATOR_PG_READY && pc->nbatch == 0);
    }

    share = idle ? (pool->nreads + idle - 1) / idle : 0;

    for (i = 0;
         i < pool->nconns
         && !(ngx_queue_empty(&pool->writes) && ngx_queue_empty(&pool->reads));
         i++)
    {
        pc = &pool->conns[i];

        if (pc->state == NGX_AGENTLOCATOR_PG_READY && pc->nbatch == 0) {
            ngx_agentlocator_pg_send(pc, share);
        }
    }
}


/*
 * A batch goes out in one pipeline, ended by a sync: the database runs it
 * as one transaction, and its results come back as read events.
 */

static void
ngx_agentlocator_pg_send(ngx_agentlocator_pg_conn_t *pc, ngx_uint_t reads)
{
    u_char                        name[64];
    ngx_uint_t                    i;
    ngx_queue_t                  *q;
    ngx_agentlocator_pg_read_t   *rd;
    ngx_agentlocator_pg_pool_t   *pool;
    ngx_agentlocator_pg_write_t  *w;

    pool = ngx_agentlocator_pg;

    /* reads first, this connection's share: someone waits for each */

    while (pc->nbatch < ngx_min(reads, NGX_AGENTLOCATOR_PG_BATCH)
           && !ngx_queue_empty(&pool->reads))
    {
        q = ngx_queue_head(&pool->reads);
        ngx_queue_remove(q);
        pool->nreads--;

        ngx_queue_insert_tail(&pc->batch, q);
        pc->nbatch++;

        rd = ngx_queue_data(q, ngx_agentlocator_pg_read_t, queue);
        rd->sent = 1;

        for (i = 0; i < rd->nq; i++) {
            if (PQsendQueryPrepared(pc->conn,
                                    ngx_agentlocator_pg_statement_name(
                                        rd->st[i], name),
                                    rd->n[i], rd->values[i], rd->lengths[i],
                                    NULL, 0)
                == 0)
            {
                ngx_agentlocator_pg_fail(pc, "cannot send a query");
                return;
            }
        }

        if (PQpipelineSync(pc->conn) == 0) {
            ngx_agentlocator_pg_fail(pc, "cannot send a query");
            return;
        }
    }

    while (pc->nbatch < NGX_AGENTLOCATOR_PG_BATCH
           && !ngx_queue_empty(&pool->writes))
    {
        q = ngx_queue_head(&pool->writes);
        ngx_queue_remove(q);
        pool->queued--;

        ngx_queue_insert_tail(&pc->batch, q);
        pc->nbatch++;

        w = ngx_queue_data(q, ngx_agentlocator_pg_write_t, queue);

        if (PQsendQueryPrepared(pc->conn,
                                ngx_agentlocator_pg_statement_name(w->st,
                                                                   name),
                                w->n, w->values, w->lengths, NULL, 0)
            == 0
            || PQpipelineSync(pc->conn) == 0)
        {
            ngx_agentlocator_pg_fail(pc, "cannot send a query");
            return;
        }
    }

    pc->cursor = ngx_queue_head(&pc->batch);
    pc->later = 0;

    (void) ngx_agentlocator_pg_flush(pc);
}


/* What the socket did not take is sent when it is writable. */

static ngx_int_t
ngx_agentlocator_pg_flush(ngx_agentlocator_pg_conn_t *pc)
{
    int  rc;

    rc = PQflush(pc->conn);

    if (rc < 0 || ngx_agentlocator_pg_watch(pc, rc == 1) != NGX_OK) {
        ngx_agentlocator_pg_fail(pc, "cannot send a query");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * What /readyz shows: "off" (no agentlocator_postgres), "down" (no
 * connection of this worker is up), "old_schema" (the database has not
 * been migrated to what this module needs) or "ok"; and the versions.
 */

void
ngx_agentlocator_pg_status(ngx_agentlocator_pg_status_t *st)
{
    ngx_uint_t                   i;
    ngx_agentlocator_pg_pool_t  *pool;

    ngx_memzero(st, sizeof(ngx_agentlocator_pg_status_t));

    st->needed = NGX_AGENTLOCATOR_SCHEMA_VERSION;
    pool = ngx_agentlocator_pg;

    if (pool == NULL) {
        st->state = "off";
        return;
    }

    st->schema = pool->schema;
    st->pool = pool->nconns;
    st->queued = pool->queued;
    st->reads = pool->nreads;

    for (i = 0; i < pool->nconns; i++) {
        st->in_flight += pool->conns[i].nbatch;
    }

    st->done = pool->done;
    st->failed = pool->failed;
    st->dropped = pool->dropped;

    for (i = 0; i < pool->nconns; i++) {
        st->by_state[pool->conns[i].state]++;
    }

    st->connected = st->by_state[NGX_AGENTLOCATOR_PG_READY];

    /* an old schema's connections are let go, and tried again */
    if (pool->schema >= 0 && pool->schema < NGX_AGENTLOCATOR_SCHEMA_VERSION) {
        st->state = "old_schema";

    } else if (st->connected == 0) {
        st->state = "down";

    } else {
        st->state = "ok";
    }
}


/* the states' names in /metrics */

const char *
ngx_agentlocator_pg_state_name(ngx_uint_t state)
{
    static const char  *names[] = {
        "idle", "backoff", "connecting", "checking", "preparing", "ready"
    };

    return state < NGX_AGENTLOCATOR_PG_STATES ? names[state] : "unknown";
}


static void
ngx_agentlocator_pg_connect(ngx_agentlocator_pg_conn_t *pc)
{
    ngx_agentlocator_pg_pool_t  *pool;

    pool = ngx_agentlocator_pg;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        pc->state = NGX_AGENTLOCATOR_PG_IDLE;
        return;
    }

    pc->conn = PQconnectStartParams(pool->keywords, pool->values, 0);

    if (pc->conn == NULL) {
        ngx_agentlocator_pg_fail(pc, "PQconnectStartParams() failed");
        return;
    }

    if (PQstatus(pc->conn) == CONNECTION_BAD) {
        ngx_agentlocator_pg_fail(pc, "cannot connect");
        return;
    }

    if (PQsetnonblocking(pc->conn, 1) != 0) {
        ngx_agentlocator_pg_fail(pc, "PQsetnonblocking() failed");
        return;
    }

    /* libpq would print the server's notices on stderr */
    (void) PQsetNoticeProcessor(pc->conn, ngx_agentlocator_pg_notice, pc);

    pc->state = NGX_AGENTLOCATOR_PG_CONNECTING;

    ngx_add_timer(&pc->deadline, pool->connect_timeout);

    /* libpq's rule: wait until the socket is writable before the first poll */
    if (ngx_agentlocator_pg_watch(pc, 1) != NGX_OK) {
        ngx_agentlocator_pg_fail(pc, "cannot watch the socket");
    }
}


/*
 * One step of the nonblocking connect, when its socket is ready.  libpq may
 * close the socket and open another one inside PQconnectPoll() (the next
 * address of a host), quite possibly with the same number: nginx lets go
 * of the socket before each step (while it is still open) and watches
 * whatever PQsocket() is after it.
 */


static void
ngx_agentlocator_pg_poll(ngx_agentlocator_pg_conn_t *pc)
{
    PostgresPollingStatusType  polling;

    ngx_agentlocator_pg_unwatch(pc);

    polling = PQconnectPoll(pc->conn);

    switch (polling) {

    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        if (ngx_agentlocator_pg_watch(pc,
                                      polling == PGRES_POLLING_WRITING)
            != NGX_OK)
        {
            ngx_agentlocator_pg_fail(pc, "cannot watch the socket");
        }

        return;

    case PGRES_POLLING_OK:
        ngx_agentlocator_pg_check(pc);
        return;

    default: /* PGRES_POLLING_FAILED */
        ngx_agentlocator_pg_fail(pc, "cannot connect");
        return;
    }
}


/* A new connection first reads the schema's version (not pipelined). */

static void
ngx_agentlocator_pg_check(ngx_agentlocator_pg_conn_t *pc)
{
    pc->state = NGX_AGENTLOCATOR_PG_CHECKING;

    if (PQsendQueryParams(pc->conn, NGX_AGENTLOCATOR_PG_VERSION_SQL, 0, NULL,
                          NULL, NULL, NULL, 0)
        == 0)
    {
        ngx_agentlocator_pg_fail(pc, "cannot send a query");
        return;
    }

    pc->checking = 1;

    (void) ngx_agentlocator_pg_flush(pc);
}


static void
ngx_agentlocator_pg_event(ngx_event_t *ev)
{
    int                           rc;
    PGresult                     *res;
    ngx_connection_t             *c;
    ngx_agentlocator_pg_conn_t   *pc;

    c = ev->data;
    pc = c->data;

    switch (pc->state) {

    case NGX_AGENTLOCATOR_PG_CONNECTING:
        ngx_agentlocator_pg_poll(pc);
        return;

    case NGX_AGENTLOCATOR_PG_CHECKING:
    case NGX_AGENTLOCATOR_PG_PREPARING:
    case NGX_AGENTLOCATOR_PG_READY:
        break;

    default:
        return;
    }

    if (ev->write) {
        rc = PQflush(pc->conn);

        if (rc < 0) {
            ngx_agentlocator_pg_fail(pc, "cannot send");
            return;
        }

        /* all sent: from now on only the answers matter */
        if (ngx_agentlocator_pg_watch(pc, rc == 1) != NGX_OK) {
            ngx_agentlocator_pg_fail(pc, "cannot watch the socket");
        }

        return;
    }

    if (PQconsumeInput(pc->conn) == 0) {
        ngx_agentlocator_pg_fail(pc, "the connection broke");
        return;
    }

    if (pc->state == NGX_AGENTLOCATOR_PG_CHECKING) {
        while (pc->checking && !PQisBusy(pc->conn)) {
            res = PQgetResult(pc->conn);

            if (res == NULL) {
                pc->checking = 0;
                ngx_agentlocator_pg_ready(pc);
                return;
            }

            ngx_agentlocator_pg_checked(pc, res);
            PQclear(res);
        }

    } else if (pc->state == NGX_AGENTLOCATOR_PG_PREPARING) {
        ngx_agentlocator_pg_prepared(pc);

    } else {
        ngx_agentlocator_pg_results(pc);
    }

    if (pc->conn && PQstatus(pc->conn) == CONNECTION_BAD) {
        ngx_agentlocator_pg_fail(pc, "the connection broke");
    }
}


/* The schema's version, read. */

static void
ngx_agentlocator_pg_checked(ngx_agentlocator_pg_conn_t *pc, PGresult *res)
{
    u_char                       err[256];
    ngx_int_t                    version;
    ngx_agentlocator_pg_pool_t  *pool;

    pool = ngx_agentlocator_pg;
    version = 0;

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        version = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                           PQgetlength(res, 0, 0));
        if (version == NGX_ERROR) {
            version = 0;
        }

    } else {
        /* no schema_version table: nothing was migrated */
        ngx_log_error(NGX_LOG_INFO, pool->log, 0,
                      "agentlocator postgres: schema version: %s",
                      ngx_agentlocator_pg_error(pc->conn, err, sizeof(err)));
    }

    if (version < NGX_AGENTLOCATOR_SCHEMA_VERSION && pool->schema != version) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "CRM_SCHEMA_OLD version=%i needed=%d: the database "
                      "has not been migrated; run tools/migrate with its "
                      "conninfo.  Writes wait (in the spool, if there is "
                      "one) until it is", version,
                      NGX_AGENTLOCATOR_SCHEMA_VERSION);
    }

    pool->schema = version;
}


/*
 * The version is read: a database this module can write to gets the
 * connection's writes, in pipeline mode from now on, each statement
 * prepared once (parsed and planned once per connection, not per write);
 * an older one is left and tried again after the backoff, the writes
 * waiting.
 */

static void
ngx_agentlocator_pg_ready(ngx_agentlocator_pg_conn_t *pc)
{
    u_char                             name[64];
    ngx_uint_t                         t;
    ngx_agentlocator_pg_pool_t        *pool;
    ngx_agentlocator_crm_statement_t  *st;

    static ngx_agentlocator_crm_statement_t  *tables[] = {
        ngx_agentlocator_crm_statements,
        ngx_agentlocator_api_statements,
        ngx_agentlocator_sweep_statements
    };

    pool = ngx_agentlocator_pg;

    if (pool->schema < NGX_AGENTLOCATOR_SCHEMA_VERSION) {
        ngx_agentlocator_pg_fail(pc, "the schema is older than needed");
        return;
    }

    if (PQenterPipelineMode(pc->conn) == 0) {
        ngx_agentlocator_pg_fail(pc, "cannot enter pipeline mode");
        return;
    }

    /* the CRM's writes, then the API's and the transcription sweep's reads */

    for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        for (st = tables[t]; st->name; st++) {
            if (PQsendPrepare(pc->conn,
                              ngx_agentlocator_pg_statement_name(st, name),
                              st->sql, (int) st->nparams, NULL)
                == 0)
            {
                ngx_agentlocator_pg_fail(pc, "cannot prepare a statement");
                return;
            }
        }
    }

    if (PQpipelineSync(pc->conn) == 0) {
        ngx_agentlocator_pg_fail(pc, "cannot prepare a statement");
        return;
    }

    pc->state = NGX_AGENTLOCATOR_PG_PREPARING;
    pc->failed = 0;

    (void) ngx_agentlocator_pg_flush(pc);
}


/* The statements' PREPAREs answered, then their sync. */

static void
ngx_agentlocator_pg_prepared(ngx_agentlocator_pg_conn_t *pc)
{
    u_char                       err[256];
    PGresult                    *res;
    ExecStatusType               status;
    ngx_agentlocator_pg_pool_t  *pool;

    pool = ngx_agentlocator_pg;

    while (!PQisBusy(pc->conn)) {
        res = PQgetResult(pc->conn);

        if (res == NULL) {
            continue;
        }

        status = PQresultStatus(res);
        PQclear(res);

        if (status == PGRES_PIPELINE_SYNC) {
            if (pc->failed) {
                ngx_agentlocator_pg_fail(pc, "cannot prepare the statements");
                return;
            }

            ngx_agentlocator_pg_up(pc);
            return;
        }

        if (status != PGRES_COMMAND_OK && !pc->failed) {
            /* our SQL and the schema disagree: said once, the reason kept */
            pc->failed = 1;
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "agentlocator postgres: connection %ui: cannot "
                          "prepare the CRM's statements: %s", pc->index,
                          ngx_agentlocator_pg_error(pc->conn, err,
                                                    sizeof(err)));
        }
    }
}


/* "al_" and the statement's name: what its writes execute. */

static char *
ngx_agentlocator_pg_statement_name(ngx_agentlocator_crm_statement_t *st,
    u_char *buf)
{
    (void) ngx_snprintf(buf, 63, "al_%s%Z", st->name);
    buf[63] = '\0';

    return (char *) buf;
}


/* The connection takes writes. */

static void
ngx_agentlocator_pg_up(ngx_agentlocator_pg_conn_t *pc)
{
    ngx_agentlocator_pg_pool_t  *pool;

    pool = ngx_agentlocator_pg;

    pc->state = NGX_AGENTLOCATOR_PG_READY;
    pc->delay = NGX_AGENTLOCATOR_PG_BACKOFF_MIN;

    if (pc->deadline.timer_set) {
        ngx_del_timer(&pc->deadline);
    }

    if (pool->failures) {
        ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                      "CRM_CONNECTED connection=%ui after %ui failure(s)",
                      pc->index, pool->failures);
        pool->failures = 0;
    }

    ngx_agentlocator_pg_dispatch();
}


/*
 * The results of a batch, in order, for each write: its query's results,
 * a NULL, then its sync's (its transaction ended).
 */

static void
ngx_agentlocator_pg_results(ngx_agentlocator_pg_conn_t *pc)
{
    PGresult     *res;
    ngx_queue_t  *done, ready;

    while (pc->nbatch && !PQisBusy(pc->conn)) {
        res = PQgetResult(pc->conn);

        if (res == NULL) {
            continue;
        }

        if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
            if (!ngx_agentlocator_pg_result(pc, res)) {
                PQclear(res);
            }

            continue;
        }

        PQclear(res);

        done = pc->cursor;
        ngx_queue_init(&ready);

        if (done != ngx_queue_sentinel(&pc->batch)) {
            pc->cursor = ngx_queue_next(done);

            /*
             * a read is answered as soon as it is whole, not after the
             * writes batched behind it
             */
            if (((ngx_agentlocator_pg_entry_t *) done)->kind
                == NGX_AGENTLOCATOR_PG_READ)
            {
                ngx_queue_remove(done);
                pc->nbatch--;
                ngx_queue_insert_tail(&ready, done);
            }
        }

        if (pc->cursor == ngx_queue_sentinel(&pc->batch)) {
            /* the connection's state settled first: an answer may read */
            ngx_agentlocator_pg_batch_done(pc);
            ngx_agentlocator_pg_deliver(&ready);
            return;
        }

        ngx_agentlocator_pg_deliver(&ready);
    }
}


/*
 * One result of a write.  The database refusing it (a constraint) would
 * refuse it again: it is logged and not retried.  A failure of the moment
 * (a deadlock, a serialization failure, too many connections, a server
 * shutting down; SQLSTATE classes 40, 53, 57 and 08 but for 08P01, the
 * protocol violation a write with the wrong parameters is) sends the whole
 * batch again after the backoff.  A read keeps its results (returns 1:
 * the caller must not free it).
 */

static ngx_uint_t
ngx_agentlocator_pg_result(ngx_agentlocator_pg_conn_t *pc, PGresult *res)
{
    u_char                        err[256];
    char                         *state;
    ngx_agentlocator_pg_read_t   *rd;
    ngx_agentlocator_pg_pool_t   *pool;
    ngx_agentlocator_pg_write_t  *w;

    ExecStatusType                status;

    status = PQresultStatus(res);

    if (pc->cursor == ngx_queue_sentinel(&pc->batch)) {
        return 0;
    }

    if (((ngx_agentlocator_pg_entry_t *) pc->cursor)->kind
        == NGX_AGENTLOCATOR_PG_READ)
    {
        rd = ngx_queue_data(pc->cursor, ngx_agentlocator_pg_read_t, queue);

        if (rd->got == rd->nq) {
            return 0;
        }

        rd->res[rd->got++] = res;
        return 1;
    }

    if (status != PGRES_FATAL_ERROR && status != PGRES_PIPELINE_ABORTED) {
        return 0;
    }

    pool = ngx_agentlocator_pg;
    w = ngx_queue_data(pc->cursor, ngx_agentlocator_pg_write_t, queue);

    state = (status == PGRES_FATAL_ERROR)
            ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (state == NULL
        || ngx_strncmp(state, "40", 2) == 0 || ngx_strncmp(state, "53", 2) == 0
        || ngx_strncmp(state, "57", 2) == 0
        || (ngx_strncmp(state, "08", 2) == 0
            && ngx_strcmp(state, "08P01") != 0))
    {
        w->retry = 1;
        (void) ngx_cpystrn((u_char *) pc->sqlstate,
                           (u_char *) (state ? state : "-"),
                           sizeof(pc->sqlstate));

        /* a serialization failure or a deadlock: again now; else later */
        if (state == NULL || ngx_strncmp(state, "40", 2) != 0) {
            pc->later = 1;
        }

        return 0;
    }

    w->refused = 1;
    pool->failed++;
    ngx_agentlocator_metrics_crm(NGX_AGENTLOCATOR_METRICS_CRM_FAILED);

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "CRM_WRITE_FAILED what=%s sqlstate=%s: %s",
                  w->st->name, state,
                  ngx_agentlocator_pg_error(pc->conn, err, sizeof(err)));

    return 0;
}


/*
 * Every entry of the batch has its answer.  A write is taken, refused for
 * good, or to be done again (back to the head of the queue); a read goes
 * to whoever asked, once the connection's state is settled (an answer may
 * start another read).
 */

static void
ngx_agentlocator_pg_batch_done(ngx_agentlocator_pg_conn_t *pc)
{
    u_char                        what[64];
    ngx_queue_t                  *q, *next, ready;
    ngx_agentlocator_pg_pool_t   *pool;
    ngx_agentlocator_pg_write_t  *w;

    pool = ngx_agentlocator_pg;

    ngx_queue_init(&ready);

    for (q = ngx_queue_head(&pc->batch);
         q != ngx_queue_sentinel(&pc->batch);
         q = next)
    {
        next = ngx_queue_next(q);

        if (((ngx_agentlocator_pg_entry_t *) q)->kind
            == NGX_AGENTLOCATOR_PG_READ)
        {
            ngx_queue_remove(q);
            pc->nbatch--;
            ngx_queue_insert_tail(&ready, q);
            continue;
        }

        w = ngx_queue_data(q, ngx_agentlocator_pg_write_t, queue);

        if (w->retry) {
            continue;
        }

        ngx_queue_remove(q);
        pc->nbatch--;

        if (!w->refused) {
            pool->done++;
            ngx_agentlocator_metrics_crm(NGX_AGENTLOCATOR_METRICS_CRM_DONE);
        }

        ngx_agentlocator_pg_taken(w);
    }

    if (pc->nbatch == 0) {
        pc->retries = 0;
        pc->cursor = NULL;
        ngx_agentlocator_pg_deliver(&ready);
        ngx_agentlocator_pg_dispatch();
        return;
    }

    /* what is left, the database asked to do again */

    if (pc->later || ++pc->retries > NGX_AGENTLOCATOR_PG_RETRIES) {
        pc->retries = 0;
        (void) ngx_snprintf(what, sizeof(what),
                            "the database asked to retry (sqlstate %s)%Z",
                            pc->sqlstate);
        ngx_agentlocator_pg_fail(pc, (char *) what);
        ngx_agentlocator_pg_deliver(&ready);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, pool->log, 0,
                  "agentlocator postgres: connection %ui: %ui write(s) "
                  "again at once (sqlstate %s)", pc->index, pc->nbatch,
                  pc->sqlstate);

    ngx_agentlocator_pg_requeue(pc);
    ngx_agentlocator_pg_deliver(&ready);
    ngx_agentlocator_pg_dispatch();
}


/*
 * The batch goes back to the head of the queues, in its order: writes
 * (idempotent) to be done again, reads to be asked again.
 */

static void
ngx_agentlocator_pg_requeue(ngx_agentlocator_pg_conn_t *pc)
{
    ngx_uint_t                    i;
    ngx_queue_t                  *q;
    ngx_agentlocator_pg_read_t   *rd;
    ngx_agentlocator_pg_pool_t   *pool;
    ngx_agentlocator_pg_write_t  *w;

    pool = ngx_agentlocator_pg;

    while (!ngx_queue_empty(&pc->batch)) {
        q = ngx_queue_last(&pc->batch);
        ngx_queue_remove(q);

        if (((ngx_agentlocator_pg_entry_t *) q)->kind
            == NGX_AGENTLOCATOR_PG_READ)
        {
            rd = ngx_queue_data(q, ngx_agentlocator_pg_read_t, queue);

            for (i = 0; i < rd->got; i++) {
                PQclear(rd->res[i]);
            }

            rd->got = 0;
            rd->sent = 0;

            if (rd->cancelled) {
                ngx_agentlocator_pg_read_free(rd);
                continue;
            }

            ngx_queue_insert_head(&pool->reads, q);
            pool->nreads++;
            continue;
        }

        w = ngx_queue_data(q, ngx_agentlocator_pg_write_t, queue);
        w->refused = 0;
        w->retry = 0;

        ngx_queue_insert_head(&pool->writes, q);
        pool->queued++;
    }

    pc->nbatch = 0;
    pc->cursor = NULL;
}


/*
 * Starts a read: "nq" statements (of ngx_agentlocator_api_statements)
 * and their parameters, copied.  "done" is called once, from the event
 * loop, with the statements' results (freed when it returns) or with an
 * error; never if the read is cancelled first.  NULL and *error: it cannot
 * start (no database configured, none connected, out of memory).
 */

ngx_agentlocator_pg_read_t *
ngx_agentlocator_pg_read(ngx_agentlocator_pg_query_t *q, ngx_uint_t nq,
    ngx_agentlocator_pg_read_pt done, void *data, const char **error)
{
    u_char                       *p;
    size_t                        size;
    ngx_uint_t                    i, j, up;
    ngx_agentlocator_pg_read_t   *rd;
    ngx_agentlocator_pg_pool_t   *pool;

    pool = ngx_agentlocator_pg;

    if (pool == NULL) {
        *error = "no database is configured";
        return NULL;
    }

    up = 0;

    for (i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].state == NGX_AGENTLOCATOR_PG_READY) {
            up = 1;
            break;
        }
    }

    if (!up) {
        *error = "the database is not connected";
        return NULL;
    }

    size = sizeof(ngx_agentlocator_pg_read_t);

    for (i = 0; i < nq; i++) {
        for (j = 0; j < q[i].n; j++) {
            size += q[i].params[j].len + 1;
        }
    }

    rd = ngx_alloc(size, pool->log);
    if (rd == NULL) {
        *error = "out of memory";
        return NULL;
    }

    rd->kind = NGX_AGENTLOCATOR_PG_READ;
    rd->nq = nq;
    rd->got = 0;
    rd->sent = 0;
    rd->cancelled = 0;
    rd->done = done;
    rd->data = data;

    p = rd->buf;

    for (i = 0; i < nq; i++) {
        rd->st[i] = q[i].st;
        rd->n[i] = (int) q[i].n;

        for (j = 0; j < q[i].n; j++) {
            if (q[i].params[j].data == NULL) {
                rd->values[i][j] = NULL;
                rd->lengths[i][j] = 0;
                continue;
            }

            rd->values[i][j] = (char *) p;
            rd->lengths[i][j] = (int) q[i].params[j].len;
            p = ngx_cpymem(p, q[i].params[j].data, q[i].params[j].len);
            *p++ = '\0';
        }
    }

    ngx_queue_insert_tail(&pool->reads, &rd->queue);
    pool->nreads++;

    ngx_agentlocator_pg_dispatch();

    return rd;
}


/* Whoever asked is gone: its answer is thrown away. */

void
ngx_agentlocator_pg_read_cancel(ngx_agentlocator_pg_read_t *rd)
{
    if (rd->sent) {
        /* in a batch: freed when its results are in */
        rd->cancelled = 1;
        return;
    }

    ngx_queue_remove(&rd->queue);
    ngx_agentlocator_pg->nreads--;
    ngx_agentlocator_pg_read_free(rd);
}


/* Reads whose results are in, answered; their results freed. */

static void
ngx_agentlocator_pg_deliver(ngx_queue_t *ready)
{
    u_char                       err[256];
    ngx_uint_t                   i;
    ngx_queue_t                 *q;
    const char                  *error;
    ExecStatusType               status;
    ngx_agentlocator_pg_read_t  *rd;

    while (!ngx_queue_empty(ready)) {
        q = ngx_queue_head(ready);
        ngx_queue_remove(q);
        rd = ngx_queue_data(q, ngx_agentlocator_pg_read_t, queue);

        error = (rd->got == rd->nq) ? NULL : "the database did not answer";

        for (i = 0; i < rd->got && error == NULL; i++) {
            status = PQresultStatus(rd->res[i]);

            if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
                error = "the database refused the query";

                ngx_log_error(NGX_LOG_ERR, ngx_agentlocator_pg->log, 0,
                              "CRM_READ_FAILED what=%s sqlstate=%s: %s",
                              rd->st[i]->name,
                              PQresultErrorField(rd->res[i], PG_DIAG_SQLSTATE)
                              ? PQresultErrorField(rd->res[i],
                                                   PG_DIAG_SQLSTATE)
                              : "-",
                              ngx_agentlocator_pg_result_error(rd->res[i],
                                  err, sizeof(err)));
            }
        }

        if (!rd->cancelled) {
            rd->done(rd->data, (struct pg_result **) rd->res, rd->got, error);
        }

        ngx_agentlocator_pg_read_free(rd);
    }
}


static void
ngx_agentlocator_pg_read_free(ngx_agentlocator_pg_read_t *rd)
{
    ngx_uint_t  i;

    for (i = 0; i < rd->got; i++) {
        PQclear(rd->res[i]);
    }

    ngx_free(rd);
}


/*
 * No connection is up: the reads waiting for one are answered now, not
 * when a request's own timer runs out.
 */

static void
ngx_agentlocator_pg_reads_fail(const char *why)
{
    ngx_uint_t                   i;
    ngx_queue_t                 *q, failed;
    ngx_agentlocator_pg_read_t  *rd;
    ngx_agentlocator_pg_pool_t  *pool;

    pool = ngx_agentlocator_pg;

    for (i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].state == NGX_AGENTLOCATOR_PG_READY) {
            return;
        }
    }

    ngx_queue_init(&failed);

    while (!ngx_queue_empty(&pool->reads)) {
        q = ngx_queue_head(&pool->reads);
        ngx_queue_remove(q);
        ngx_queue_insert_tail(&failed, q);
    }

    pool->nreads = 0;

    while (!ngx_queue_empty(&failed)) {
        q = ngx_queue_head(&failed);
        ngx_queue_remove(q);
        rd = ngx_queue_data(q, ngx_agentlocator_pg_read_t, queue);

        rd->done(rd->data, NULL, 0, why);
        ngx_agentlocator_pg_read_free(rd);
    }
}


/* The database has a write (or refused it for good): its journal lets go. */

static void
ngx_agentlocator_pg_taken(ngx_agentlocator_pg_write_t *w)
{
    ngx_agentlocator_spool_done(w->spooled);
    ngx_free(w);
}


static void
ngx_agentlocator_pg_backoff_handler(ngx_event_t *ev)
{
    ngx_agentlocator_pg_connect(ev->data);
}


/* Connecting, or reading the schema's version, took too long. */

static void
ngx_agentlocator_pg_deadline_handler(ngx_event_t *ev)
{
    ngx_agentlocator_pg_fail(ev->data, "timed out connecting");
}


/*
 * nginx's connection for libpq's socket: level-triggered, as libpq reads
 * and writes on its own terms (an edge it did not drain would never come
 * again); readable always, which also tells of a server gone away, and
 * writable only while libpq has something to send.
 */

static ngx_int_t
ngx_agentlocator_pg_watch(ngx_agentlocator_pg_conn_t *pc,
    ngx_uint_t want_write)
{
    ngx_socket_t       fd;
    ngx_connection_t  *c;

    c = pc->c;

    if (c == NULL) {
        fd = PQsocket(pc->conn);

        if (fd == (ngx_socket_t) -1) {
            return NGX_ERROR;
        }

        c = ngx_get_connection(fd, ngx_agentlocator_pg->log);
        if (c == NULL) {
            return NGX_ERROR;
        }

        c->data = pc;
        c->log = ngx_agentlocator_pg->log;
        c->read->handler = ngx_agentlocator_pg_event;
        c->write->handler = ngx_agentlocator_pg_event;
        c->read->log = c->log;
        c->write->log = c->log;

        pc->c = c;
    }

    if (!c->read->active
        && ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (want_write && !c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (!want_write && c->write->active) {
        if (ngx_del_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * nginx lets go of libpq's socket: libpq owns it and closes it itself
 * (or has, when it found the connection broken).
 */

static void
ngx_agentlocator_pg_unwatch(ngx_agentlocator_pg_conn_t *pc)
{
    ngx_connection_t  *c;

    c = pc->c;

    if (c == NULL) {
        return;
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (pc->conn && PQsocket(pc->conn) == c->fd) {
        if (c->write->active) {
            (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
        }

        if (c->read->active) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }
    }

    /* else libpq has closed it already, and the kernel forgot it with it */

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    pc->c = NULL;
}


/* The connection is given up; another is tried after the backoff. */

static void
ngx_agentlocator_pg_fail(ngx_agentlocator_pg_conn_t *pc, const char *what)
{
    u_char                       err[256];
    ngx_uint_t                   level;
    ngx_agentlocator_pg_pool_t  *pool;

    pool = ngx_agentlocator_pg;

    ngx_agentlocator_pg_error(pc->conn, err, sizeof(err));

    pool->failures++;

    /* the first failure of a run is an error, the retries are quieter */
    level = (pool->failures == 1) ? NGX_LOG_ERR : NGX_LOG_INFO;

    ngx_log_error(level, pool->log, 0,
                  "CRM_DOWN connection=%ui retry_ms=%M: %s: %s",
                  pc->index, pc->delay, what, err);

    /* they may or may not have been done: idempotent, done again */
    ngx_agentlocator_pg_requeue(pc);
    pc->checking = 0;

    ngx_agentlocator_pg_close(pc);

    ngx_agentlocator_pg_reads_fail("the database is not connected");

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    pc->state = NGX_AGENTLOCATOR_PG_WAITING;
    ngx_add_timer(&pc->backoff, pc->delay);

    pc->delay = ngx_min(pc->delay * 2, NGX_AGENTLOCATOR_PG_BACKOFF_MAX);
}


static void
ngx_agentlocator_pg_close(ngx_agentlocator_pg_conn_t *pc)
{
    if (pc->backoff.timer_set) {
        ngx_del_timer(&pc->backoff);
    }

    if (pc->deadline.timer_set) {
        ngx_del_timer(&pc->deadline);
    }

    ngx_agentlocator_pg_unwatch(pc);

    if (pc->conn) {
        PQfinish(pc->conn);
        pc->conn = NULL;
    }

    pc->state = NGX_AGENTLOCATOR_PG_IDLE;
}


/*
 * libpq's message, on one line.  It names the host and port it tried,
 * never the password: the conninfo itself is never logged.
 */

static u_char *
ngx_agentlocator_pg_error(PGconn *conn, u_char *buf, size_t size)
{
    return ngx_agentlocator_pg_one_line(conn ? PQerrorMessage(conn) : "",
                                        buf, size);
}


/* A result's error, on one line. */

static u_char *
ngx_agentlocator_pg_result_error(PGresult *res, u_char *buf, size_t size)
{
    return ngx_agentlocator_pg_one_line(PQresultErrorMessage(res), buf, size);
}


/* libpq's message in buf, on one line ("no detail" for none). */

static u_char *
ngx_agentlocator_pg_one_line(const char *msg, u_char *buf, size_t size)
{
    u_char  *p, *last;

    last = ngx_cpystrn(buf, (u_char *) (*msg ? msg : "no detail"), size);

    for (p = buf; p < last; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }

    while (last > buf && last[-1] == ' ') {
        *--last = '\0';
    }

    return buf;
}


static void
ngx_agentlocator_pg_notice(void *arg, const char *message)
{
    size_t                       len;
    ngx_agentlocator_pg_conn_t  *pc = arg;

    len = ngx_strlen(message);

    while (len && (message[len - 1] == '\n' || message[len - 1] == '\r')) {
        len--;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_agentlocator_pg->log, 0,
                  "agentlocator postgres: connection %ui: %*s",
                  pc->index, len, message);
}
