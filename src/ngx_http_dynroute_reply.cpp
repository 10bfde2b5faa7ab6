/*
 * What the module's own handlers answer with, and the one way the glue adds
 * a response header.
 */

#include "ngx_http_dynroute_reply.hpp"


/*
 * The module's own answers (health, the API) are for clients: a subrequest
 * (auth_request, mirror, SSI) pointed at them would get an answer that
 * grants whatever it guards.
 */

bool
ngx_http_dynroute_from_client(ngx_http_request_t *r, const char *what)
    noexcept
{
    if (r == r->main) {
        return true;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "dynroute: %s answers clients only, not a subrequest: "
                  "answering 403", what);

    return false;
}


/*
 * A response header: key and value must outlive the request (literals, or
 * the request's pool).  NULL when out of memory.
 */

ngx_table_elt_t *
ngx_http_dynroute_add_header(ngx_http_request_t *r, const ngx_str_t &key,
    const ngx_str_t &value) noexcept
{
    ngx_table_elt_t  *h;

    h = static_cast<ngx_table_elt_t *>(ngx_list_push(&r->headers_out.headers));
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key = key;
    h->value = value;
    h->lowcase_key = NULL;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return h;
}


/*
 * Sends body as the whole response, with status and type, for the health,
 * API and metrics handlers.  copy: body is copied to the request's pool
 * (it does not outlive the call), else sent from where it is (static).
 */

ngx_int_t
ngx_http_dynroute_send(ngx_http_request_t *r, ngx_int_t status,
    const char *type, std::string_view body, bool copy) noexcept
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = body.size();
    r->headers_out.content_type.data =
        reinterpret_cast<u_char *>(const_cast<char *>(type));
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
        return ngx_http_send_header(r);
    }

    if (copy) {
        b = ngx_create_temp_buf(r->pool, body.size());
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->last = ngx_cpymem(b->pos, body.data(), body.size());

    } else {
        b = static_cast<ngx_buf_t *>(ngx_calloc_buf(r->pool));
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->pos = reinterpret_cast<u_char *>(const_cast<char *>(body.data()));
        b->last = b->pos + body.size();
        b->memory = 1;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}
