
/*
 * The CRM's PostgreSQL connections (SPEC §7): each worker keeps its own
 * small pool, every connection nonblocking from its first byte
 * (PQconnectStart, PQconnectPoll), its socket an nginx connection driven by
 * the event loop.  A connection that fails or breaks is made again after a
 * backoff (a cancelable timer: a quitting worker never waits for it).  On
 * each new connection the schema's version is read, so a database older
 * than this module needs is logged (CRM_SCHEMA_OLD) and /readyz says so.
 *
 * Writes (ngx_agentlocator_pg_write) queue in the worker, bounded, and
 * go out one at a time on whichever connection is free; a write whose
 * connection broke goes back to the head of the queue (every write is
 * idempotent).  The durable spool for what the queue cannot hold, or what
 * is queued when the worker exits, comes next (issue 13).
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
#define NGX_AGENTLOCATOR_SCHEMA_VERSION   1

#define NGX_AGENTLOCATOR_PG_VERSION_SQL                                       \
    "SELECT coalesce(max(version), 0) FROM schema_version"

/* writes a worker holds while the database is slow or away */
#define NGX_AGENTLOCATOR_PG_QUEUE_MAX     10000


typedef struct {
    ngx_queue_t                 queue;
    const char                 *sql;      /* static text */
    const char                 *what;     /* for the log */
    int                         n;
    const char                 *values[NGX_AGENTLOCATOR_PG_MAX_PARAMS];
    int                         lengths[NGX_AGENTLOCATOR_PG_MAX_PARAMS];
    u_char                      data[1];
} ngx_agentlocator_pg_write_t;


typedef enum {
    NGX_AGENTLOCATOR_PG_IDLE = 0,         /* not connected, no timer */
    NGX_AGENTLOCATOR_PG_WAITING,          /* the backoff timer runs */
    NGX_AGENTLOCATOR_PG_CONNECTING,
    NGX_AGENTLOCATOR_PG_CHECKING,         /* reading the schema version */
    NGX_AGENTLOCATOR_PG_READY
} ngx_agentlocator_pg_state_e;


typedef struct {
    PGconn                     *conn;
    ngx_connection_t           *c;        /* nginx's view of PQsocket() */
    ngx_event_t                 backoff;
    ngx_event_t                 deadline; /* of connecting */
    ngx_msec_t                  delay;    /* the next backoff */
    ngx_uint_t                  state;    /* _pg_state_e */
    ngx_uint_t                  index;
    ngx_uint_t                  in_flight; /* a query awaits its results */
    ngx_agentlocator_pg_write_t *write;    /* the write it is */
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
static void ngx_agentlocator_pg_result(ngx_agentlocator_pg_conn_t *pc,
    PGresult *res);
static void ngx_agentlocator_pg_done(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_dispatch(void);
static void ngx_agentlocator_pg_send(ngx_agentlocator_pg_conn_t *pc,
    const char *sql, ngx_agentlocator_pg_write_t *w);


static ngx_agentlocator_pg_pool_t  *ngx_agentlocator_pg;

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

    kw = ngx_pcalloc(cf->pool, (n + 2) * sizeof(char *));
    val = ngx_pcalloc(cf->pool, (n + 2) * sizeof(char *));
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

    pool = ngx_agentlocator_pg;

    if (pool == NULL) {
        return;
    }

    lost = pool->queued;

    for (i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].write) {
            /* sent, its result not seen: maybe done, maybe not */
            lost++;
            ngx_free(pool->conns[i].write);
            pool->conns[i].write = NULL;
        }

        ngx_agentlocator_pg_close(&pool->conns[i]);
    }

    if (lost) {
        /* until the spool exists, they are lost: say how many */
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "CRM_LOST writes=%ui: queued or unanswered when the "
                      "worker exited", lost);
    }

    while (!ngx_queue_empty(&pool->writes)) {
        q = ngx_queue_head(&pool->writes);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_agentlocator_pg_write_t, queue));
    }

    ngx_agentlocator_pg = NULL;
}


