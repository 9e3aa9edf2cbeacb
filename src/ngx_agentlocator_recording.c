
/*
 * agentlocator_recordings: a call's inbound audio in PATH/{CallSid}.wav,
 * 8 kHz mu-law.  Frames are gathered in a 32k buffer (4 s of audio) and
 * written in one go, never a write per frame.  The header's sizes are
 * computed from the file's length when the stream closes, so a file cut
 * short by a crash is fixed by the next stream of the same call, and a
 * second stream of a call appends to the first one's audio.
 */


#include "ngx_agentlocator.h"


#define NGX_AGENTLOCATOR_WAV_HEADER   58
#define NGX_AGENTLOCATOR_WAV_BUFFER   32768


struct ngx_agentlocator_recording_s {
    ngx_fd_t                      fd;
    ngx_log_t                    *log;
    size_t                        len;
    u_char                        path[NGX_MAX_PATH];
    u_char                        buf[NGX_AGENTLOCATOR_WAV_BUFFER];
};


static ngx_int_t ngx_agentlocator_recording_flush(
    ngx_agentlocator_recording_t *rec);
static void ngx_agentlocator_wav_header(u_char *h, uint32_t data_len);


ngx_agentlocator_recording_t *
ngx_agentlocator_recording_open(ngx_str_t *dir, u_char *call_sid,
    ngx_log_t *log)
{
    off_t                          size;
    u_char                         header[NGX_AGENTLOCATOR_WAV_HEADER];
    ngx_file_info_t                fi;
    ngx_agentlocator_recording_t  *rec;

    if (dir->len + 1 + NGX_AGENTLOCATOR_SID_LEN + sizeof(".wav")
        > NGX_MAX_PATH)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "agentlocator: recordings path \"%V\" is too long", dir);
        return NULL;
    }

    rec = ngx_alloc(sizeof(ngx_agentlocator_recording_t), log);
    if (rec == NULL) {
        return NULL;
    }

    rec->log = log;
    rec->len = 0;

    ngx_sprintf(rec->path, "%V/%*s.wav%Z", dir, NGX_AGENTLOCATOR_SID_LEN,
                call_sid);

    rec->fd = ngx_open_file(rec->path, NGX_FILE_RDWR, NGX_FILE_CREATE_OR_OPEN,
                            NGX_FILE_DEFAULT_ACCESS);

    if (rec->fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", rec->path);
        ngx_free(rec);
        return NULL;
    }

    if (ngx_fd_info(rec->fd, &fi) == NGX_FILE_ERROR) {
        goto failed;
    }

    size = ngx_file_size(&fi);

    if (size < NGX_AGENTLOCATOR_WAV_HEADER) {
        ngx_agentlocator_wav_header(header, 0);

        if (ftruncate(rec->fd, 0) == -1
            || pwrite(rec->fd, header, sizeof(header), 0)
               != (ssize_t) sizeof(header))
        {
            goto failed;
        }

        size = NGX_AGENTLOCATOR_WAV_HEADER;
    }

    if (lseek(rec->fd, size, SEEK_SET) == -1) {
        goto failed;
    }

    return rec;

failed:

    ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                  "agentlocator: cannot prepare recording \"%s\"", rec->path);
    (void) ngx_close_file(rec->fd);
    ngx_free(rec);

    return NULL;
}


void
ngx_agentlocator_recording_append(ngx_agentlocator_recording_t *rec,
    u_char *data, size_t len)
{
    size_t  n;

    while (len) {
        n = ngx_min(len, NGX_AGENTLOCATOR_WAV_BUFFER - rec->len);

        ngx_memcpy(rec->buf + rec->len, data, n);
        rec->len += n;
        data += n;
        len -= n;

        if (rec->len == NGX_AGENTLOCATOR_WAV_BUFFER
            && ngx_agentlocator_recording_flush(rec) != NGX_OK)
        {
            /* the audio is lost, the call is not: drop and go on */
            rec->len = 0;
        }
    }
}


void
ngx_agentlocator_recording_close(ngx_agentlocator_recording_t *rec)
{
    off_t            size;
    u_char           header[NGX_AGENTLOCATOR_WAV_HEADER];
    ngx_file_info_t  fi;

    (void) ngx_agentlocator_recording_flush(rec);

    if (ngx_fd_info(rec->fd, &fi) != NGX_FILE_ERROR) {
        size = ngx_file_size(&fi) - NGX_AGENTLOCATOR_WAV_HEADER;

        ngx_agentlocator_wav_header(header,
                                    (uint32_t) (size > 0 ? size : 0));

        if (pwrite(rec->fd, header, sizeof(header), 0)
            != (ssize_t) sizeof(header))
        {
            ngx_log_error(NGX_LOG_ERR, rec->log, ngx_errno,
                          "agentlocator: cannot complete the header of "
                          "\"%s\"", rec->path);
        }
    }

    if (ngx_close_file(rec->fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rec->log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", rec->path);
    }

    ngx_free(rec);
}


static ngx_int_t
ngx_agentlocator_recording_flush(ngx_agentlocator_recording_t *rec)
{
    ssize_t  n;

    if (rec->len == 0) {
        return NGX_OK;
    }

    n = write(rec->fd, rec->buf, rec->len);

    if (n != (ssize_t) rec->len) {
        ngx_log_error(NGX_LOG_ERR, rec->log, ngx_errno,
                      "agentlocator: writing recording \"%s\" failed",
                      rec->path);
        return NGX_ERROR;
    }

    rec->len = 0;

    return NGX_OK;
}


/*
 * RIFF/WAVE, format 7 (mu-law), mono, 8000 Hz, 8 bits; non-PCM formats
 * carry an 18-byte fmt chunk and a "fact" chunk with the sample count.
 */

static void
ngx_agentlocator_wav_header(u_char *h, uint32_t data_len)
{
#define le16(p, v)  (p)[0] = (u_char) (v); (p)[1] = (u_char) ((v) >> 8)
#define le32(p, v)  le16(p, v); le16((p) + 2, (v) >> 16)

    ngx_memcpy(h, "RIFF", 4);
    le32(h + 4, NGX_AGENTLOCATOR_WAV_HEADER - 8 + data_len);
    ngx_memcpy(h + 8, "WAVEfmt ", 8);
    le32(h + 16, 18);
    le16(h + 20, 7);            /* WAVE_FORMAT_MULAW */
    le16(h + 22, 1);            /* channels */
    le32(h + 24, 8000);         /* sample rate */
    le32(h + 28, 8000);         /* bytes per second */
    le16(h + 32, 1);            /* block align */
    le16(h + 34, 8);            /* bits per sample */
    le16(h + 36, 0);            /* cbSize */
    ngx_memcpy(h + 38, "fact", 4);
    le32(h + 42, 4);
    le32(h + 46, data_len);     /* samples: one byte each */
    ngx_memcpy(h + 50, "data", 4);
    le32(h + 54, data_len);

#undef le16
#undef le32
}


/* Where the WAV is, for the CRM. */

void
ngx_agentlocator_recording_path(ngx_agentlocator_recording_t *rec,
    ngx_str_t *path)
{
    path->data = rec->path;
    path->len = ngx_strlen(rec->path);
}
