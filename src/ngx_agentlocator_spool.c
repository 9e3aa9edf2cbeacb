
/*
 * The CRM's spool (agentlocator_spool PATH [fsync=always|interval|off]
 * [journal_size=SIZE], SPEC §7): every CRM write is appended to this
 * worker's journal before it is queued for the database, so what Twilio
 * was answered about survives the database being away, slow or behind, a
 * reload, and the worker being killed.  A write leaves the journal when
 * the database has taken it; the journal is emptied (truncated) whenever
 * nothing in it is pending.
 *
 * Under steady load something always is, so a journal past journal_size
 * is left to drain and the next write starts a new one; an older journal
 * is removed as soon as the database has taken everything in it.  The
 * database takes writes oldest first, so the disk holds what is pending
 * plus the taken part of one journal.  While older journals still wait
 * (the database away for long), a new one is started only once the
 * current one is also a quarter of their bytes: a long outage keeps a few
 * dozen journals (and descriptors, each holds its lock), not thousands.
 *
 * A journal is a file "PID-SEQ.spool" in PATH (a name no other file has
 * at the time: see ngx_agentlocator_spool_start_file), held by its worker
 * with an exclusive flock().  A file nobody holds is another worker's that died
 * or exited with writes pending: any worker takes it over ("adopts" it)
 * and replays it.  Replays are harmless twice over: every statement is
 * idempotent, keyed on the CallSid and the event.
 *
 * A record (ngx_agentlocator_spool_record.h) is a statement's name and
 * its parameters, with a CRC.  A torn or damaged one (a worker killed
 * mid-write, a bad disk) is logged and skipped, and reading resumes at the
 * next record that checks out.
 */


#include "ngx_agentlocator.h"
#include "ngx_agentlocator_spool_record.h"

#include <sys/file.h>


#define NGX_AGENTLOCATOR_SPOOL_READ         (256 * 1024)

#if (NGX_AGENTLOCATOR_SPOOL_PARAMS_MAX > NGX_AGENTLOCATOR_PG_MAX_PARAMS)
#error "a spooled write could have more parameters than a queued one"
#endif

/* journal_size=: past it, a new journal (the default, the bounds) */
#define NGX_AGENTLOCATOR_SPOOL_JOURNAL      (1024 * 1024)
#define NGX_AGENTLOCATOR_SPOOL_JOURNAL_MIN  (16 * 1024)
#define NGX_AGENTLOCATOR_SPOOL_JOURNAL_MAX  (1024 * 1024 * 1024)

/* while older journals wait, a new one only past 1/N of their bytes */
#define NGX_AGENTLOCATOR_SPOOL_GROWTH       4

#define NGX_AGENTLOCATOR_SPOOL_TICK         1000    /* ms: fsync=interval */
#define NGX_AGENTLOCATOR_SPOOL_SCAN_TICKS   5       /* look for orphans */


typedef struct {
    ngx_queue_t                 queue;
    ngx_fd_t                    fd;
    off_t                       size;       /* bytes written */
    off_t                       read;       /* loaded into the queue up to */
    ngx_uint_t                  pending;    /* loaded, not yet taken */
    time_t                      mtime;      /* adopted: last written */
    unsigned                    current:1;  /* appended to */
    unsigned                    dirty:1;    /* written since its fsync */
    unsigned                    adopted:1;  /* another worker's */
    u_char                      path[1];
} ngx_agentlocator_spool_file_t;


typedef struct {
    ngx_str_t                   dir;
    ngx_uint_t                  fsync;      /* NGX_AGENTLOCATOR_SPOOL_FSYNC_* */
    off_t                       journal;    /* journal_size= */
    ngx_queue_t                 files;      /* oldest first */
    ngx_agentlocator_spool_file_t  *current;
    ngx_uint_t                  seq;        /* of the journals' names */
    ngx_uint_t                  tmp_seq;    /* of the temporary ones */
    ngx_uint_t                  dirty;      /* a journal is, or the dir */
    ngx_uint_t                  dir_dirty;  /* a journal named since */
    ngx_uint_t                  ticks;
    ngx_event_t                 tick;
    ngx_log_t                  *log;
    u_char                     *buf;        /* NGX_AGENTLOCATOR_SPOOL_READ */
    ngx_uint_t                  write_failed;
    ngx_uint_t                  rotate_failed;
    ngx_uint_t                  torn;
    ngx_uint_t                  adopted;
    ngx_uint_t                  replayed;   /* records loaded from disk */
} ngx_agentlocator_spool_t;


