/*
 * libFuzzer: the fields of Twilio's WhatsApp webhooks
 * (src/ngx_agentlocator_wa_form.c), read from a form body parsed by
 * src/ngx_agentlocator_form_codec.c as the handler parses it.
 *
 * Byte 0 is a set of flags, the rest a form body.  The body is parsed and
 * its MessageSid, inbound message and delivery status are read by the
 * module; a reference written here from Twilio's webhook (its own form
 * decoding, lookups, UTF-8 table, E.164, SID and digit rules) must give
 * the same verdict and reason, and on acceptance the same values.  What
 * is accepted must hold what the CRM is promised: numbers +E164, text
 * UTF-8 without NUL, NumMedia 0 to 10 with a MediaUrlN present for each
 * N below it, each string within its bound and inside the body.
 * Then the flags and bytes make a body as Twilio makes one (its keys, a
 * sandbox number, api.twilio.com media URLs), with one fault or none:
 * the module must refuse exactly the faulty ones, with the fault's
 * reason, and give back exactly the values put in.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ngx_agentlocator_wa_form.h"
#include "ngx_agentlocator_wa_body.h"


#define CHECK(cond, what)                                                     \
    if (!(cond)) {                                                            \
        fprintf(stderr, "wa_form: %s\n", what);                               \
        abort();                                                              \
    }

typedef ngx_agentlocator_form_str_t  str_t;


/* the reasons the handler answers with (t/060-whatsapp-inbound.t) */
#define R_SID_CONFLICT   "conflicting MessageSid values"
#define R_SID_MISSING    "missing MessageSid"
#define R_SID_BAD        "malformed MessageSid"
#define R_FROM           "From must be one whatsapp:+E164 number"
#define R_TO             "To must be one whatsapp:+E164 number"
#define R_BODY_CONFLICT  "conflicting Body values"
#define R_BODY_TEXT      "Body is not UTF-8 text"
#define R_NUM_MEDIA      "NumMedia must be 0 to 10"
#define R_MEDIA_MISSING  "a MediaUrlN below NumMedia is missing or too long"
#define R_MEDIA_BAD      "a MediaUrlN or MediaContentTypeN is malformed"
#define R_STATUS_MISSING "missing MessageStatus"
#define R_STATUS_BAD     "malformed MessageStatus"
#define R_CODE_BAD       "malformed ErrorCode"

#define MAX_PAIRS   128     /* form_codec.h's bound, refused beyond */
#define MAX_MEDIA   10      /* Twilio's Media resource page */
#define MAX_URL     2048
#define MAX_TYPE    128
#define MAX_NAME    256

#define TWILIO_MEDIA  "https://api.twilio.com/2010-04-01/Accounts/AC"


/* --- the reference ------------------------------------------------------ */

typedef struct {
    str_t      key;
    str_t      value;
} ref_pair_t;

typedef struct {
    ref_pair_t  pair[MAX_PAIRS];
    size_t      n;
    uint8_t    *mem;        /* the decoded bytes, a copy of their own */
} ref_form_t;

enum { REF_FOUND, REF_ABSENT, REF_CONFLICT };


static int
hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}


/* one side of a pair, "+" a space and %XX a byte; 0 on a bad escape */

static int
ref_unescape(const uint8_t *p, size_t len, uint8_t **out, str_t *s)
{
    size_t  i;
    int     hi, lo;

    s->data = *out;
    s->len = 0;

    for (i = 0; i < len; i++) {
        if (p[i] == '%') {
            if (i + 2 >= len) {
                return 0;
            }

            hi = hexval(p[i + 1]);
            lo = hexval(p[i + 2]);

            if (hi < 0 || lo < 0) {
                return 0;
            }

            s->data[s->len++] = (uint8_t) (hi << 4 | lo);
            i += 2;

        } else {
            s->data[s->len++] = (p[i] == '+') ? ' ' : p[i];
        }
    }

    *out += s->len;

    return 1;
}


/* application/x-www-form-urlencoded: 1 and the pairs, or 0 if refused */

