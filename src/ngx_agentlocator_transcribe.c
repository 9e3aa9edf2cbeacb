
/*
 * agentlocator_transcribe_url: every recording of a call becomes a
 * transcript in the CRM (SPEC §9).  Twilio's recording is fetched from
 * RecordingUrl + ".wav" with the account's Basic auth, a stream's WAV is
 * read from disk, and either is posted as multipart/form-data to an
 * OpenAI-compatible /v1/audio/transcriptions (OpenAI, Groq,
 * faster-whisper-server, tools/transcriber); its {"text"} is a CRM write
 * like any other, so it waits out a database that is away.  All of it on
 * the outbound HTTP engine: nothing blocks a worker.
 *
 * Twilio's recording may not be there yet when <Record action> calls back
 * (twilio-facts: fetch with backoff), so a fetch that finds nothing, or a
 * service that is busy, is tried again a few times.  With
 * agentlocator_recordings, the fetched recording is also kept there as
 * {RecordingSid}.wav, for the CRM page's player.
 *
 * A job belongs to the worker that started it and ends with it: a worker
 * that exits gives up the jobs it has (TRANSCRIBE_FAILED ... worker
 * exiting), and does not wait for them.  The recording does not end with
 * it: a job that starts marks its recording due for the sweep once its
 * claim (sweep=, three times over) runs out, the sweep of every worker
 * (ngx_agentlocator_transcribe_sweep.c) keeps its own jobs' claims ahead
 * and takes what is due, so a recording whose job was given up (a worker
 * that exited, a service away past the retries, no free job) is done
 * again later by some worker, once.  Only what would fail the same way
 * again is given up for good.
 */


#include "ngx_agentlocator.h"
#include "ngx_agentlocator_service_reply.h"


#define NGX_AGENTLOCATOR_TRANSCRIBE_TIMEOUT   120000
#define NGX_AGENTLOCATOR_TRANSCRIBE_MAX_SIZE  (25 * 1024 * 1024)
#define NGX_AGENTLOCATOR_TRANSCRIBE_SWEEP     30000

/* the transcript kept: one spool record holds it with room to spare */
#define NGX_AGENTLOCATOR_TRANSCRIPT_MAX       (48 * 1024)


/* ms to wait before each try again: a recording Twilio is still writing */
static ngx_msec_t  ngx_agentlocator_transcribe_fetch_retries[] = {
    1000, 2000, 4000, 8000, 15000, 30000
};

/* and a service that is busy or away */
static ngx_msec_t  ngx_agentlocator_transcribe_post_retries[] = {
    5000, 20000
};


struct ngx_agentlocator_transcribe_s {
    ngx_str_t                     url;
    ngx_str_t                     model;
    ngx_str_t                     language;     /* empty: the service's */
    ngx_str_t                     header;       /* Authorization, or empty */
    ngx_msec_t                    timeout;
    size_t                        max_size;
    ngx_msec_t                    sweep;        /* 0: off */
};


typedef struct {
    ngx_agentlocator_transcribe_t  *conf;
    ngx_path_t                     *recordings; /* NULL: no copy kept */
    ngx_log_t                      *log;
    ngx_queue_t                     queue;      /* of all jobs */

    ngx_str_t                       url;        /* Twilio's, + ".wav" */
    ngx_str_t                       user;
    ngx_str_t                       password;
    ngx_uint_t                      fetched;    /* else still to fetch */
    ngx_uint_t                      tries;      /* of this stage */
    ngx_uint_t                      in_flight;
    ngx_event_t                     retry;      /* cancelable */
    ngx_connection_t                retry_owner;

    u_char                          call_sid[NGX_AGENTLOCATOR_SID_LEN];
    u_char                          recording_sid[NGX_AGENTLOCATOR_SID_LEN];
    ngx_uint_t                      twilio;     /* else a stream's WAV */
    ngx_str_t                       wav_path;   /* NUL-terminated */
    u_char                          filename[NGX_AGENTLOCATOR_SID_LEN + 5];

    ngx_str_t                       audio;      /* fetched from Twilio */
    ngx_msec_t                      started;
} ngx_agentlocator_transcribe_job_t;


static ngx_int_t ngx_agentlocator_transcribe_bounded(ngx_conf_t *cf,
    ngx_str_t *arg, const char *name, ngx_uint_t size, ngx_int_t min,
    ngx_int_t max, const char *range);
static ngx_uint_t ngx_agentlocator_transcribe_url_ok(
    ngx_agentlocator_main_conf_t *amcf, ngx_str_t *recording_sid,
    ngx_str_t *recording_url);
static ngx_int_t ngx_agentlocator_transcribe_start_twilio(
    ngx_agentlocator_main_conf_t *amcf, ngx_agentlocator_transcribe_job_t *job,
    ngx_str_t *recording_sid, ngx_str_t *recording_url);
static ngx_int_t ngx_agentlocator_transcribe_start_file(
    ngx_agentlocator_transcribe_job_t *job, ngx_str_t *wav_path);