static ngx_agentlocator_spool_t  *ngx_agentlocator_spool;


static ngx_agentlocator_spool_file_t *ngx_agentlocator_spool_file(
    ngx_agentlocator_spool_t *sp, u_char *path, size_t len, ngx_fd_t fd);
static ngx_uint_t ngx_agentlocator_spool_full(ngx_agentlocator_spool_t *sp);
static ngx_int_t ngx_agentlocator_spool_start_file(
    ngx_agentlocator_spool_t *sp);
static void ngx_agentlocator_spool_start_failed(ngx_agentlocator_spool_t *sp,
    ngx_err_t err, const char *what, u_char *path);
static void ngx_agentlocator_spool_sync_dir(ngx_agentlocator_spool_t *sp);
static void ngx_agentlocator_spool_finish(ngx_agentlocator_spool_t *sp,
    ngx_agentlocator_spool_file_t *f);
static void ngx_agentlocator_spool_close(ngx_agentlocator_spool_file_t *f,
    ngx_uint_t remove);
static void ngx_agentlocator_spool_scan(ngx_agentlocator_spool_t *sp);
static void ngx_agentlocator_spool_adopt(ngx_agentlocator_spool_t *sp,
    u_char *path, size_t len);
static ngx_uint_t ngx_agentlocator_spool_before(
    ngx_agentlocator_spool_file_t *a, ngx_agentlocator_spool_file_t *b);
static void ngx_agentlocator_spool_tick(ngx_event_t *ev);


/* agentlocator_spool PATH [fsync=always|interval|off] [journal_size=SIZE] */

char *
ngx_agentlocator_spool_conf(ngx_conf_t *cf, ngx_agentlocator_main_conf_t *amcf)
{
    off_t        size;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (amcf->spool) {
        return "is duplicate";
    }

    value = cf->args->elts;

    amcf->spool_fsync = NGX_AGENTLOCATOR_SPOOL_FSYNC_INTERVAL;
    amcf->spool_journal = NGX_AGENTLOCATOR_SPOOL_JOURNAL;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "fsync=always") == 0) {
            amcf->spool_fsync = NGX_AGENTLOCATOR_SPOOL_FSYNC_ALWAYS;

        } else if (ngx_strcmp(value[i].data, "fsync=interval") == 0) {
            amcf->spool_fsync = NGX_AGENTLOCATOR_SPOOL_FSYNC_INTERVAL;

        } else if (ngx_strcmp(value[i].data, "fsync=off") == 0) {
            amcf->spool_fsync = NGX_AGENTLOCATOR_SPOOL_FSYNC_OFF;

        } else if (ngx_strncmp(value[i].data, "journal_size=", 13) == 0) {
            s.data = value[i].data + 13;
            s.len = value[i].len - 13;

            /* an offset: nginx 1.22's sizes know no "g", its offsets do */
            size = ngx_parse_offset(&s);

            if (size == NGX_ERROR
                || size < NGX_AGENTLOCATOR_SPOOL_JOURNAL_MIN
                || size > NGX_AGENTLOCATOR_SPOOL_JOURNAL_MAX)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid agentlocator_spool \"%V\", "
                                   "expected a size from 16k to 1g",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            amcf->spool_journal = size;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid agentlocator_spool parameter \"%V\", "
                               "expected \"fsync=always\", \"fsync=interval\", "
                               "\"fsync=off\" or \"journal_size=SIZE\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    return ngx_agentlocator_conf_path(cf, &value[1], &amcf->spool);
}


ngx_int_t
ngx_agentlocator_spool_init_worker(ngx_cycle_t *cycle,
    ngx_agentlocator_main_conf_t *amcf)
{
    ngx_agentlocator_spool_t  *sp;

    ngx_agentlocator_spool = NULL;

    if (amcf == NULL || amcf->spool == NULL) {
        return NGX_OK;
    }

    sp = ngx_pcalloc(cycle->pool, sizeof(ngx_agentlocator_spool_t));
    if (sp == NULL) {
        return NGX_ERROR;
    }

    sp->dir = amcf->spool->name;
    sp->fsync = amcf->spool_fsync;
    sp->journal = amcf->spool_journal;
    sp->log = cycle->log;
    ngx_queue_init(&sp->files);

    sp->tick.handler = ngx_agentlocator_spool_tick;
    sp->tick.data = sp;
    sp->tick.log = cycle->log;
    sp->tick.cancelable = 1;

    ngx_agentlocator_spool = sp;

    /* what a killed worker, or the last generation, left behind */
    ngx_agentlocator_spool_scan(sp);

    ngx_add_timer(&sp->tick, NGX_AGENTLOCATOR_SPOOL_TICK);

    return NGX_OK;
}