static int
ref_decode(const uint8_t *body, size_t len, ref_form_t *f)
{
    size_t          start, end, eq;
    uint8_t        *out;
    const uint8_t  *amp;

    f->n = 0;
    f->mem = malloc(len + 1);
    CHECK(f->mem, "out of memory");
    out = f->mem;

    for (start = 0; start <= len; start = end + 1) {
        amp = memchr(body + start, '&', len - start);
        end = amp ? (size_t) (amp - body) : len;

        if (end == start) {
            continue;
        }

        if (f->n == MAX_PAIRS) {
            return 0;
        }

        for (eq = start; eq < end && body[eq] != '='; eq++) { /* void */ }

        if (!ref_unescape(body + start, eq - start, &out, &f->pair[f->n].key)
            || !ref_unescape(body + eq + (eq < end), end - eq - (eq < end),
                             &out, &f->pair[f->n].value))
        {
            return 0;
        }

        f->n++;
    }

    return 1;
}


static int
ref_get(const ref_form_t *f, const char *key, str_t *v)
{
    int     found;
    size_t  i, klen;

    found = 0;
    klen = strlen(key);
    v->data = NULL;
    v->len = 0;

    for (i = 0; i < f->n; i++) {
        if (f->pair[i].key.len != klen
            || memcmp(f->pair[i].key.data, key, klen) != 0)
        {
            continue;
        }

        if (!found) {
            *v = f->pair[i].value;
            found = 1;
            continue;
        }

        if (f->pair[i].value.len != v->len
            || memcmp(f->pair[i].value.data, v->data, v->len) != 0)
        {
            return REF_CONFLICT;
        }
    }

    return found ? REF_FOUND : REF_ABSENT;
}


/* RFC 3629 section 4, the table of well-formed sequences */

static int
ref_utf8(const uint8_t *p, size_t len)
{
    size_t   i, n, k;
    uint8_t  c, lo, hi;

    for (i = 0; i < len; i += n) {
        c = p[i];
        lo = 0x80;
        hi = 0xbf;

        if (c < 0x80) {
            n = 1;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
        } else if (c == 0xe0) {
            n = 3; lo = 0xa0;
        } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
            n = 3;
        } else if (c == 0xed) {
            n = 3; hi = 0x9f;
        } else if (c == 0xf0) {
            n = 4; lo = 0x90;
        } else if (c >= 0xf1 && c <= 0xf3) {
            n = 4;
        } else if (c == 0xf4) {
            n = 4; hi = 0x8f;
        } else {
            return 0;
        }

        if (len - i < n) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if (p[i + k] < (k == 1 ? lo : 0x80)
                || p[i + k] > (k == 1 ? hi : 0xbf))
            {
                return 0;
            }
        }
    }

    return 1;
}


static int
ref_storable(const str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] == 0) {
            return 0;
        }
    }

    return ref_utf8(s->data, s->len);
}


/* "whatsapp:" in any case, then "+" and 2 to 15 digits, not 0 first */

static int
ref_number(const str_t *v, str_t *number)
{
    size_t          i, len;
    const uint8_t  *p;

    p = v->data;
    len = v->len;

    if (len >= 9 && strncasecmp((const char *) p, "whatsapp:", 9) == 0) {
        p += 9;
        len -= 9;
    }

    if (len < 3 || len > 16 || p[0] != '+' || p[1] == '0') {
        return 0;
    }

    for (i = 1; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
    }

    number->data = (uint8_t *) p;
    number->len = len;

    return 1;
}


static int
ref_sid(const str_t *s)
{
    size_t  i;

    if (s->len != 34
        || !((s->data[0] == 'S' || s->data[0] == 'M') && s->data[1] == 'M'))
    {
        return 0;
    }

    for (i = 2; i < 34; i++) {
        if (hexval(s->data[i]) < 0) {
            return 0;
        }
    }

    return 1;
}


static int
all_digits(const str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9') {
            return 0;
        }
    }

    return 1;
}


/* NumMedia's value, leading zeros and all; -1 when not 0 to 10 */

