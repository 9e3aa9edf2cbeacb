
/*
 * agentlocator_public_url: the one absolute base every URL we hand Twilio is
 * built from.  Validated and normalised once, at configuration time, so a
 * typo fails `nginx -t` instead of producing TwiML that points nowhere.
 */


#include "ngx_agentlocator.h"


static ngx_uint_t ngx_agentlocator_is_host_char(u_char ch);
static ngx_uint_t ngx_agentlocator_is_path_char(u_char ch);


/*
 * Returns NULL on success or a short reason for the configuration error.
 * Accepted: http[s]://host[:port][/path], host a DNS name, an IPv4 address
 * or a bracketed IPv6 address.  Scheme and host are lower-cased, a default
 * port is dropped, trailing slashes are removed.
 */

const char *
ngx_agentlocator_public_url_parse(ngx_pool_t *pool, ngx_str_t *value,
    ngx_agentlocator_public_url_t *url)
{
    u_char      *p, *last, *host, *host_end, *port, *path, *dst;
    size_t       scheme_len, path_len, host_len, len;
    ngx_int_t    port_n;
    ngx_uint_t   https;

    p = value->data;
    last = p + value->len;

    if (value->len >= 7 && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0) {
        https = 0;
        scheme_len = 4;
        p += 7;

    } else if (value->len >= 8
               && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0)
    {
        https = 1;
        scheme_len = 5;
        p += 8;

    } else {
        return "must be an absolute URL starting with http:// or https://";
    }

    host = p;

    /* userinfo first: "user:pass@host" would otherwise read as a bad port */

    for (path = p; path < last; path++) {
        if (*path == '/' || *path == '?' || *path == '#') {
            break;
        }

        if (*path == '@') {
            return "must not contain user:password@";
        }
    }

    if (p < last && *p == '[') {
        while (p < last && *p != ']') {
            if (!((*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a'
                   && (*p | 0x20) <= 'f') || *p == ':' || *p == '.'
                  || *p == '['))
            {
                return "has an invalid IPv6 address";
            }
            p++;
        }

        if (p == last) {
            return "has an unterminated IPv6 address";
        }

        p++;

    } else {
        while (p < last && ngx_agentlocator_is_host_char(*p)) {
            p++;
        }
    }

    host_end = p;

    if (host_end == host) {
        return "has no host";
    }

    port = NULL;
    port_n = 0;

    if (p < last && *p == ':') {
        port = ++p;

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }

        port_n = ngx_atoi(port, p - port);

        if (port_n < 1 || port_n > 65535) {
            return "has an invalid port";
        }
    }

    if (p < last && *p != '/') {
        if (*p == '?' || *p == '#') {
            return "must not have a query string or fragment";
        }

        return "has an invalid character in the host";
    }

    path = p;

    for ( /* void */ ; p < last; p++) {
        if (*p == '?' || *p == '#') {
            return "must not have a query string or fragment";
        }

        if (!ngx_agentlocator_is_path_char(*p)) {
            return "has an invalid character in the path";
        }
    }

    path_len = last - path;

    while (path_len && path[path_len - 1] == '/') {
        path_len--;
    }

    /* a default port says nothing; Twilio signs such URLs without it */

    if (port && port_n == (https ? 443 : 80)) {
        port = NULL;
    }

    host_len = (port ? (size_t) (path - host) : (size_t) (host_end - host));

    len = scheme_len + sizeof("://") - 1 + host_len + path_len;

    dst = ngx_pnalloc(pool, len);
    if (dst == NULL) {
        return "could not be stored: out of memory";
    }

    url->url.data = dst;
    url->url.len = len;

    url->scheme.data = dst;
    url->scheme.len = scheme_len;
    dst = ngx_cpymem(dst, https ? "https" : "http", scheme_len);
    dst = ngx_cpymem(dst, "://", 3);

    url->host.data = dst;
    url->host.len = host_len;
    ngx_strlow(dst, host, host_len);
    dst += host_len;

    url->path.data = dst;
    url->path.len = path_len;
    ngx_memcpy(dst, path, path_len);

    return NULL;
}


static ngx_uint_t
ngx_agentlocator_is_host_char(u_char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'
           || ch == '_';
}


/* RFC 3986 pchar plus "/"; quotes, "<", ">" and spaces are refused. */

static ngx_uint_t
ngx_agentlocator_is_path_char(u_char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
        || (ch >= '0' && ch <= '9'))
    {
        return 1;
    }

    switch (ch) {
    case '-': case '.': case '_': case '~': case '%': case '/': case ':':
    case '@': case '!': case '$': case '&': case '(': case ')': case '*':
    case '+': case ',': case ';': case '=':
        return 1;
    }

    return 0;
}
