
/*
 * Secret values in directives: a literal, "env:NAME" or "file:/path", so a
 * token need not sit in nginx.conf.  Resolved once by the master while it
 * reads the configuration (a root-only file is fine); workers inherit the
 * value.  Errors name the source, never the value.
 */


#include "ngx_agentlocator.h"


#define NGX_AGENTLOCATOR_SECRET_MAX  4096


static const char *ngx_agentlocator_secret_file(ngx_conf_t *cf,
    ngx_str_t *path, ngx_str_t *secret);


const char *
ngx_agentlocator_secret_load(ngx_conf_t *cf, ngx_str_t *value,
    ngx_str_t *secret)
{
    char       *name, *env;
    size_t      len;
    ngx_str_t   path;

    /*
     * "env:" or "file:" with nothing after it (a config template whose
     * variable was empty) is a mistake, never a literal secret.
     */

    if (value->len >= 4 && ngx_strncmp(value->data, "env:", 4) == 0) {
        if (value->len == 4) {
            return "has \"env:\" with no variable name after it";
        }

        name = (char *) value->data + 4;
        env = getenv(name);

        if (env == NULL) {
            return "names an environment variable that is not set";
        }

        len = ngx_strlen(env);

        secret->data = ngx_pnalloc(cf->pool, len);
        if (secret->data == NULL) {
            return "could not be stored";
        }

        ngx_memcpy(secret->data, env, len);
        secret->len = len;

    } else if (value->len >= 5
               && ngx_strncmp(value->data, "file:", 5) == 0)
    {
        if (value->len == 5) {
            return "has \"file:\" with no path after it";
        }

        path.data = value->data + 5;
        path.len = value->len - 5;

        if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
            return "has a bad path";
        }

        return ngx_agentlocator_secret_file(cf, &path, secret);

    } else {
        *secret = *value;
    }

    if (secret->len == 0) {
        return "is empty";
    }

    if (secret->len > NGX_AGENTLOCATOR_SECRET_MAX) {
        return "is too long";
    }

    return NULL;
}


static const char *
ngx_agentlocator_secret_file(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *secret)
{
    u_char           *buf;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_file_info_t   fi;

    fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed", path->data);
        return "names a file that cannot be read";
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > NGX_AGENTLOCATOR_SECRET_MAX)
    {
        (void) ngx_close_file(fd);
        return "names a file that is not a small regular file";
    }

    buf = ngx_pnalloc(cf->pool, NGX_AGENTLOCATOR_SECRET_MAX);
    if (buf == NULL) {
        (void) ngx_close_file(fd);
        return "could not be stored";
    }

    n = ngx_read_fd(fd, buf, NGX_AGENTLOCATOR_SECRET_MAX);

    (void) ngx_close_file(fd);

    if (n < 0) {
        return "names a file that cannot be read";
    }

    /* editors and "echo" end files with a newline that is not the secret */

    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'
                     || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
    {
        n--;
    }

    secret->data = buf;
    secret->len = n;

    if (n == 0) {
        return "names an empty file";
    }

    return NULL;
}