static long
ref_num_media(const str_t *s)
{
    size_t  i;

    if (s->len == 0 || !all_digits(s)) {
        return -1;
    }

    for (i = 0; i < s->len && s->data[i] == '0'; i++) { /* void */ }

    if (s->len - i > 2) {
        return -1;
    }

    if (s->len - i == 0) {
        return 0;
    }

    if (s->len - i == 1) {
        return s->data[i] - '0';
    }

    return (s->data[i] == '1' && s->data[i + 1] == '0') ? 10 : -1;
}


typedef struct {
    const char  *reason;
    str_t        peer, business, body, name;
    long         nmedia;
    str_t        url[MAX_MEDIA], type[MAX_MEDIA];
} ref_inbound_t;


static void
ref_inbound(const ref_form_t *f, ref_inbound_t *m)
{
    int    rc;
    long   i;
    char   key[32];
    str_t  v;

    memset(m, 0, sizeof(ref_inbound_t));

    if (ref_get(f, "From", &v) != REF_FOUND || !ref_number(&v, &m->peer)) {
        m->reason = R_FROM;
        return;
    }

    if (ref_get(f, "To", &v) != REF_FOUND || !ref_number(&v, &m->business)) {
        m->reason = R_TO;
        return;
    }

    if (ref_get(f, "Body", &m->body) == REF_CONFLICT) {
        m->reason = R_BODY_CONFLICT;
        return;
    }

    if (!ref_storable(&m->body)) {
        m->reason = R_BODY_TEXT;
        return;
    }

    if (ref_get(f, "ProfileName", &v) == REF_FOUND && v.len <= MAX_NAME
        && ref_storable(&v))
    {
        m->name = v;
    }

    rc = ref_get(f, "NumMedia", &v);

    if (rc == REF_CONFLICT
        || (rc == REF_FOUND && (m->nmedia = ref_num_media(&v)) < 0))
    {
        m->nmedia = 0;
        m->reason = R_NUM_MEDIA;
        return;
    }

    for (i = 0; i < m->nmedia; i++) {
        snprintf(key, sizeof(key), "MediaUrl%ld", i);

        if (ref_get(f, key, &m->url[i]) != REF_FOUND || m->url[i].len == 0
            || m->url[i].len > MAX_URL)
        {
            m->reason = R_MEDIA_MISSING;
            return;
        }

        snprintf(key, sizeof(key), "MediaContentType%ld", i);

        if (ref_get(f, key, &m->type[i]) == REF_CONFLICT
            || m->type[i].len > MAX_TYPE || !ref_storable(&m->url[i])
            || !ref_storable(&m->type[i]))
        {
            m->reason = R_MEDIA_BAD;
            return;
        }
    }
}


typedef struct {
    const char  *reason;
    str_t        status, code;
} ref_status_t;


static void
ref_status(const ref_form_t *f, ref_status_t *s)
{
    int     rc;
    size_t  i;

    memset(s, 0, sizeof(ref_status_t));

    if (ref_get(f, "MessageStatus", &s->status) != REF_FOUND
        && ref_get(f, "SmsStatus", &s->status) != REF_FOUND)
    {
        s->reason = R_STATUS_MISSING;
        return;
    }

    if (s->status.len < 1 || s->status.len > 32) {
        s->reason = R_STATUS_BAD;
        return;
    }

    for (i = 0; i < s->status.len; i++) {
        if (!strchr("abcdefghijklmnopqrstuvwxyz_-", s->status.data[i])
            || s->status.data[i] == 0)
        {
            s->reason = R_STATUS_BAD;
            return;
        }
    }

    rc = ref_get(f, "ErrorCode", &s->code);

    if (rc == REF_CONFLICT
        || (rc == REF_FOUND && (s->code.len > 10 || !all_digits(&s->code))))
    {
        s->reason = R_CODE_BAD;
    }
}


/* --- the module against the reference ---------------------------------- */

static int
same(const str_t *a, const str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}


static int
same_reason(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}


static void
check_str(const str_t *s, size_t max, const uint8_t *buf, size_t size)
{
    CHECK(s->len <= max, "a string over its bound");

    if (s->len) {
        CHECK(s->data >= buf && s->data + s->len <= buf + size,
              "a string outside the body");
        CHECK(ref_storable(s), "a string that is not UTF-8 without NUL");
    }
}