/*
 * The worker goes: its journals stay on disk for whoever comes next,
 * unless nothing in them is pending.  Closing them lets go of the locks.
 */

void
ngx_agentlocator_spool_exit_worker(void)
{
    off_t                           left;
    ngx_uint_t                      files;
    ngx_queue_t                    *q;
    ngx_agentlocator_spool_t       *sp;
    ngx_agentlocator_spool_file_t  *f;

    sp = ngx_agentlocator_spool;

    if (sp == NULL) {
        return;
    }

    left = 0;
    files = 0;

    while (!ngx_queue_empty(&sp->files)) {
        q = ngx_queue_head(&sp->files);
        f = ngx_queue_data(q, ngx_agentlocator_spool_file_t, queue);
        ngx_queue_remove(q);

        if (f->size && sp->fsync != NGX_AGENTLOCATOR_SPOOL_FSYNC_OFF) {
            (void) fdatasync(f->fd);
        }

        if (f->size) {
            left += f->size;
            files++;
        }

        ngx_agentlocator_spool_close(f, f->size == 0);
    }

    if (files) {
        ngx_log_error(NGX_LOG_NOTICE, sp->log, 0,
                      "SPOOL_LEFT files=%ui bytes=%O: writes the database "
                      "may not have taken yet; the next worker replays them",
                      files, left);
    }

    if (sp->buf) {
        ngx_free(sp->buf);
    }

    ngx_agentlocator_spool = NULL;
}


ngx_uint_t
ngx_agentlocator_spool_on(void)
{
    return ngx_agentlocator_spool != NULL;
}


/*
 * Appends one write.  "loaded": the caller queues it in memory as well
 * (and calls spool_done() when the database has it); otherwise it waits
 * on disk for spool_load().  NGX_ERROR: it could not be written (a full
 * disk), logged and counted.
 */

ngx_int_t
ngx_agentlocator_spool_append(const char *name, ngx_uint_t n,
    ngx_str_t *params, ngx_uint_t loaded, void **file)
{
    u_char                         *rec;
    size_t                          len, name_len;
    ssize_t                         written;
    ngx_uint_t                      i;
    ngx_err_t                       err;
    ngx_agentlocator_spool_t       *sp;
    ngx_agentlocator_spool_file_t  *f;
    u_char                          stack[2048];
    ngx_agentlocator_spool_param_t  sparams[NGX_AGENTLOCATOR_SPOOL_PARAMS_MAX];

    sp = ngx_agentlocator_spool;
    *file = NULL;

    name_len = ngx_strlen(name);

    for (i = 0; i < n && i < NGX_AGENTLOCATOR_SPOOL_PARAMS_MAX; i++) {
        sparams[i].data = params[i].data;
        sparams[i].len = params[i].len;
    }

    len = ngx_agentlocator_spool_record_size(name_len, n, sparams);

    if (len == 0 || n > NGX_AGENTLOCATOR_SPOOL_PARAMS_MAX) {
        ngx_log_error(NGX_LOG_ERR, sp->log, 0,
                      "SPOOL_WRITE_FAILED what=%s: the write is over the "
                      "spool's limit of a record", name);
        sp->write_failed++;
        return NGX_ERROR;
    }

    /* a journal that cannot be started: the current one grows instead */
    if (ngx_agentlocator_spool_full(sp)
        && ngx_agentlocator_spool_start_file(sp) != NGX_OK
        && sp->current == NULL)
    {
        sp->write_failed++;
        return NGX_ERROR;
    }

    f = sp->current;

    rec = (len <= sizeof(stack)) ? stack : ngx_alloc(len, sp->log);
    if (rec == NULL) {
        sp->write_failed++;
        return NGX_ERROR;
    }

    ngx_agentlocator_spool_record_encode(rec, name, name_len, n, sparams);

    written = pwrite(f->fd, rec, len, f->size);
    err = ngx_errno;

    if (rec != stack) {
        ngx_free(rec);
    }

    if (written != (ssize_t) len) {
        if (written >= 0) {
            err = NGX_ENOSPC;
        }

        /*
         * What part of it made it to the disk is cut off again; if even
         * that fails, the next record overwrites it, and a reader skips
         * what is left of it as torn.
         */
        if (ftruncate(f->fd, f->size) == -1) {
            ngx_log_error(NGX_LOG_ERR, sp->log, ngx_errno,
                          "ftruncate(\"%s\") failed", f->path);
        }

        if (sp->write_failed++ % 1000 == 0) {
            ngx_log_error(NGX_LOG_ERR, sp->log, err,
                          "SPOOL_WRITE_FAILED what=%s failed=%ui: cannot "
                          "append to \"%s\"; the write is kept in memory "
                          "only", name, sp->write_failed, f->path);
        }

        return NGX_ERROR;
    }

    f->size += len;

    if (sp->fsync == NGX_AGENTLOCATOR_SPOOL_FSYNC_INTERVAL) {
        f->dirty = 1;
        sp->dirty = 1;
    }

    if (sp->fsync == NGX_AGENTLOCATOR_SPOOL_FSYNC_ALWAYS
        && fdatasync(f->fd) == -1)
    {
        ngx_log_error(NGX_LOG_ERR, sp->log, ngx_errno,
                      "SPOOL_WRITE_FAILED what=%s: fdatasync(\"%s\") failed",
                      name, f->path);
    }

    if (loaded) {
        if (f->read == f->size - (off_t) len) {
            f->read = f->size;
        }

        f->pending++;
        *file = f;
    }

    return NGX_OK;
}