/*
 * Queues one write: "sql" (static text, with ON CONFLICT so that doing it
 * twice changes nothing) and its "n" parameters, copied (a NULL data is
 * SQL NULL).  Never blocks, never waits: NGX_DECLINED when there is no
 * database configured, NGX_BUSY when the queue is full (counted, logged).
 */

ngx_int_t
ngx_agentlocator_pg_write(const char *sql, const char *what, ngx_uint_t n,
    ngx_str_t *params)
{
    u_char                       *p;
    size_t                        size;
    ngx_uint_t                    i;
    ngx_agentlocator_pg_pool_t   *pool;
    ngx_agentlocator_pg_write_t  *w;

    pool = ngx_agentlocator_pg;

    if (pool == NULL) {
        return NGX_DECLINED;
    }

    if (pool->queued >= NGX_AGENTLOCATOR_PG_QUEUE_MAX) {
        if (pool->dropped++ % 1000 == 0) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "CRM_QUEUE_FULL dropped=%ui: %ui writes wait for "
                          "the database; this one (%s) is lost",
                          pool->dropped, pool->queued, what);
        }

        return NGX_BUSY;
    }

    size = sizeof(ngx_agentlocator_pg_write_t);

    for (i = 0; i < n; i++) {
        size += params[i].len + 1;
    }

    w = ngx_alloc(size, pool->log);
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->sql = sql;
    w->what = what;
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

    ngx_queue_insert_tail(&pool->writes, &w->queue);
    pool->queued++;

    ngx_agentlocator_pg_dispatch();

    return NGX_OK;
}


/* Each free connection takes the oldest write. */

static void
ngx_agentlocator_pg_dispatch(void)
{
    ngx_uint_t                    i;
    ngx_queue_t                  *q;
    ngx_agentlocator_pg_conn_t   *pc;
    ngx_agentlocator_pg_pool_t   *pool;

    pool = ngx_agentlocator_pg;

    for (i = 0; i < pool->nconns && !ngx_queue_empty(&pool->writes); i++) {
        pc = &pool->conns[i];

        if (pc->state != NGX_AGENTLOCATOR_PG_READY || pc->in_flight) {
            continue;
        }

        q = ngx_queue_head(&pool->writes);
        ngx_queue_remove(q);
        pool->queued--;

        ngx_agentlocator_pg_send(pc, NULL,
                                 ngx_queue_data(q, ngx_agentlocator_pg_write_t,
                                                queue));
    }
}


/* A query ("sql", or write "w"'s) goes out; its results come as read events. */

static void
ngx_agentlocator_pg_send(ngx_agentlocator_pg_conn_t *pc, const char *sql,
    ngx_agentlocator_pg_write_t *w)
{
    int  rc;

    pc->write = w;

    rc = w ? PQsendQueryParams(pc->conn, w->sql, w->n, NULL, w->values,
                               w->lengths, NULL, 0)
           : PQsendQueryParams(pc->conn, sql, 0, NULL, NULL, NULL, NULL, 0);

    if (rc == 0) {
        ngx_agentlocator_pg_fail(pc, "cannot send a query");
        return;
    }

    pc->in_flight = 1;

    /* what the socket did not take is flushed when it is writable */
    rc = PQflush(pc->conn);

    if (rc < 0 || ngx_agentlocator_pg_watch(pc, rc == 1) != NGX_OK) {
        ngx_agentlocator_pg_fail(pc, "cannot send a query");
    }
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
    st->done = pool->done;
    st->failed = pool->failed;
    st->dropped = pool->dropped;

    for (i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].state == NGX_AGENTLOCATOR_PG_READY) {
            st->connected++;
        }
    }

    if (st->connected == 0) {
        st->state = "down";

    } else if (pool->schema < NGX_AGENTLOCATOR_SCHEMA_VERSION) {
        st->state = "old_schema";

    } else {
        st->state = "ok";
    }
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