static void
check_inbound(const ngx_agentlocator_form_t *form, const ref_form_t *rf,
    const uint8_t *buf, size_t size)
{
    long                          i, urls;
    char                          key[32];
    str_t                         v;
    const char                   *err;
    ref_inbound_t                 ref;
    ngx_agentlocator_wa_twilio_t  m;

    err = ngx_agentlocator_wa_form_inbound(form, &m);
    ref_inbound(rf, &ref);

    CHECK(same_reason(err, ref.reason),
          "an inbound message's verdict differs from the reference's");

    if (err) {
        return;
    }

    CHECK(same(&m.peer, &ref.peer) && same(&m.business_number, &ref.business)
          && same(&m.body, &ref.body) && same(&m.name, &ref.name),
          "an inbound message's field differs from the reference's");

    CHECK(m.peer.len >= 3 && m.peer.len <= 16 && m.peer.data[0] == '+'
          && m.business_number.len >= 3 && m.business_number.len <= 16
          && m.business_number.data[0] == '+',
          "a number that is not +E164");

    check_str(&m.peer, 16, buf, size);
    check_str(&m.business_number, 16, buf, size);
    check_str(&m.body, size, buf, size);
    check_str(&m.name, MAX_NAME, buf, size);

    CHECK(m.nmedia <= MAX_MEDIA && (long) m.nmedia == ref.nmedia,
          "NumMedia differs from the reference's or is over 10");

    urls = 0;

    for (i = 0; i < (long) m.nmedia; i++) {
        CHECK(same(&m.media_url[i], &ref.url[i])
              && same(&m.media_type[i], &ref.type[i]),
              "a MediaUrlN or MediaContentTypeN differs from the reference's");
        CHECK(m.media_url[i].len > 0, "an empty MediaUrlN accepted");
        check_str(&m.media_url[i], MAX_URL, buf, size);
        check_str(&m.media_type[i], MAX_TYPE, buf, size);

        snprintf(key, sizeof(key), "MediaUrl%ld", i);
        urls += (ref_get(rf, key, &v) == REF_FOUND);
    }

    CHECK(urls == (long) m.nmedia,
          "NumMedia is not the count of MediaUrlN below it");
}


static void
check_status(const ngx_agentlocator_form_t *form, const ref_form_t *rf,
    const uint8_t *buf, size_t size)
{
    const char                    *err;
    ref_status_t                   ref;
    ngx_agentlocator_wa_status_t   s;

    err = ngx_agentlocator_wa_form_status(form, &s);
    ref_status(rf, &ref);

    CHECK(same_reason(err, ref.reason),
          "a status callback's verdict differs from the reference's");

    if (err) {
        return;
    }

    CHECK(same(&s.status, &ref.status) && same(&s.error_code, &ref.code),
          "a status or ErrorCode differs from the reference's");
    CHECK(s.status.len >= 1, "an empty status accepted");
    check_str(&s.status, 32, buf, size);
    check_str(&s.error_code, 10, buf, size);
}


typedef struct {
    const char                     *sid_err;    /* either step's */
    ngx_agentlocator_wa_twilio_t    in;
    const char                     *in_err;
    ngx_agentlocator_wa_status_t    st;
    const char                     *st_err;
    uint8_t                        *buf;        /* freed by the caller */
    ngx_agentlocator_form_t         form;
} verdict_t;


/*
 * body[0..len) as the handler reads it, against the reference; 0 if the
 * form itself is refused (the `form` target's concern).
 */