/* Whether writes wait on disk that are not in memory yet. */

ngx_uint_t
ngx_agentlocator_spool_backlog(void)
{
    ngx_queue_t                    *q;
    ngx_agentlocator_spool_t       *sp;
    ngx_agentlocator_spool_file_t  *f;

    sp = ngx_agentlocator_spool;

    if (sp == NULL) {
        return 0;
    }

    for (q = ngx_queue_head(&sp->files);
         q != ngx_queue_sentinel(&sp->files);
         q = ngx_queue_next(q))
    {
        f = ngx_queue_data(q, ngx_agentlocator_spool_file_t, queue);

        if (f->read < f->size) {
            return 1;
        }
    }

    return 0;
}


/*
 * Reads up to "max" writes that wait on disk, oldest first, into the
 * database queue (ngx_agentlocator_pg_load).
 */

void
ngx_agentlocator_spool_load(ngx_uint_t max)
{
    int                             found;
    u_char                         *p, *last;
    size_t                          want, used;
    ssize_t                         got;
    ngx_str_t                       params[NGX_AGENTLOCATOR_SPOOL_PARAMS_MAX];
    ngx_uint_t                      i, loaded, more;
    ngx_agentlocator_spool_scan_e   rc;
    ngx_agentlocator_spool_view_t   view;
    ngx_queue_t                    *q;
    ngx_agentlocator_spool_t       *sp;
    ngx_agentlocator_spool_file_t  *f;
    ngx_agentlocator_crm_statement_t  *st;

    sp = ngx_agentlocator_spool;

    if (sp == NULL) {
        return;
    }

    if (sp->buf == NULL) {
        sp->buf = ngx_alloc(NGX_AGENTLOCATOR_SPOOL_READ, sp->log);
        if (sp->buf == NULL) {
            return;
        }
    }

    loaded = 0;
    q = ngx_queue_head(&sp->files);

    while (loaded < max && q != ngx_queue_sentinel(&sp->files)) {
        f = ngx_queue_data(q, ngx_agentlocator_spool_file_t, queue);

        if (f->read >= f->size) {
            q = ngx_queue_next(q);

            /* an adopted file all of whose writes were taken already */
            ngx_agentlocator_spool_finish(sp, f);
            continue;
        }

        want = (size_t) ngx_min(f->size - f->read,
                                (off_t) NGX_AGENTLOCATOR_SPOOL_READ);

        got = pread(f->fd, sp->buf, want, f->read);

        if (got <= 0) {
            ngx_log_error(NGX_LOG_ALERT, sp->log, ngx_errno,
                          "SPOOL_TORN file=\"%s\" offset=%O: cannot read; "
                          "the rest of it is skipped", f->path, f->read);
            sp->torn++;
            f->read = f->size;
            continue;
        }

        p = sp->buf;
        last = sp->buf + got;

        more = (f->read + got < f->size);

        while (loaded < max && p < last) {

            rc = ngx_agentlocator_spool_record_scan(p, last - p, &used,
                                                    &found, &view);

            if (rc == NGX_AGENTLOCATOR_SPOOL_SHORT) {
                if (more && p != sp->buf) {
                    /* cut by the end of what was read: read from here */
                    break;
                }

                /* cut by the end of the file: torn */
                used = ngx_agentlocator_spool_record_resync(p, last - p,
                                                            &found);
                rc = NGX_AGENTLOCATOR_SPOOL_BAD;
            }

            if (rc == NGX_AGENTLOCATOR_SPOOL_BAD) {
                if (!found && !more) {
                    used = last - p;
                }

                ngx_log_error(NGX_LOG_ERR, sp->log, 0,
                              "SPOOL_TORN file=\"%s\" offset=%O bytes=%uz: a "
                              "torn or damaged record is skipped", f->path,
                              f->read + (p - sp->buf), used);
                sp->torn++;
                p += used;
                continue;
            }

            st = ngx_agentlocator_crm_statement((u_char *) view.name,
                                                view.name_len);

            if (st == NULL || st->nparams != view.n) {
                ngx_log_error(NGX_LOG_ERR, sp->log, 0,
                              "SPOOL_SKIPPED file=\"%s\": a write of "
                              "\"%*s\" with %uz parameters, which this "
                              "module does not know", f->path, view.name_len,
                              view.name, view.n);
                p += used;
                continue;
            }

            for (i = 0; i < view.n; i++) {
                params[i].data = (u_char *) view.params[i].data;
                params[i].len = view.params[i].len;
            }

            if (ngx_agentlocator_pg_load(st, view.n, params, f) != NGX_OK) {
                /* no memory: read from here next time */
                max = loaded;
                break;
            }

            p += used;
            f->pending++;
            loaded++;
            sp->replayed++;
        }

        f->read += p - sp->buf;
    }
}