static void ngx_agentlocator_transcribe_due(ngx_agentlocator_main_conf_t *amcf,
    ngx_str_t *call_sid, ngx_str_t *recording_sid, ngx_str_t *url,
    ngx_str_t *wav_path, ngx_uint_t started);
static ngx_agentlocator_transcribe_job_t *ngx_agentlocator_transcribe_job(
    ngx_agentlocator_main_conf_t *amcf, ngx_str_t *call_sid, ngx_log_t *log);
static ngx_int_t ngx_agentlocator_transcribe_fetch(
    ngx_agentlocator_transcribe_job_t *job);
static void ngx_agentlocator_transcribe_keep(
    ngx_agentlocator_transcribe_job_t *job);
static ngx_uint_t ngx_agentlocator_transcribe_again(
    ngx_agentlocator_transcribe_job_t *job, const char *stage,
    ngx_agentlocator_http_result_t *result, ngx_msec_t *delays,
    ngx_uint_t ndelays);
static ngx_uint_t ngx_agentlocator_transcribe_passing(
    ngx_agentlocator_http_result_t *result);
static void ngx_agentlocator_transcribe_retry(ngx_event_t *ev);
static void ngx_agentlocator_transcribe_fetched(
    ngx_agentlocator_http_result_t *result, void *data);
static ngx_int_t ngx_agentlocator_transcribe_post(
    ngx_agentlocator_transcribe_job_t *job);
static void ngx_agentlocator_transcribe_answered(
    ngx_agentlocator_http_result_t *result, void *data);
static void ngx_agentlocator_transcribe_failed(
    ngx_agentlocator_transcribe_job_t *job, const char *stage,
    ngx_agentlocator_http_result_t *result);
static void ngx_agentlocator_transcribe_sids(
    ngx_agentlocator_transcribe_job_t *job, ngx_str_t *call_sid,
    ngx_str_t *recording_sid);
static void ngx_agentlocator_transcribe_final(
    ngx_agentlocator_transcribe_job_t *job, const char *stage);
static void ngx_agentlocator_transcribe_free(
    ngx_agentlocator_transcribe_job_t *job);


static ngx_uint_t  ngx_agentlocator_transcribe_jobs;
static ngx_queue_t ngx_agentlocator_transcribe_queue;


/*
 * agentlocator_transcribe_url URL [model=NAME] [language=CODE]
 * [key=SECRET] [timeout=TIME] [max_size=SIZE] [sweep=TIME|off]
 */

char *
ngx_agentlocator_transcribe_conf(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf)
{
    u_char                         *p;
    ngx_int_t                       n;
    ngx_str_t                      *value, v, key;
    ngx_uint_t                      i;
    const char                     *err;
    ngx_agentlocator_public_url_t   url;
    ngx_agentlocator_transcribe_t  *tc;

    if (amcf->transcribe) {
        return "is duplicate";
    }

    value = cf->args->elts;

    tc = ngx_pcalloc(cf->pool, sizeof(ngx_agentlocator_transcribe_t));
    if (tc == NULL) {
        return NGX_CONF_ERROR;
    }

    err = ngx_agentlocator_public_url_parse(cf->pool, &value[1], &url);
    if (err) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_transcribe_url \"%V\": %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    tc->url = url.url;
    ngx_str_set(&tc->model, "whisper-1");
    tc->timeout = NGX_AGENTLOCATOR_TRANSCRIBE_TIMEOUT;
    tc->max_size = NGX_AGENTLOCATOR_TRANSCRIBE_MAX_SIZE;
    tc->sweep = NGX_AGENTLOCATOR_TRANSCRIBE_SWEEP;
    ngx_str_null(&key);

    for (i = 2; i < cf->args->nelts; i++) {
        v = value[i];

        if (ngx_strncmp(v.data, "model=", 6) == 0 && v.len > 6
            && v.len <= 6 + 64)
        {
            tc->model.data = v.data + 6;
            tc->model.len = v.len - 6;

            if (ngx_agentlocator_storable_text(&tc->model) != NGX_OK) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(v.data, "language=", 9) == 0 && v.len > 9
            && v.len <= 9 + 16)
        {
            tc->language.data = v.data + 9;
            tc->language.len = v.len - 9;

            if (ngx_agentlocator_storable_text(&tc->language) != NGX_OK) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(v.data, "key=", 4) == 0) {
            v.data += 4;
            v.len -= 4;

            err = ngx_agentlocator_secret_load(cf, &v, &key);
            if (err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "agentlocator_transcribe_url key %s", err);
                return NGX_CONF_ERROR;
            }

            for (p = key.data; p < key.data + key.len; p++) {
                if (*p <= ' ' || *p == 0x7f) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "agentlocator_transcribe_url key "
                                       "must be one printable word");
                    return NGX_CONF_ERROR;
                }
            }

            continue;
        }

        if (ngx_strncmp(v.data, "timeout=", 8) == 0) {
            n = ngx_agentlocator_transcribe_bounded(cf, &v, "timeout=", 0,
                                                    1000, 3600 * 1000,
                                                    "1s to 1h");
            if (n == NGX_ERROR) {
                return NGX_CONF_ERROR;
            }

            tc->timeout = (ngx_msec_t) n;
            continue;
        }

        if (ngx_strncmp(v.data, "max_size=", 9) == 0) {
            n = ngx_agentlocator_transcribe_bounded(cf, &v, "max_size=", 1,
                                                    1024, 1024 * 1024 * 1024,
                                                    "1k to 1g");
            if (n == NGX_ERROR) {
                return NGX_CONF_ERROR;
            }

            tc->max_size = (size_t) n;
            continue;
        }

        if (v.len == 9 && ngx_strncmp(v.data, "sweep=off", 9) == 0) {
            tc->sweep = 0;
            continue;
        }

        if (ngx_strncmp(v.data, "sweep=", 6) == 0) {
            n = ngx_agentlocator_transcribe_bounded(cf, &v, "sweep=", 0,
                                                    1000, 3600 * 1000,
                                                    "1s to 1h, or off");
            if (n == NGX_ERROR) {
                return NGX_CONF_ERROR;
            }

            tc->sweep = (ngx_msec_t) n;
            continue;
        }

    invalid:

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_transcribe_url parameter "
                           "\"%V\", expected model=, language=, key=, "
                           "timeout=, max_size= or sweep=", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (key.len) {
        tc->header.len = sizeof("Authorization: Bearer ") - 1 + key.len;
        tc->header.data = ngx_pnalloc(cf->pool, tc->header.len);
        if (tc->header.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_sprintf(tc->header.data, "Authorization: Bearer %V", &key);
    }

    amcf->transcribe = tc;

    return NGX_CONF_OK;
}