static int
check_body(const uint8_t *body, size_t len, verdict_t *v)
{
    int           rc;
    str_t         sid, rsid;
    size_t        n;
    const char   *err, *want;
    ref_form_t    rf;

    memset(v, 0, sizeof(verdict_t));

    /* exact sizes, so ASan sees a write past either */
    v->buf = malloc(len ? len : 1);
    CHECK(v->buf, "out of memory");
    memcpy(v->buf, body, len);

    n = ngx_agentlocator_form_count(v->buf, len);
    v->form.nalloc = n < MAX_PAIRS ? n : MAX_PAIRS;
    v->form.params = malloc(v->form.nalloc
                            ? v->form.nalloc * sizeof(ngx_agentlocator_param_t)
                            : 1);
    CHECK(v->form.params, "out of memory");

    err = ngx_agentlocator_form_parse(v->buf, len, &v->form);
    rc = ref_decode(body, len, &rf);

    CHECK((err == NULL) == rc, "the form's verdict differs from the reference's");

    if (err) {
        free(rf.mem);
        return 0;
    }

    CHECK(v->form.nparams == rf.n, "the form has a different count of pairs");

    err = ngx_agentlocator_wa_form_sid(&v->form, &sid);
    rc = ref_get(&rf, "MessageSid", &rsid);

    CHECK(same_reason(err, rc == REF_CONFLICT ? R_SID_CONFLICT : NULL),
          "the MessageSid's lookup differs from the reference's");

    if (err == NULL) {
        CHECK(same(&sid, &rsid), "a MessageSid differs from the reference's");

        err = ngx_agentlocator_wa_form_sid_ok(&sid);
        want = rsid.len == 0 ? R_SID_MISSING
               : ref_sid(&rsid) ? NULL : R_SID_BAD;

        CHECK(same_reason(err, want),
              "the MessageSid's verdict differs from the reference's");

        if (err == NULL) {
            check_str(&sid, 34, v->buf, len);
        }
    }

    v->sid_err = err;

    /* each is judged whatever the MessageSid: more of the body is read */
    check_inbound(&v->form, &rf, v->buf, len);
    check_status(&v->form, &rf, v->buf, len);

    v->in_err = ngx_agentlocator_wa_form_inbound(&v->form, &v->in);
    v->st_err = ngx_agentlocator_wa_form_status(&v->form, &v->st);

    free(rf.mem);

    return 1;
}


/* --- bodies made as Twilio makes them ----------------------------------- */

typedef struct {
    uint8_t    *p;
    size_t      len, size;
} out_t;


static void
put(out_t *o, const void *s, size_t n)
{
    if (o->len + n > o->size) {
        o->size = (o->len + n) * 2 + 256;
        o->p = realloc(o->p, o->size);
        CHECK(o->p, "out of memory");
    }

    memcpy(o->p + o->len, s, n);
    o->len += n;
}


/* key=value, both escaped as Twilio's clients do (space as "+") */