/* The database has taken (or refused for good) a write loaded from "file". */

void
ngx_agentlocator_spool_done(void *file)
{
    ngx_agentlocator_spool_file_t  *f = file;

    if (f == NULL || ngx_agentlocator_spool == NULL) {
        return;
    }

    f->pending--;

    ngx_agentlocator_spool_finish(ngx_agentlocator_spool, f);
}


void
ngx_agentlocator_spool_status(ngx_agentlocator_spool_status_t *st)
{
    ngx_queue_t                    *q;
    ngx_agentlocator_spool_t       *sp;
    ngx_agentlocator_spool_file_t  *f;

    ngx_memzero(st, sizeof(ngx_agentlocator_spool_status_t));

    sp = ngx_agentlocator_spool;

    if (sp == NULL) {
        return;
    }

    st->on = 1;
    st->write_failed = sp->write_failed;
    st->torn = sp->torn;
    st->adopted = sp->adopted;
    st->replayed = sp->replayed;

    for (q = ngx_queue_head(&sp->files);
         q != ngx_queue_sentinel(&sp->files);
         q = ngx_queue_next(q))
    {
        f = ngx_queue_data(q, ngx_agentlocator_spool_file_t, queue);

        if (f->size) {
            st->files++;
            st->bytes += f->size;
            st->unread += f->size - f->read;
        }
    }
}


/*
 * Whether the next write starts a new journal: the current one is past
 * journal_size and, while older journals still hold writes, a quarter of
 * their bytes as well.
 */

static ngx_uint_t
ngx_agentlocator_spool_full(ngx_agentlocator_spool_t *sp)
{
    off_t                           older;
    ngx_queue_t                    *q;
    ngx_agentlocator_spool_file_t  *f;

    if (sp->current == NULL) {
        return 1;
    }

    if (sp->current->size < sp->journal) {
        return 0;
    }

    older = 0;

    for (q = ngx_queue_head(&sp->files);
         q != ngx_queue_sentinel(&sp->files);
         q = ngx_queue_next(q))
    {
        f = ngx_queue_data(q, ngx_agentlocator_spool_file_t, queue);

        if (!f->current) {
            older += f->size;
        }
    }

    return sp->current->size >= older / NGX_AGENTLOCATOR_SPOOL_GROWTH;
}


/*
 * Tried again at the next write, said at the first failure and then every
 * 1000th: without a journal the writes are kept in memory only; with one,
 * they go on into it.
 */