/*
 * The value of "name=VALUE", a time in ms or (size) a size in bytes, from
 * min to max; out of bounds, the error says so in an operator's words
 * (range), and NGX_ERROR.
 */

static ngx_int_t
ngx_agentlocator_transcribe_bounded(ngx_conf_t *cf, ngx_str_t *arg,
    const char *name, ngx_uint_t size, ngx_int_t min, ngx_int_t max,
    const char *range)
{
    off_t      off;
    size_t     len;
    ngx_str_t  v;

    len = ngx_strlen(name);

    v.data = arg->data + len;
    v.len = arg->len - len;

    /* a size as an offset: nginx 1.22's sizes know no "g", its offsets do */
    off = size ? ngx_parse_offset(&v) : (off_t) ngx_parse_time(&v, 0);

    if (off == NGX_ERROR || off < min || off > max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentlocator_transcribe_url \"%V\": "
                           "%s must be from %s", arg, name, range);
        return NGX_ERROR;
    }

    return (ngx_int_t) off;
}


/*
 * Twilio's recording: fetched from RecordingUrl + ".wav" with the account's
 * credentials, and only from under agentlocator_twilio_api_url, so that a
 * webhook cannot send those credentials anywhere else.
 */

void
ngx_agentlocator_transcribe_twilio(ngx_agentlocator_main_conf_t *amcf,
    ngx_str_t *call_sid, ngx_str_t *recording_sid, ngx_str_t *recording_url,
    ngx_log_t *log)
{
    ngx_str_t                           none;
    ngx_agentlocator_transcribe_job_t  *job;

    if (amcf->transcribe == NULL) {
        return;
    }

    if (!ngx_agentlocator_transcribe_url_ok(amcf, recording_sid,
                                            recording_url))
    {
        ngx_agentlocator_metrics_transcribe(
            NGX_AGENTLOCATOR_METRICS_TX_SKIPPED);
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "TRANSCRIBE_SKIPPED call=%V reason=recording_url "
                      "(not under agentlocator_twilio_api_url)", call_sid);
        return;
    }

    ngx_str_null(&none);

    job = ngx_agentlocator_transcribe_job(amcf, call_sid, log);

    ngx_agentlocator_transcribe_due(amcf, call_sid, recording_sid,
                                    recording_url, &none, job != NULL);

    if (job == NULL) {
        return;
    }

    if (ngx_agentlocator_transcribe_start_twilio(amcf, job, recording_sid,
                                                 recording_url)
        != NGX_OK)
    {
        ngx_agentlocator_transcribe_failed(job, "fetch", NULL);
    }
}


static ngx_uint_t
ngx_agentlocator_transcribe_url_ok(ngx_agentlocator_main_conf_t *amcf,
    ngx_str_t *recording_sid, ngx_str_t *recording_url)
{
    return !(recording_sid->len != NGX_AGENTLOCATOR_SID_LEN
             || recording_url->len <= amcf->api_url.len + 1
             || recording_url->len > 2048
             || ngx_strncmp(recording_url->data, amcf->api_url.data,
                            amcf->api_url.len) != 0
             || recording_url->data[amcf->api_url.len] != '/'
             || ngx_strlchr(recording_url->data,
                            recording_url->data + recording_url->len, '?')
             || ngx_strlchr(recording_url->data,
                            recording_url->data + recording_url->len, '#'));
}


