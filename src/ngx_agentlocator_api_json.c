
/*
 * The CRM API's answers as JSON (ngx_agentlocator_api.c reads, this
 * writes): a page of rows with its count, one call with its timeline and
 * recordings, an error.  Every byte is yajl's: PostgreSQL's text values are
 * strings, its integers numbers, its jsonb re-emitted through yajl
 * (ngx_agentlocator_json_embed), so nothing is escaped by hand.
 */


#include "ngx_agentlocator.h"
#include "ngx_agentlocator_json.h"

#include <yajl/yajl_gen.h>
#include <libpq-fe.h>


static ngx_int_t ngx_agentlocator_api_rows(yajl_gen g, PGresult *res,
    ngx_agentlocator_api_column_t *cols);
static ngx_int_t ngx_agentlocator_api_row(yajl_gen g, PGresult *res, int row,
    ngx_agentlocator_api_column_t *cols);
static ngx_int_t ngx_agentlocator_api_value(yajl_gen g, PGresult *res,
    int row, int col, ngx_uint_t type);


static ngx_str_t  ngx_agentlocator_api_json_type =
    ngx_string("application/json");


/* {"results": [...], "page": P, "limit": L, "total": T, "pages": N} */

ngx_int_t
ngx_agentlocator_api_page_json(ngx_http_request_t *r,
    ngx_agentlocator_api_page_t *def, ngx_int_t page, ngx_int_t limit,
    struct pg_result **results)
{
    u_char      *p;
    int64_t      total, pages;
    yajl_gen     g;
    PGresult   **res;
    ngx_int_t    rc;
    u_char       buf[NGX_INT64_LEN];

    res = (PGresult **) results;

    if (PQntuples(res[0]) == 0) {
        /* a thread that is not there, or not the caller's */
        return ngx_agentlocator_api_error(r, NGX_HTTP_NOT_FOUND,
                                          "no such thread");
    }

    total = ngx_atoof((u_char *) PQgetvalue(res[0], 0, 0),
                      PQgetlength(res[0], 0, 0));
    if (total < 0) {
        total = 0;
    }

    pages = (total + limit - 1) / limit;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    yajl_gen_map_open(g);
    yajl_gen_string(g, (u_char *) "results", 7);

    if (ngx_agentlocator_api_rows(g, res[1], def->columns)
        != NGX_OK)
    {
        yajl_gen_free(g);
        return ngx_agentlocator_api_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "the CRM's answer was malformed");
    }

    yajl_gen_string(g, (u_char *) "page", 4);
    yajl_gen_integer(g, page);
    yajl_gen_string(g, (u_char *) "limit", 5);
    yajl_gen_integer(g, limit);
    yajl_gen_string(g, (u_char *) "total", 5);
    p = ngx_sprintf(buf, "%L", total);
    yajl_gen_number(g, (char *) buf, p - buf);
    yajl_gen_string(g, (u_char *) "pages", 5);
    p = ngx_sprintf(buf, "%L", pages);
    yajl_gen_number(g, (char *) buf, p - buf);
    yajl_gen_map_close(g);

    rc = ngx_agentlocator_api_json_reply(r, NGX_HTTP_OK, g);

    yajl_gen_free(g);

    return rc;
}


/* The call's row, with "timeline" and "recordings" (and transcripts). */

ngx_int_t
ngx_agentlocator_api_call_json(ngx_http_request_t *r,
    struct pg_result **results)
{
    yajl_gen    g;
    PGresult  **res;
    ngx_int_t   rc;

    res = (PGresult **) results;

    if (PQntuples(res[0]) == 0) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_NOT_FOUND,
                                          "no such call");
    }

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the row's object, left open for the two arrays */
    if (ngx_agentlocator_api_row(g, res[0], 0,
                                 ngx_agentlocator_api_call.call_columns)
        != NGX_OK)
    {
        goto malformed;
    }

    yajl_gen_string(g, (u_char *) "timeline", 8);

    if (ngx_agentlocator_api_rows(g, res[1],
                                  ngx_agentlocator_api_call.event_columns)
        != NGX_OK)
    {
        goto malformed;
    }

    yajl_gen_string(g, (u_char *) "recordings", 10);

    if (ngx_agentlocator_api_rows(g, res[2],
                                  ngx_agentlocator_api_call.recording_columns)
        != NGX_OK)
    {
        goto malformed;
    }

    yajl_gen_map_close(g);

    rc = ngx_agentlocator_api_json_reply(r, NGX_HTTP_OK, g);

    yajl_gen_free(g);

    return rc;

malformed:

    yajl_gen_free(g);

    return ngx_agentlocator_api_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "the CRM's answer was malformed");
}


/* An array of the rows, each an object (ngx_agentlocator_api_row). */

static ngx_int_t
ngx_agentlocator_api_rows(yajl_gen g, PGresult *res,
    ngx_agentlocator_api_column_t *cols)
{
    int  row, n;

    n = PQntuples(res);

    yajl_gen_array_open(g);

    for (row = 0; row < n; row++) {
        if (ngx_agentlocator_api_row(g, res, row, cols) != NGX_OK) {
            return NGX_ERROR;
        }

        yajl_gen_map_close(g);
    }

    return yajl_gen_array_close(g) == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
}


