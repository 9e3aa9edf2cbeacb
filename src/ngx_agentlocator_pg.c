
/*
 * The CRM's PostgreSQL connections (SPEC §7): each worker keeps its own
 * small pool, every connection nonblocking from its first byte
 * (PQconnectStart, PQconnectPoll), its socket an nginx connection driven by
 * the event loop.  A connection that fails or breaks is made again after a
 * backoff (a cancelable timer: a quitting worker never waits for it).  On
 * each new connection the schema's version is read, so a database older
 * than this module needs is logged (CRM_SCHEMA_OLD) and /readyz says so.
 *
 * Writes through the pool, the queue and the spool come next (issue 13);
 * this is the connection half.
 */


#include "ngx_agentlocator.h"

#include <libpq-fe.h>


#define NGX_AGENTLOCATOR_PG_BACKOFF_MIN   100      /* ms, doubled per failure */
#define NGX_AGENTLOCATOR_PG_BACKOFF_MAX   30000

/* what sql/ holds: the highest NNN of sql/NNN_*.sql */
#define NGX_AGENTLOCATOR_SCHEMA_VERSION   1

#define NGX_AGENTLOCATOR_PG_VERSION_SQL                                       \
    "SELECT coalesce(max(version), 0) FROM schema_version"


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
    ngx_msec_t                  delay;    /* the next backoff */
    ngx_uint_t                  state;    /* _pg_state_e */
    ngx_uint_t                  index;
    PostgresPollingStatusType   polling;
} ngx_agentlocator_pg_conn_t;


typedef struct {
    ngx_agentlocator_pg_conn_t  *conns;
    ngx_uint_t                   nconns;
    ngx_str_t                    conninfo;   /* NUL-terminated */
    ngx_int_t                    schema;     /* -1: not read yet */
    ngx_uint_t                   failures;   /* in a row, all connections */
    ngx_log_t                   *log;
} ngx_agentlocator_pg_pool_t;


static void ngx_agentlocator_pg_connect(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_poll(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_check(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_event(ngx_event_t *ev);
static void ngx_agentlocator_pg_backoff_handler(ngx_event_t *ev);
static ngx_int_t ngx_agentlocator_pg_watch(ngx_agentlocator_pg_conn_t *pc,
    ngx_uint_t want_write);
static void ngx_agentlocator_pg_unwatch(ngx_agentlocator_pg_conn_t *pc);
static void ngx_agentlocator_pg_fail(ngx_agentlocator_pg_conn_t *pc,
    const char *what);
static void ngx_agentlocator_pg_close(ngx_agentlocator_pg_conn_t *pc);
static u_char *ngx_agentlocator_pg_error(PGconn *conn, u_char *buf,
    size_t size);
static void ngx_agentlocator_pg_notice(void *arg, const char *message);


static ngx_agentlocator_pg_pool_t  *ngx_agentlocator_pg;


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

    /* libpq wants a C string */
    pool->conninfo.data = ngx_pnalloc(cycle->pool, amcf->pg_conninfo.len + 1);
    if (pool->conninfo.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(pool->conninfo.data, amcf->pg_conninfo.data,
               amcf->pg_conninfo.len);
    pool->conninfo.data[amcf->pg_conninfo.len] = '\0';
    pool->conninfo.len = amcf->pg_conninfo.len;

    pool->nconns = amcf->pg_pool;
    pool->schema = -1;
    pool->log = cycle->log;

    ngx_agentlocator_pg = pool;

    for (i = 0; i < pool->nconns; i++) {
        pc = &pool->conns[i];
        pc->index = i;
        pc->delay = NGX_AGENTLOCATOR_PG_BACKOFF_MIN;

        pc->backoff.handler = ngx_agentlocator_pg_backoff_handler;
        pc->backoff.data = pc;
        pc->backoff.log = cycle->log;
        pc->backoff.cancelable = 1;

        ngx_agentlocator_pg_connect(pc);
    }

    return NGX_OK;
}


void
ngx_agentlocator_pg_exit_worker(void)
{
    ngx_uint_t  i;

    if (ngx_agentlocator_pg == NULL) {
        return;
    }

    for (i = 0; i < ngx_agentlocator_pg->nconns; i++) {
        ngx_agentlocator_pg_close(&ngx_agentlocator_pg->conns[i]);
    }

    ngx_agentlocator_pg = NULL;
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

    pc->conn = PQconnectStart((char *) pool->conninfo.data);

    if (pc->conn == NULL) {
        ngx_agentlocator_pg_fail(pc, "PQconnectStart() failed (out of memory)");
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

    /* libpq's rule: wait until the socket is writable before the first poll */
    pc->polling = PGRES_POLLING_WRITING;

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
    ngx_agentlocator_pg_unwatch(pc);

    pc->polling = PQconnectPoll(pc->conn);

    switch (pc->polling) {

    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        if (ngx_agentlocator_pg_watch(pc,
                                      pc->polling == PGRES_POLLING_WRITING)
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
    int  rc;

    if (PQsendQueryParams(pc->conn, NGX_AGENTLOCATOR_PG_VERSION_SQL, 0, NULL,
                          NULL, NULL, NULL, 0)
        == 0)
    {
        ngx_agentlocator_pg_fail(pc, "cannot send a query");
        return;
    }

    pc->state = NGX_AGENTLOCATOR_PG_CHECKING;

    /* what the socket did not take is flushed when it is writable */
    rc = PQflush(pc->conn);

    if (rc < 0 || ngx_agentlocator_pg_watch(pc, rc == 1) != NGX_OK) {
        ngx_agentlocator_pg_fail(pc, "cannot send a query");
    }
}


static void
ngx_agentlocator_pg_event(ngx_event_t *ev)
{
    int                           rc;
    u_char                        err[256];
    PGresult                     *res;
    ngx_int_t                     version;
    ngx_connection_t             *c;
    ngx_agentlocator_pg_conn_t   *pc;
    ngx_agentlocator_pg_pool_t   *pool;

    c = ev->data;
    pc = c->data;
    pool = ngx_agentlocator_pg;

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

    while (!PQisBusy(pc->conn)) {
        res = PQgetResult(pc->conn);

        if (res == NULL) {
            break;
        }

        if (pc->state == NGX_AGENTLOCATOR_PG_CHECKING) {
            version = 0;

            if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            {
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
        }

        PQclear(res);
    }

    if (pc->state == NGX_AGENTLOCATOR_PG_CHECKING && !PQisBusy(pc->conn)) {
        pc->state = NGX_AGENTLOCATOR_PG_READY;
        pc->delay = NGX_AGENTLOCATOR_PG_BACKOFF_MIN;

        if (pool->failures) {
            ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                          "CRM_CONNECTED connection=%ui after %ui failure(s)",
                          pc->index, pool->failures);
            pool->failures = 0;
        }
    }

    if (PQstatus(pc->conn) == CONNECTION_BAD) {
        ngx_agentlocator_pg_fail(pc, "the connection broke");
    }
}


static void
ngx_agentlocator_pg_backoff_handler(ngx_event_t *ev)
{
    ngx_agentlocator_pg_connect(ev->data);
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