/* NGX_ERROR: the job is the caller's to give up */

static ngx_int_t
ngx_agentlocator_transcribe_start_twilio(ngx_agentlocator_main_conf_t *amcf,
    ngx_agentlocator_transcribe_job_t *job, ngx_str_t *recording_sid,
    ngx_str_t *recording_url)
{
    u_char  *p;

    job->twilio = 1;
    ngx_memcpy(job->recording_sid, recording_sid->data,
               NGX_AGENTLOCATOR_SID_LEN);
    ngx_sprintf(job->filename, "%*s.wav%Z", NGX_AGENTLOCATOR_SID_LEN,
                job->recording_sid);

    job->url.len = recording_url->len + sizeof(".wav") - 1;
    job->url.data = ngx_alloc(job->url.len, job->log);
    if (job->url.data == NULL) {
        job->url.len = 0;
        return NGX_ERROR;
    }

    p = ngx_cpymem(job->url.data, recording_url->data, recording_url->len);
    ngx_memcpy(p, ".wav", 4);

    job->user = amcf->account_sid;
    job->password = amcf->auth_token;

    return ngx_agentlocator_transcribe_fetch(job);
}


static ngx_int_t
ngx_agentlocator_transcribe_fetch(ngx_agentlocator_transcribe_job_t *job)
{
    ngx_agentlocator_http_out_t  out;

    ngx_memzero(&out, sizeof(ngx_agentlocator_http_out_t));

    out.url = job->url;
    out.user = job->user;
    out.password = job->password;
    out.get = 1;
    out.background = 1;
    out.timeout = job->conf->timeout;
    out.max_body = job->conf->max_size;

    if (ngx_agentlocator_http_send(&out, ngx_agentlocator_transcribe_fetched,
                                   job, job->log)
        == NULL)
    {
        return NGX_ERROR;
    }

    job->in_flight = 1;

    return NGX_OK;
}


/* A stream's WAV (agentlocator_recordings), once its stream is over. */

void
ngx_agentlocator_transcribe_file(ngx_agentlocator_main_conf_t *amcf,
    ngx_str_t *call_sid, ngx_str_t *wav_path, ngx_log_t *log)
{
    ngx_str_t                           none;
    ngx_agentlocator_transcribe_job_t  *job;

    if (amcf->transcribe == NULL) {
        return;
    }

    ngx_str_null(&none);

    job = ngx_agentlocator_transcribe_job(amcf, call_sid, log);

    if (call_sid->len == NGX_AGENTLOCATOR_SID_LEN) {
        ngx_agentlocator_transcribe_due(amcf, call_sid, &none, &none,
                                        wav_path, job != NULL);
    }

    if (job == NULL) {
        return;
    }

    if (ngx_agentlocator_transcribe_start_file(job, wav_path) != NGX_OK) {
        ngx_agentlocator_transcribe_failed(job, "post", NULL);
    }
}