/* A new connection first reads the schema's version. */

static void
ngx_agentlocator_pg_check(ngx_agentlocator_pg_conn_t *pc)
{
    pc->state = NGX_AGENTLOCATOR_PG_CHECKING;

    ngx_agentlocator_pg_send(pc, NGX_AGENTLOCATOR_PG_VERSION_SQL, NULL);
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

    while (pc->in_flight && !PQisBusy(pc->conn)) {
        res = PQgetResult(pc->conn);

        if (res == NULL) {
            ngx_agentlocator_pg_done(pc);
            break;
        }

        ngx_agentlocator_pg_result(pc, res);
        PQclear(res);
    }

    if (pc->conn && PQstatus(pc->conn) == CONNECTION_BAD) {
        ngx_agentlocator_pg_fail(pc, "the connection broke");
    }
}


/* One result of the query in flight. */

static void
ngx_agentlocator_pg_result(ngx_agentlocator_pg_conn_t *pc, PGresult *res)
{
    u_char                       err[256];
    char                        *state;
    ngx_int_t                    version;
    ExecStatusType               status;
    ngx_agentlocator_pg_pool_t  *pool;

    pool = ngx_agentlocator_pg;
    status = PQresultStatus(res);

    if (pc->state == NGX_AGENTLOCATOR_PG_CHECKING) {
        version = 0;

        if (status == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            version = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                               PQgetlength(res, 0, 0));
            if (version == NGX_ERROR) {
                version = 0;
            }

        } else {
            /* no schema_version table: nothing was migrated */
            ngx_log_error(NGX_LOG_INFO, pool->log, 0,
                          "agentlocator postgres: schema version: %s",
                          ngx_agentlocator_pg_error(pc->conn, err,
                                                    sizeof(err)));
        }

        if (version < NGX_AGENTLOCATOR_SCHEMA_VERSION
            && pool->schema != version)
        {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "CRM_SCHEMA_OLD version=%i needed=%d: the "
                          "database has not been migrated; run "
                          "tools/migrate with its conninfo",
                          version, NGX_AGENTLOCATOR_SCHEMA_VERSION);
        }

        pool->schema = version;
        return;
    }

    if (pc->write == NULL
        || status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
    {
        return;
    }

    /*
     * The database refused it (a constraint, a schema too old): doing it
     * again would be refused again, so it is logged and not retried.
     */

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    pool->failed++;

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "CRM_WRITE_FAILED what=%s sqlstate=%s: %s",
                  pc->write->what, state ? state : "-",
                  ngx_agentlocator_pg_error(pc->conn, err, sizeof(err)));
}


/* The query in flight has all its results: the connection is free. */

static void
ngx_agentlocator_pg_done(ngx_agentlocator_pg_conn_t *pc)
{
    ngx_agentlocator_pg_pool_t  *pool;

    pool = ngx_agentlocator_pg;

    pc->in_flight = 0;

    if (pc->write) {
        ngx_free(pc->write);
        pc->write = NULL;
        pool->done++;
    }

    if (pc->state == NGX_AGENTLOCATOR_PG_CHECKING) {
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
    }

    ngx_agentlocator_pg_dispatch();
}


static void
ngx_agentlocator_pg_backoff_handler(ngx_event_t *ev)
{
    ngx_agentlocator_pg_connect(ev->data);
}


/* Connecting, and reading the schema's version, took too long. */

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

    if (pc->write) {
        /* it may or may not have been done: it is idempotent, do it again */
        ngx_queue_insert_head(&pool->writes, &pc->write->queue);
        pool->queued++;
        pc->write = NULL;
    }

    pc->in_flight = 0;

    ngx_agentlocator_pg_close(pc);

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
    u_char      *p, *last;
    const char  *msg;

    msg = conn ? PQerrorMessage(conn) : "";

    p = ngx_cpystrn(buf, (u_char *) (*msg ? msg : "no detail"), size);

    for (last = p, p = buf; p < last; p++) {
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