static void
field(out_t *o, const char *key, const uint8_t *v, size_t n)
{
    char    hex[4];
    size_t  i;

    static const char  unreserved[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

    if (o->len) {
        put(o, "&", 1);
    }

    put(o, key, strlen(key));
    put(o, "=", 1);

    for (i = 0; i < n; i++) {
        if (v[i] != 0 && strchr(unreserved, v[i])) {
            put(o, &v[i], 1);

        } else if (v[i] == ' ') {
            put(o, "+", 1);

        } else {
            snprintf(hex, sizeof(hex), "%%%02X", v[i]);
            put(o, hex, 3);
        }
    }
}


static void
field_s(out_t *o, const char *key, const char *v)
{
    field(o, key, (const uint8_t *) v, strlen(v));
}


typedef struct {
    const uint8_t  *p;
    size_t          len;
} in_t;


static uint8_t
take1(in_t *in)
{
    uint8_t  c;

    if (in->len == 0) {
        return 0;
    }

    c = in->p[0];
    in->p++;
    in->len--;

    return c;
}


static size_t
take(in_t *in, size_t want, const uint8_t **p)
{
    size_t  n;

    n = want < in->len ? want : in->len;
    *p = in->p;
    in->p += n;
    in->len -= n;

    return n;
}


static void
hex32(char *dst, in_t *in)
{
    int  i;

    static const char  digits[] = "0123456789abcdef";

    for (i = 0; i < 16; i++) {
        uint8_t  c = take1(in);

        dst[2 * i] = digits[c >> 4];
        dst[2 * i + 1] = digits[c & 15];
    }

    dst[32] = '\0';
}


enum {
    F_BAD_SID = 1,      /* a SID character not hex */
    F_UPPER_PREFIX = 2, /* "WhatsApp:" in From */
    F_LONG_NAME = 4,    /* a ProfileName over 256 bytes */
    F_DROP_URL = 8,     /* one MediaUrlN below NumMedia left out */
    F_TWO_BODIES = 16,  /* Body twice, different */
    F_BAD_STATUS = 32,  /* MessageStatus in capitals */
    F_ERROR_CODE = 64,  /* ErrorCode=63016 */
    F_HEX_UPPER = 128   /* the SIDs' hex in capitals */
};


static void
made(const uint8_t *data, size_t size)
{
    int             k, drop, i, flags, status_i;
    char            sid[40], acct[40], me[40], url[256], num[20];
    size_t          nbody, nname, ndig;
    in_t            in;
    str_t           body, name;
    out_t           o;
    uint8_t        *long_name;
    verdict_t       v;
    const uint8_t  *p;
    const char     *want;

    static const char  *types[] = {
        "image/jpeg", "audio/ogg", "video/mp4", "application/pdf"
    };
    static const char  *statuses[] = {
        "queued", "sending", "sent", "failed", "delivered", "undelivered",
        "receiving", "received", "accepted", "scheduled", "read",
        "partially_delivered", "canceled"
    };

    if (size == 0) {
        return;
    }

    flags = data[0];
    in.p = data + 1;
    in.len = size - 1;
    memset(&o, 0, sizeof(out_t));
    long_name = NULL;

    k = take1(&in) % 12;            /* 11: over Twilio's 10 */
    drop = k ? take1(&in) % k : 0;
    status_i = take1(&in) % 13;

    ndig = 2 + take1(&in) % 14;
    num[0] = '+';
    num[1] = (char) ('1' + take1(&in) % 9);

    for (i = 2; i < (int) ndig + 1; i++) {
        num[i] = (char) ('0' + take1(&in) % 10);
    }

    num[ndig + 1] = '\0';

    memcpy(sid, k ? "MM" : "SM", 2);
    hex32(sid + 2, &in);
    memcpy(acct, "AC", 2);
    hex32(acct + 2, &in);

    if (flags & F_HEX_UPPER) {
        for (i = 2; i < 34; i++) {
            sid[i] = (sid[i] >= 'a') ? sid[i] - 0x20 : sid[i];
        }
    }

    if (flags & F_BAD_SID) {
        sid[2 + take1(&in) % 32] = 'g';
    }

    nbody = take(&in, take1(&in), &p);
    body.data = (uint8_t *) p;
    body.len = nbody;

    nname = take(&in, take1(&in) % 64, &p);
    name.data = (uint8_t *) p;
    name.len = nname;

    if (flags & F_LONG_NAME) {
        /* the same name, over the bound: dropped, the message kept */
        long_name = malloc(MAX_NAME + 1);
        CHECK(long_name, "out of memory");
        memset(long_name, 'a', MAX_NAME + 1);
        memcpy(long_name, name.data, name.len);
        name.data = long_name;
        name.len = MAX_NAME + 1;
    }

    /* in the order Twilio posts them */
    field_s(&o, "SmsMessageSid", sid);
    snprintf(url, sizeof(url), "%d", k);
    field_s(&o, "NumMedia", url);
    field(&o, "ProfileName", name.data, name.len);
    field_s(&o, "MessageType", k ? "image" : "text");
    field_s(&o, "SmsSid", sid);
    field(&o, "WaId", (const uint8_t *) num + 1, ndig);
    field_s(&o, "SmsStatus", "received");
    field(&o, "Body", body.data, body.len);

    if (flags & F_TWO_BODIES) {
        field(&o, "Body", body.data, body.len > 0 ? body.len - 1 : 0);
        if (body.len == 0) {
            field_s(&o, "Body", "x");
        }
    }

    field_s(&o, "To", "whatsapp:+14155238886");
    field_s(&o, "NumSegments", "1");
    field_s(&o, "ReferralNumMedia", "0");
    field_s(&o, "MessageSid", sid);
    field_s(&o, "AccountSid", acct);

    snprintf(url, sizeof(url), "%s%s",
             flags & F_UPPER_PREFIX ? "WhatsApp:" : "whatsapp:", num);
    field_s(&o, "From", url);
    field_s(&o, "ApiVersion", "2010-04-01");

    for (i = 0; i < k; i++) {
        char  key[32];

        snprintf(key, sizeof(key), "MediaContentType%d", i);
        field_s(&o, key, types[(i + status_i) % 4]);

        if ((flags & F_DROP_URL) && i == drop) {
            continue;
        }

        hex32(me, &in);
        snprintf(url, sizeof(url), "%s%s/Messages/%s/Media/ME%s",
                 TWILIO_MEDIA, acct + 2, sid, me);
        snprintf(key, sizeof(key), "MediaUrl%d", i);
        field_s(&o, key, url);
    }

    if (flags & F_BAD_STATUS) {
        field_s(&o, "MessageStatus", "DELIVERED");

    } else {
        field_s(&o, "MessageStatus", statuses[status_i]);
    }

    if (flags & F_ERROR_CODE) {
        field_s(&o, "ErrorCode", "63016");
    }

    CHECK(check_body(o.p, o.len, &v), "a body made as Twilio's was refused");

    CHECK(same_reason(v.sid_err, (flags & F_BAD_SID) ? R_SID_BAD : NULL),
          "a made MessageSid judged wrongly");

    want = (flags & F_TWO_BODIES) ? R_BODY_CONFLICT
           : !ref_storable(&body) ? R_BODY_TEXT
           : k > MAX_MEDIA ? R_NUM_MEDIA
           : (flags & F_DROP_URL) && k ? R_MEDIA_MISSING
           : NULL;

    CHECK(same_reason(v.in_err, want), "a made message judged wrongly");

    if (v.in_err == NULL) {
        str_t  n;

        n.data = (uint8_t *) num;
        n.len = ndig + 1;

        CHECK(same(&v.in.peer, &n), "From is not the number put in");
        CHECK(v.in.business_number.len == 12
              && memcmp(v.in.business_number.data, "+14155238886", 12) == 0,
              "To is not the number put in");
        CHECK(same(&v.in.body, &body), "Body is not the text put in");

        if (name.len <= MAX_NAME && ref_storable(&name)) {
            CHECK(same(&v.in.name, &name), "ProfileName is not the one put in");
        } else {
            CHECK(v.in.name.len == 0, "an unfit ProfileName kept");
        }

        CHECK(v.in.nmedia == (size_t) k, "NumMedia is not the count put in");

        for (i = 0; i < k; i++) {
            CHECK(v.in.media_url[i].len > sizeof(TWILIO_MEDIA) - 1
                  && memcmp(v.in.media_url[i].data, TWILIO_MEDIA,
                            sizeof(TWILIO_MEDIA) - 1) == 0,
                  "a MediaUrl that is not Twilio's");
            CHECK(v.in.media_type[i].len == strlen(types[(i + status_i) % 4])
                  && memcmp(v.in.media_type[i].data,
                            types[(i + status_i) % 4],
                            v.in.media_type[i].len) == 0,
                  "a MediaContentType is not the one put in");
        }
    }

    want = (flags & F_BAD_STATUS) ? R_STATUS_BAD : NULL;

    CHECK(same_reason(v.st_err, want), "a made status judged wrongly");

    if (v.st_err == NULL) {
        CHECK(v.st.status.len == strlen(statuses[status_i])
              && memcmp(v.st.status.data, statuses[status_i],
                        v.st.status.len) == 0,
              "MessageStatus is not the one put in");
        CHECK((flags & F_ERROR_CODE) ? v.st.error_code.len == 5
                                     : v.st.error_code.len == 0,
              "ErrorCode is not the one put in");
    }

    free(v.buf);
    free(v.form.params);
    free(long_name);
    free(o.p);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    verdict_t  v;

    if (size > 0) {
        (void) check_body(data + 1, size - 1, &v);
        free(v.buf);
        free(v.form.params);
    }

    made(data, size);

    return 0;
}