static ngx_int_t
ngx_agentlocator_transcribe_start_file(ngx_agentlocator_transcribe_job_t *job,
    ngx_str_t *wav_path)
{
    job->wav_path.data = ngx_alloc(wav_path->len + 1, job->log);
    if (job->wav_path.data == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn(job->wav_path.data, wav_path->data, wav_path->len + 1);
    job->wav_path.len = wav_path->len;

    ngx_sprintf(job->filename, "%*s.wav%Z", NGX_AGENTLOCATOR_SID_LEN,
                job->call_sid);

    return ngx_agentlocator_transcribe_post(job);
}


/*
 * The recording is due for the sweep: once a started job's claim runs out
 * (the sweep keeps it ahead while the job runs), or at once for a job
 * that could not start.  Without the sweep nothing is ever due.
 */

static void
ngx_agentlocator_transcribe_due(ngx_agentlocator_main_conf_t *amcf,
    ngx_str_t *call_sid, ngx_str_t *recording_sid, ngx_str_t *url,
    ngx_str_t *wav_path, ngx_uint_t started)
{
    ngx_msec_t  every;

    every = amcf->transcribe->sweep;

    if (every == 0) {
        return;
    }

    ngx_agentlocator_crm_transcribe_due(call_sid, recording_sid, url,
                                        wav_path,
                                        started ? NGX_AGENTLOCATOR_CLAIM(every)
                                                : 0);
}


/*
 * A recording the sweep claimed: Twilio's (recording_sid, url) or a
 * stream's WAV (wav_path).  NGX_BUSY: no free job; NGX_DECLINED: not for
 * this host (a URL outside agentlocator_twilio_api_url, a WAV that is not
 * this host's agentlocator_recordings/{CallSid}.wav); NGX_ERROR: it could
 * not start.  Either way its claim runs out and the sweep takes it again,
 * within its attempts.
 */

ngx_int_t
ngx_agentlocator_transcribe_resume(ngx_agentlocator_main_conf_t *amcf,
    ngx_str_t *call_sid, ngx_str_t *recording_sid, ngx_str_t *url,
    ngx_str_t *wav_path)
{
    u_char                              name[NGX_MAX_PATH], *p;
    ngx_int_t                           rc;
    ngx_file_info_t                     fi;
    ngx_agentlocator_transcribe_job_t  *job;

    if (call_sid->len != NGX_AGENTLOCATOR_SID_LEN) {
        return NGX_DECLINED;
    }

    if (recording_sid->len) {
        if (!ngx_agentlocator_transcribe_url_ok(amcf, recording_sid, url)) {
            return NGX_DECLINED;
        }

    } else {
        /*
         * only a WAV this module writes, PATH/{CallSid}.wav of its call:
         * whoever can write the CRM must not choose a file to upload
         */
        if (amcf->recordings == NULL
            || amcf->recordings->name.len + 1 + NGX_AGENTLOCATOR_SID_LEN
               + sizeof(".wav") > NGX_MAX_PATH)
        {
            return NGX_DECLINED;
        }

        p = ngx_sprintf(name, "%V/%V.wav", &amcf->recordings->name,
                        call_sid);

        if (wav_path->len != (size_t) (p - name)
            || ngx_strncmp(wav_path->data, name, wav_path->len) != 0)
        {
            return NGX_DECLINED;
        }

        *p = '\0';

        /* a local stat: the WAV is this host's, or another's */
        if (ngx_file_info(name, &fi) == NGX_FILE_ERROR) {
            return NGX_DECLINED;
        }
    }

    if (ngx_agentlocator_transcribe_jobs >= NGX_AGENTLOCATOR_TRANSCRIBE_JOBS) {
        return NGX_BUSY;
    }

    job = ngx_agentlocator_transcribe_job(amcf, call_sid, ngx_cycle->log);
    if (job == NULL) {
        return NGX_ERROR;
    }

    if (recording_sid->len) {
        rc = ngx_agentlocator_transcribe_start_twilio(amcf, job,
                                                      recording_sid, url);
    } else {
        rc = ngx_agentlocator_transcribe_start_file(job, wav_path);
    }

    if (rc != NGX_OK) {
        ngx_agentlocator_transcribe_failed(job, recording_sid->len
                                                ? "fetch" : "post", NULL);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_uint_t
ngx_agentlocator_transcribe_free_slots(void)
{
    return NGX_AGENTLOCATOR_TRANSCRIBE_JOBS - ngx_agentlocator_transcribe_jobs;
}


ngx_msec_t
ngx_agentlocator_transcribe_sweep_every(ngx_agentlocator_main_conf_t *amcf)
{
    return amcf->transcribe ? amcf->transcribe->sweep : 0;
}


/*
 * The jobs running, as two arrays for PostgreSQL ({RE..,RE..} of Twilio's
 * recordings, {CA..} of the calls whose WAV is being transcribed): the
 * sweep keeps their claims ahead.  SIDs are letters and digits, nothing to
 * quote.  Each buffer holds NGX_AGENTLOCATOR_TRANSCRIBE_KEYS_LEN bytes.
 */

void
ngx_agentlocator_transcribe_running(ngx_str_t *twilio, ngx_str_t *streams)
{
    u_char                             *t, *w;
    ngx_queue_t                        *q;
    ngx_agentlocator_transcribe_job_t  *job;

    t = twilio->data;
    w = streams->data;
    *t++ = '{';
    *w++ = '{';

    if (ngx_agentlocator_transcribe_queue.next) {
        for (q = ngx_queue_head(&ngx_agentlocator_transcribe_queue);
             q != ngx_queue_sentinel(&ngx_agentlocator_transcribe_queue);
             q = ngx_queue_next(q))
        {
            job = ngx_queue_data(q, ngx_agentlocator_transcribe_job_t, queue);

            if (job->twilio) {
                if (t - twilio->data > 1) {
                    *t++ = ',';
                }

                t = ngx_cpymem(t, job->recording_sid,
                               NGX_AGENTLOCATOR_SID_LEN);

            } else {
                if (w - streams->data > 1) {
                    *w++ = ',';
                }

                w = ngx_cpymem(w, job->call_sid, NGX_AGENTLOCATOR_SID_LEN);
            }
        }
    }

    *t++ = '}';
    *w++ = '}';

    twilio->len = t - twilio->data;
    streams->len = w - streams->data;
}


static ngx_agentlocator_transcribe_job_t *
ngx_agentlocator_transcribe_job(ngx_agentlocator_main_conf_t *amcf,
    ngx_str_t *call_sid, ngx_log_t *log)
{
    ngx_agentlocator_transcribe_job_t  *job;

    if (call_sid->len != NGX_AGENTLOCATOR_SID_LEN) {
        return NULL;
    }

    /* each holds up to max_size of audio: a bounded number of them */
    if (ngx_agentlocator_transcribe_jobs >= NGX_AGENTLOCATOR_TRANSCRIBE_JOBS) {
        ngx_agentlocator_metrics_transcribe(
            NGX_AGENTLOCATOR_METRICS_TX_FAILED);
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "TRANSCRIBE_FAILED call=%V stage=start reason=busy "
                      "(%d transcriptions in flight in this worker)",
                      call_sid, NGX_AGENTLOCATOR_TRANSCRIBE_JOBS);
        return NULL;
    }

    job = ngx_calloc(sizeof(ngx_agentlocator_transcribe_job_t), log);
    if (job == NULL) {
        return NULL;
    }

    job->conf = amcf->transcribe;
    job->recordings = amcf->recordings;
    job->log = ngx_cycle->log;
    job->started = ngx_current_msec;
    ngx_memcpy(job->call_sid, call_sid->data, NGX_AGENTLOCATOR_SID_LEN);

    ngx_agentlocator_worker_timer(&job->retry, &job->retry_owner,
                                  ngx_agentlocator_transcribe_retry,
                                  job->log);
    job->retry_owner.data = job;

    if (ngx_agentlocator_transcribe_queue.next == NULL) {
        ngx_queue_init(&ngx_agentlocator_transcribe_queue);
    }

    ngx_queue_insert_tail(&ngx_agentlocator_transcribe_queue, &job->queue);
    ngx_agentlocator_transcribe_jobs++;

    return job;
}


static void
ngx_agentlocator_transcribe_fetched(ngx_agentlocator_http_result_t *result,
    void *data)
{
    ngx_agentlocator_transcribe_job_t  *job = data;

    job->in_flight = 0;

    if (result->error || result->status != 200 || result->body.len == 0) {
        if (!ngx_agentlocator_transcribe_again(job, "fetch", result,
                 ngx_agentlocator_transcribe_fetch_retries,
                 sizeof(ngx_agentlocator_transcribe_fetch_retries)
                 / sizeof(ngx_msec_t)))
        {
            ngx_agentlocator_transcribe_failed(job, "fetch", result);
        }

        return;
    }

    /* the engine's buffer goes back to it when this returns */
    job->audio.data = ngx_alloc(result->body.len, job->log);
    if (job->audio.data == NULL) {
        ngx_agentlocator_transcribe_failed(job, "fetch", NULL);
        return;
    }

    ngx_memcpy(job->audio.data, result->body.data, result->body.len);
    job->audio.len = result->body.len;
    job->fetched = 1;
    job->tries = 0;

    if (job->recordings) {
        ngx_agentlocator_transcribe_keep(job);
    }

    if (ngx_agentlocator_transcribe_post(job) != NGX_OK) {
        ngx_agentlocator_transcribe_failed(job, "post", NULL);
    }
}


/* file, model, language, response_format=json */

static ngx_int_t
ngx_agentlocator_transcribe_post(ngx_agentlocator_transcribe_job_t *job)
{
    ngx_uint_t                     n;
    ngx_agentlocator_http_out_t    out;
    ngx_agentlocator_http_part_t   parts[4];
    ngx_agentlocator_transcribe_t *tc;

    tc = job->conf;

    ngx_memzero(parts, sizeof(parts));

    parts[0].name = "file";
    parts[0].filename = (const char *) job->filename;
    parts[0].type = "audio/wav";

    if (job->twilio) {
        parts[0].data = job->audio;
        parts[0].keep = 1;

    } else {
        parts[0].file = (const char *) job->wav_path.data;
    }

    parts[1].name = "model";
    parts[1].data = tc->model;

    parts[2].name = "response_format";
    ngx_str_set(&parts[2].data, "json");

    n = 3;

    if (tc->language.len) {
        parts[3].name = "language";
        parts[3].data = tc->language;
        n = 4;
    }

    ngx_memzero(&out, sizeof(ngx_agentlocator_http_out_t));

    out.url = tc->url;
    out.header = tc->header;
    out.parts = parts;
    out.nparts = n;
    out.background = 1;
    out.timeout = tc->timeout;
    out.max_body = NGX_AGENTLOCATOR_TRANSCRIBE_ANSWER;

    if (ngx_agentlocator_http_send(&out, ngx_agentlocator_transcribe_answered,
                                   job, job->log)
        == NULL)
    {
        return NGX_ERROR;
    }

    job->in_flight = 1;

    return NGX_OK;
}


static void
ngx_agentlocator_transcribe_answered(ngx_agentlocator_http_result_t *result,
    void *data)
{
    ngx_agentlocator_transcribe_job_t  *job = data;

    u_char                         *buf;
    size_t                          len;
    ngx_str_t                       call_sid, recording_sid, text;
    const char                     *err;
    ngx_agentlocator_form_str_t     answer;

    job->in_flight = 0;

    if (result->error || result->status != 200) {
        if (!ngx_agentlocator_transcribe_again(job, "transcribe", result,
                 ngx_agentlocator_transcribe_post_retries,
                 sizeof(ngx_agentlocator_transcribe_post_retries)
                 / sizeof(ngx_msec_t)))
        {
            ngx_agentlocator_transcribe_failed(job, "transcribe", result);
        }

        return;
    }

    buf = ngx_alloc(result->body.len + 1, job->log);
    if (buf == NULL) {
        ngx_agentlocator_transcribe_failed(job, "transcribe", NULL);
        return;
    }

    err = ngx_agentlocator_transcript_reply(result->body.data,
                                            result->body.len, buf,
                                            result->body.len + 1, &answer);
    if (err) {
        ngx_agentlocator_metrics_transcribe(
            NGX_AGENTLOCATOR_METRICS_TX_GIVEN_UP);
        ngx_log_error(NGX_LOG_ERR, job->log, 0,
                      "TRANSCRIBE_FAILED call=%*s stage=answer reason=%s",
                      NGX_AGENTLOCATOR_SID_LEN, job->call_sid, err);
        ngx_free(buf);
        ngx_agentlocator_transcribe_final(job, "answer");
        ngx_agentlocator_transcribe_free(job);
        return;
    }

    text.data = answer.data;
    text.len = answer.len;

    /* what the database takes: UTF-8 without NUL, within a spool record */
    len = ngx_agentlocator_storable_prefix(text.data,
                                           ngx_min(text.len,
                                               NGX_AGENTLOCATOR_TRANSCRIPT_MAX));
    text.len = len;

    ngx_agentlocator_transcribe_sids(job, &call_sid, &recording_sid);

    ngx_agentlocator_metrics_transcribe(
        NGX_AGENTLOCATOR_METRICS_TX_TRANSCRIBED);
    ngx_log_error(NGX_LOG_NOTICE, job->log, 0,
                  "TRANSCRIPT call=%V recording=%s bytes=%uz ms=%M",
                  &call_sid, job->twilio ? "twilio" : "stream", text.len,
                  (ngx_msec_t) (ngx_current_msec - job->started));

    ngx_agentlocator_crm_transcript(&call_sid, &recording_sid,
                                    &job->wav_path, &text,
                                    &job->conf->language, &job->conf->model);

    ngx_free(buf);
    ngx_agentlocator_transcribe_free(job);
}


/*
 * With agentlocator_recordings, Twilio's recording is kept beside the
 * streams' WAVs (one write: this is a file of minutes of audio at most,
 * once per call) and its row learns the path.
 */

static void
ngx_agentlocator_transcribe_keep(ngx_agentlocator_transcribe_job_t *job)
{
    u_char      *p;
    ssize_t      n;
    ngx_fd_t     fd;
    ngx_str_t    path, call_sid, recording_sid;
    u_char       name[NGX_MAX_PATH];

    path = job->recordings->name;

    if (path.len + 1 + sizeof(job->filename) > NGX_MAX_PATH) {
        return;
    }

    p = ngx_sprintf(name, "%V/%s", &path, job->filename);
    *p = '\0';

    fd = ngx_open_file(name, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, job->log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", name);
        return;
    }

    n = ngx_write_fd(fd, job->audio.data, job->audio.len);

    if (n != (ssize_t) job->audio.len) {
        ngx_log_error(NGX_LOG_ERR, job->log, ngx_errno,
                      ngx_write_fd_n " \"%s\" failed", name);
        (void) ngx_close_file(fd);
        (void) ngx_delete_file(name);
        return;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, job->log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", name);
        return;
    }

    ngx_agentlocator_transcribe_sids(job, &call_sid, &recording_sid);
    path.data = name;
    path.len = p - name;

    ngx_agentlocator_crm_recording_file(&call_sid, &recording_sid, &path);
}


/*
 * Another try later, when the failure may pass: nothing there yet (404),
 * too many requests, a server error, a timeout or a connection refused.
 * Not when the worker is exiting, nor for what would fail the same way.
 */

static ngx_uint_t
ngx_agentlocator_transcribe_again(ngx_agentlocator_transcribe_job_t *job,
    const char *stage, ngx_agentlocator_http_result_t *result,
    ngx_msec_t *delays, ngx_uint_t ndelays)
{
    ngx_msec_t  delay;

    if (result->aborted || ngx_exiting || ngx_quit || job->tries >= ndelays
        || !ngx_agentlocator_transcribe_passing(result))
    {
        return 0;
    }

    delay = ngx_max(delays[job->tries], result->retry_after);
    job->tries++;

    ngx_agentlocator_metrics_transcribe(NGX_AGENTLOCATOR_METRICS_TX_RETRIED);
    ngx_log_error(NGX_LOG_WARN, job->log, 0,
                  "TRANSCRIBE_RETRY call=%*s stage=%s status=%ui try=%ui "
                  "in=%Mms reason=%s",
                  NGX_AGENTLOCATOR_SID_LEN, job->call_sid, stage,
                  result->status, job->tries + 1, delay,
                  result->error ? result->error : "not 200");

    ngx_add_timer(&job->retry, delay);

    return 1;
}


/*
 * What may pass: nothing there yet (404), too many requests, a server
 * error, a timeout or a connection refused, or our own abort.
 */

static ngx_uint_t
ngx_agentlocator_transcribe_passing(ngx_agentlocator_http_result_t *result)
{
    if (result->aborted) {
        return 1;
    }

    if (result->oversize) {
        return 0;
    }

    return result->status == 0 || result->status == 404
           || result->status == 408 || result->status == 429
           || result->status >= 500;
}


static void
ngx_agentlocator_transcribe_retry(ngx_event_t *ev)
{
    ngx_connection_t                   *owner = ev->data;
    ngx_agentlocator_transcribe_job_t  *job = owner->data;

    if (!job->fetched && job->url.len) {
        if (ngx_agentlocator_transcribe_fetch(job) != NGX_OK) {
            ngx_agentlocator_transcribe_failed(job, "fetch", NULL);
        }

        return;
    }

    if (ngx_agentlocator_transcribe_post(job) != NGX_OK) {
        ngx_agentlocator_transcribe_failed(job, "transcribe", NULL);
    }
}


/*
 * The worker is going: the jobs waiting to try again go with it (those in
 * flight are aborted by the HTTP engine, and say so).
 */

void
ngx_agentlocator_transcribe_exit_worker(void)
{
    ngx_queue_t                        *q, *next;
    ngx_agentlocator_transcribe_job_t  *job;

    if (ngx_agentlocator_transcribe_queue.next == NULL) {
        return;
    }

    for (q = ngx_queue_head(&ngx_agentlocator_transcribe_queue);
         q != ngx_queue_sentinel(&ngx_agentlocator_transcribe_queue);
         q = next)
    {
        next = ngx_queue_next(q);
        job = ngx_queue_data(q, ngx_agentlocator_transcribe_job_t, queue);

        if (job->in_flight) {
            continue;
        }

        ngx_agentlocator_metrics_transcribe(
            NGX_AGENTLOCATOR_METRICS_TX_FAILED);
        ngx_log_error(NGX_LOG_ERR, job->log, 0,
                      "TRANSCRIBE_FAILED call=%*s stage=%s status=0 "
                      "reason=worker exiting",
                      NGX_AGENTLOCATOR_SID_LEN, job->call_sid,
                      job->fetched || job->url.len == 0 ? "transcribe"
                                                        : "fetch");

        ngx_agentlocator_transcribe_free(job);
    }
}


/*
 * One line: the stage, the HTTP status or curl's reason; never a secret.
 * What would fail the same way again is given up for good; anything else
 * is left to the sweep.
 */

static void
ngx_agentlocator_transcribe_failed(ngx_agentlocator_transcribe_job_t *job,
    const char *stage, ngx_agentlocator_http_result_t *result)
{
    ngx_uint_t  final;

    final = result && !ngx_agentlocator_transcribe_passing(result);

    ngx_agentlocator_metrics_transcribe(final
                                        ? NGX_AGENTLOCATOR_METRICS_TX_GIVEN_UP
                                        : NGX_AGENTLOCATOR_METRICS_TX_FAILED);
    ngx_log_error(NGX_LOG_ERR, job->log, 0,
                  "TRANSCRIBE_FAILED call=%*s stage=%s status=%ui reason=%s",
                  NGX_AGENTLOCATOR_SID_LEN, job->call_sid, stage,
                  result ? result->status : 0,
                  result == NULL ? "could not start"
                  : result->error ? result->error
                  : result->status != 200 ? "not 200"
                  : "empty");

    if (final) {
        ngx_agentlocator_transcribe_final(job, stage);
    }

    ngx_agentlocator_transcribe_free(job);
}


/* Its recording is no longer due: the sweep will not try it again. */

static void
ngx_agentlocator_transcribe_final(ngx_agentlocator_transcribe_job_t *job,
    const char *stage)
{
    ngx_str_t  call_sid, recording_sid;

    if (job->conf->sweep == 0) {
        return;
    }

    ngx_agentlocator_transcribe_sids(job, &call_sid, &recording_sid);

    ngx_agentlocator_crm_transcribe_failed(&call_sid, &recording_sid,
                                           &job->wav_path, stage);
}


/* The job's CallSid, and Twilio's RecordingSid ("" for a stream's WAV). */

static void
ngx_agentlocator_transcribe_sids(ngx_agentlocator_transcribe_job_t *job,
    ngx_str_t *call_sid, ngx_str_t *recording_sid)
{
    call_sid->data = job->call_sid;
    call_sid->len = NGX_AGENTLOCATOR_SID_LEN;

    if (job->twilio) {
        recording_sid->data = job->recording_sid;
        recording_sid->len = NGX_AGENTLOCATOR_SID_LEN;

    } else {
        ngx_str_null(recording_sid);
    }
}


static void
ngx_agentlocator_transcribe_free(ngx_agentlocator_transcribe_job_t *job)
{
    ngx_agentlocator_transcribe_jobs--;

    ngx_queue_remove(&job->queue);

    if (job->retry.timer_set) {
        ngx_del_timer(&job->retry);
    }

    ngx_free(job->url.data);

    ngx_free(job->audio.data);
    ngx_free(job->wav_path.data);
    ngx_free(job);
}