static void
ngx_agentlocator_spool_start_failed(ngx_agentlocator_spool_t *sp,
    ngx_err_t err, const char *what, u_char *path)
{
    if (sp->current) {
        if (sp->rotate_failed++ % 1000 == 0) {
            ngx_log_error(NGX_LOG_ERR, sp->log, err,
                          "SPOOL_ROTATE_FAILED failed=%ui: cannot %s "
                          "\"%s\"; writes go on into \"%s\"",
                          sp->rotate_failed, what, path, sp->current->path);
        }

        return;
    }

    if (sp->write_failed % 1000 == 0) {
        ngx_log_error(NGX_LOG_ERR, sp->log, err,
                      "SPOOL_WRITE_FAILED failed=%ui: cannot %s \"%s\"; "
                      "writes are kept in memory only",
                      sp->write_failed + 1, what, path);
    }
}


/*
 * A new journal: made under a temporary name, locked, then linked to its
 * name, so no other worker ever sees it unlocked.  Neither name may be
 * taken over: a journal left by a dead process can have the very name
 * this worker would give (a container started again gives its workers the
 * same pids; two containers on one volume have pids in common), and
 * writing over it would lose what it holds.  So the temporary file is
 * created exclusively and the journal's name made with link(), which
 * fails rather than replace; a name in use is skipped.
 */

#define NGX_AGENTLOCATOR_SPOOL_NAME_TRIES   1000

static ngx_int_t
ngx_agentlocator_spool_start_file(ngx_agentlocator_spool_t *sp)
{
    u_char                          tmp[NGX_MAX_PATH], path[NGX_MAX_PATH];
    u_char                         *p;
    ngx_fd_t                        fd;
    ngx_err_t                       err;
    ngx_uint_t                      tries;
    ngx_agentlocator_spool_file_t  *f;

    fd = NGX_INVALID_FILE;
    err = 0;
    p = path;
    *p = '\0';

    for (tries = 0; tries < NGX_AGENTLOCATOR_SPOOL_NAME_TRIES; tries++) {
        (void) ngx_snprintf(tmp, sizeof(tmp) - 1, "%V/%P-%ui.new%Z",
                            &sp->dir, ngx_pid, sp->tmp_seq++);

        fd = ngx_open_file(tmp, NGX_FILE_RDWR, O_CREAT|O_EXCL, 0600);

        if (fd != NGX_INVALID_FILE) {
            break;
        }

        err = ngx_errno;

        if (err != NGX_EEXIST) {
            break;
        }
    }

    if (fd == NGX_INVALID_FILE) {
        ngx_agentlocator_spool_start_failed(sp, err, "create", tmp);
        return NGX_ERROR;
    }

    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        err = ngx_errno;
        (void) ngx_cpystrn(path, tmp, sizeof(path));
        goto failed;
    }

    for (tries = 0; tries < NGX_AGENTLOCATOR_SPOOL_NAME_TRIES; tries++) {
        p = ngx_snprintf(path, sizeof(path) - 1, "%V/%P-%ui.spool",
                         &sp->dir, ngx_pid, sp->seq++);
        *p = '\0';

        if (link((char *) tmp, (char *) path) == 0) {
            break;
        }

        err = ngx_errno;

        if (err != NGX_EEXIST) {
            goto failed;
        }
    }

    if (tries == NGX_AGENTLOCATOR_SPOOL_NAME_TRIES) {
        goto failed;
    }

    (void) ngx_delete_file(tmp);

    /* the name as durable as what is written under it */
    if (sp->fsync == NGX_AGENTLOCATOR_SPOOL_FSYNC_ALWAYS) {
        ngx_agentlocator_spool_sync_dir(sp);

    } else if (sp->fsync == NGX_AGENTLOCATOR_SPOOL_FSYNC_INTERVAL) {
        sp->dir_dirty = 1;
        sp->dirty = 1;
    }

    f = ngx_agentlocator_spool_file(sp, path, p - path, fd);
    if (f == NULL) {
        (void) ngx_delete_file(path);
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    if (sp->current) {
        sp->current->current = 0;
        ngx_agentlocator_spool_finish(sp, sp->current);
    }

    f->current = 1;
    sp->current = f;
    ngx_queue_insert_tail(&sp->files, &f->queue);

    return NGX_OK;

failed:

    ngx_agentlocator_spool_start_failed(sp, err, "make", path);

    (void) ngx_delete_file(tmp);
    (void) ngx_close_file(fd);

    return NGX_ERROR;
}


static ngx_agentlocator_spool_file_t *
ngx_agentlocator_spool_file(ngx_agentlocator_spool_t *sp, u_char *path,
    size_t len, ngx_fd_t fd)
{
    ngx_agentlocator_spool_file_t  *f;

    f = ngx_calloc(sizeof(ngx_agentlocator_spool_file_t) + len, sp->log);
    if (f == NULL) {
        return NULL;
    }

    f->fd = fd;
    ngx_memcpy(f->path, path, len);
    f->path[len] = '\0';

    return f;
}