/*
 * One row as an object, its columns named by "cols"; consecutive columns
 * of one nested object become that object, or null when all of them are
 * NULL (a call without a customer, a recording without a transcript).
 * The row's own object is left open.
 */

static ngx_int_t
ngx_agentlocator_api_row(yajl_gen g, PGresult *res, int row,
    ngx_agentlocator_api_column_t *cols)
{
    int          col, end, k, ncols;
    ngx_str_t   *object;

    ncols = 0;

    while (cols[ncols].name.len) {
        ncols++;
    }

    if (PQnfields(res) != ncols) {
        return NGX_ERROR;
    }

    yajl_gen_map_open(g);

    for (col = 0; col < ncols; /* void */) {
        object = &cols[col].object;

        if (object->len == 0) {
            yajl_gen_string(g, cols[col].name.data, cols[col].name.len);

            if (ngx_agentlocator_api_value(g, res, row, col, cols[col].type)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            col++;
            continue;
        }

        for (end = col;
             end < ncols && cols[end].object.len == object->len
             && ngx_strncmp(cols[end].object.data, object->data,
                            object->len) == 0;
             end++)
        {
            /* void */
        }

        yajl_gen_string(g, object->data, object->len);

        for (k = col; k < end && PQgetisnull(res, row, k); k++) {
            /* void */
        }

        if (k == end) {
            yajl_gen_null(g);
            col = end;
            continue;
        }

        yajl_gen_map_open(g);

        for (k = col; k < end; k++) {
            yajl_gen_string(g, cols[k].name.data, cols[k].name.len);

            if (ngx_agentlocator_api_value(g, res, row, k, cols[k].type)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        yajl_gen_map_close(g);
        col = end;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_agentlocator_api_value(yajl_gen g, PGresult *res, int row, int col,
    ngx_uint_t type)
{
    int          len;
    const char  *v;

    if (PQgetisnull(res, row, col)) {
        return yajl_gen_null(g) == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
    }

    v = PQgetvalue(res, row, col);
    len = PQgetlength(res, row, col);

    switch (type) {

    case NGX_AGENTLOCATOR_API_INT:
        /* PostgreSQL's integer text is a JSON number */
        return yajl_gen_number(g, v, len) == yajl_gen_status_ok
               ? NGX_OK : NGX_ERROR;

    case NGX_AGENTLOCATOR_API_BOOL:
        return yajl_gen_bool(g, v[0] == 't') == yajl_gen_status_ok
               ? NGX_OK : NGX_ERROR;

    case NGX_AGENTLOCATOR_API_JSON:
        /* most messages have no media and most events no detail */
        if (len == 2 && v[0] == '[' && v[1] == ']') {
            yajl_gen_array_open(g);
            return yajl_gen_array_close(g) == yajl_gen_status_ok
                   ? NGX_OK : NGX_ERROR;
        }

        if (len == 2 && v[0] == '{' && v[1] == '}') {
            yajl_gen_map_open(g);
            return yajl_gen_map_close(g) == yajl_gen_status_ok
                   ? NGX_OK : NGX_ERROR;
        }

        return ngx_agentlocator_json_embed(g, (u_char *) v, len) == 0
               ? NGX_OK : NGX_ERROR;

    default:
        return yajl_gen_string(g, (u_char *) v, len) == yajl_gen_status_ok
               ? NGX_OK : NGX_ERROR;
    }
}


/* What a generator holds, as the answer. */

ngx_int_t
ngx_agentlocator_api_json_reply(ngx_http_request_t *r, ngx_uint_t status,
    void *gen)
{
    size_t                len;
    ngx_str_t             body;
    const unsigned char  *buf;

    if (yajl_gen_get_buf(gen, &buf, &len) != yajl_gen_status_ok) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = ngx_pnalloc(r->pool, len + 1);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(body.data, buf, len);
    body.data[len] = '\n';
    body.len = len + 1;

    return ngx_agentlocator_reply(r, status, &ngx_agentlocator_api_json_type,
                                  &body);
}


/* {"error": "<reason>"}, and one log line with the reason. */

ngx_int_t
ngx_agentlocator_api_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *reason)
{
    yajl_gen    g;
    ngx_int_t   rc;
    ngx_uint_t  level;

    level = (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) ? NGX_LOG_ERR
                                                       : NGX_LOG_INFO;

    ngx_log_error(level, r->connection->log, 0,
                  "API_ERROR status=%ui %s", status, reason);

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    yajl_gen_map_open(g);
    yajl_gen_string(g, (u_char *) "error", 5);
    yajl_gen_string(g, (u_char *) reason, ngx_strlen(reason));
    yajl_gen_map_close(g);

    rc = ngx_agentlocator_api_json_reply(r, status, g);

    yajl_gen_free(g);

    return rc;
}