/*
 * Nothing of "f" is pending or unread: the current journal is emptied,
 * any other is removed.
 */

static void
ngx_agentlocator_spool_finish(ngx_agentlocator_spool_t *sp,
    ngx_agentlocator_spool_file_t *f)
{
    if (f->pending || f->read < f->size) {
        return;
    }

    if (f->current) {
        if (f->size && ftruncate(f->fd, 0) == 0) {
            f->size = 0;
            f->read = 0;
        }

        return;
    }

    if (f->adopted) {
        ngx_log_error(NGX_LOG_NOTICE, sp->log, 0,
                      "SPOOL_REPLAYED file=\"%s\" bytes=%O", f->path,
                      f->size);
    }

    ngx_queue_remove(&f->queue);
    ngx_agentlocator_spool_close(f, 1);
}


static void
ngx_agentlocator_spool_close(ngx_agentlocator_spool_file_t *f,
    ngx_uint_t remove)
{
    /* removed while still locked: nobody adopts a file on its way out */
    if (remove && ngx_delete_file(f->path) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                      ngx_delete_file_n " \"%s\" failed", f->path);
    }

    (void) ngx_close_file(f->fd);
    ngx_free(f);
}


/* A journal's new name survives the machine going down (not a crash). */

static void
ngx_agentlocator_spool_sync_dir(ngx_agentlocator_spool_t *sp)
{
    ngx_fd_t  fd;
    u_char    path[NGX_MAX_PATH];

    (void) ngx_snprintf(path, sizeof(path) - 1, "%V%Z", &sp->dir);
    path[sizeof(path) - 1] = '\0';

    fd = ngx_open_file(path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, sp->log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", path);
        return;
    }

    if (fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_ERR, sp->log, ngx_errno,
                      "fsync(\"%s\") failed", path);
    }

    (void) ngx_close_file(fd);
}


/* Journals nobody holds, and temporary names a killed worker left. */

static void
ngx_agentlocator_spool_scan(ngx_agentlocator_spool_t *sp)
{
    u_char     *name, *p;
    size_t      len;
    ngx_fd_t    fd;
    ngx_dir_t   dir;
    u_char      path[NGX_MAX_PATH];

    if (ngx_open_dir(&sp->dir, &dir) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, sp->log, ngx_errno,
                      ngx_open_dir_n " \"%V\" failed", &sp->dir);
        return;
    }

    for ( ;; ) {
        ngx_set_errno(0);

        if (ngx_read_dir(&dir) == NGX_ERROR) {
            break;
        }

        name = ngx_de_name(&dir);
        len = ngx_de_namelen(&dir);

        if (sp->dir.len + 1 + len >= sizeof(path)) {
            continue;
        }

        p = ngx_sprintf(path, "%V/%*s", &sp->dir, len, name);
        *p = '\0';

        if (len > sizeof(".spool") - 1
            && ngx_strncmp(name + len - 6, ".spool", 6) == 0)
        {
            ngx_agentlocator_spool_adopt(sp, path, p - path);
            continue;
        }

        if (len > sizeof(".new") - 1
            && ngx_strncmp(name + len - 4, ".new", 4) == 0)
        {
            /* killed between creating and naming it: it holds nothing */
            fd = ngx_open_file(path, NGX_FILE_RDWR, NGX_FILE_OPEN, 0);
            if (fd == NGX_INVALID_FILE) {
                continue;
            }

            if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
                (void) ngx_delete_file(path);
            }

            (void) ngx_close_file(fd);
        }
    }

    (void) ngx_close_dir(&dir);
}


static void
ngx_agentlocator_spool_adopt(ngx_agentlocator_spool_t *sp, u_char *path,
    size_t len)
{
    ngx_fd_t                        fd;
    ngx_queue_t                    *q;
    ngx_file_info_t                 fi, now;
    ngx_agentlocator_spool_file_t  *f, *g;

    for (q = ngx_queue_head(&sp->files);
         q != ngx_queue_sentinel(&sp->files);
         q = ngx_queue_next(q))
    {
        f = ngx_queue_data(q, ngx_agentlocator_spool_file_t, queue);

        if (ngx_strcmp(f->path, path) == 0) {
            return;
        }
    }

    fd = ngx_open_file(path, NGX_FILE_RDWR, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return;
    }

    /* held: its worker lives (this generation's, or the last one's) */
    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        (void) ngx_close_file(fd);
        return;
    }

    /* removed by its owner between our open() and flock(): not ours */
    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_info(path, &now) == NGX_FILE_ERROR
        || fi.st_ino != now.st_ino || fi.st_dev != now.st_dev)
    {
        (void) ngx_close_file(fd);
        return;
    }

    f = ngx_agentlocator_spool_file(sp, path, len, fd);
    if (f == NULL) {
        (void) ngx_close_file(fd);
        return;
    }

    f->size = ngx_file_size(&fi);
    f->mtime = ngx_file_mtime(&fi);
    f->adopted = 1;

    /*
     * older than anything of this worker's: replayed first; among the
     * adopted ones, in the order they were written (a directory lists
     * them in any order)
     */
    for (q = ngx_queue_head(&sp->files);
         q != ngx_queue_sentinel(&sp->files);
         q = ngx_queue_next(q))
    {
        g = ngx_queue_data(q, ngx_agentlocator_spool_file_t, queue);

        if (!g->adopted || !ngx_agentlocator_spool_before(g, f)) {
            break;
        }
    }

    /* before q */
    ngx_queue_insert_tail(q, &f->queue);

    if (f->size == 0) {
        ngx_agentlocator_spool_finish(sp, f);
        return;
    }

    sp->adopted++;

    ngx_log_error(NGX_LOG_NOTICE, sp->log, 0,
                  "SPOOL_ADOPTED file=\"%s\" bytes=%O: left by a worker "
                  "that is gone; replaying it", path, f->size);
}


/*
 * Whether journal "a" was written before "b": one worker's by their
 * sequence (PID-SEQ.spool), different workers' by when they were last
 * written.
 */

static ngx_uint_t
ngx_agentlocator_spool_before(ngx_agentlocator_spool_file_t *a,
    ngx_agentlocator_spool_file_t *b)
{
    u_char     *na, *nb, *da, *db;
    ngx_int_t   sa, sb;

    na = (u_char *) strrchr((char *) a->path, '/');
    nb = (u_char *) strrchr((char *) b->path, '/');
    na = na ? na + 1 : a->path;
    nb = nb ? nb + 1 : b->path;

    da = (u_char *) ngx_strchr(na, '-');
    db = (u_char *) ngx_strchr(nb, '-');

    if (da && db && da - na == db - nb
        && ngx_strncmp(na, nb, da - na) == 0)
    {
        /* every journal's name ends in ".spool" */
        sa = ngx_atoi(da + 1, ngx_strlen(da + 1) - (sizeof(".spool") - 1));
        sb = ngx_atoi(db + 1, ngx_strlen(db + 1) - (sizeof(".spool") - 1));

        if (sa != NGX_ERROR && sb != NGX_ERROR) {
            return sa < sb;
        }
    }

    return a->mtime < b->mtime;
}


/*
 * Each second: the journals written since synced (fsync=interval: a
 * journal rotated away within the second too), and the directory if one
 * was named; every few seconds, journals left by workers that are gone
 * are looked for.
 */

static void
ngx_agentlocator_spool_tick(ngx_event_t *ev)
{
    ngx_queue_t                    *q;
    ngx_agentlocator_spool_t       *sp;
    ngx_agentlocator_spool_file_t  *f;

    sp = ev->data;

    if (sp->dirty) {
        for (q = ngx_queue_head(&sp->files);
             q != ngx_queue_sentinel(&sp->files);
             q = ngx_queue_next(q))
        {
            f = ngx_queue_data(q, ngx_agentlocator_spool_file_t, queue);

            if (f->dirty && fdatasync(f->fd) == -1) {
                ngx_log_error(NGX_LOG_ERR, sp->log, ngx_errno,
                              "fdatasync(\"%s\") failed", f->path);
            }

            f->dirty = 0;
        }

        if (sp->dir_dirty) {
            ngx_agentlocator_spool_sync_dir(sp);
            sp->dir_dirty = 0;
        }

        sp->dirty = 0;
    }

    if (++sp->ticks % NGX_AGENTLOCATOR_SPOOL_SCAN_TICKS == 0
        && !ngx_exiting)
    {
        ngx_agentlocator_spool_scan(sp);
        ngx_agentlocator_pg_kick();
    }

    if (!ngx_exiting && !ngx_quit && !ngx_terminate) {
        ngx_add_timer(ev, NGX_AGENTLOCATOR_SPOOL_TICK);
    }
}
