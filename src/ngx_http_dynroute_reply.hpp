/*
 * Answers of the module's own handlers (ngx_http_dynroute_reply.cpp): a
 * response header, a whole response.
 */
#pragma once

#include <string_view>

#include "ngx.hpp"


/* r is a client's request, not a subrequest; else an info line saying
 * that what (a directive) answers 403 */
bool ngx_http_dynroute_from_client(ngx_http_request_t *r, const char *what)
    noexcept;

/* NULL when out of memory; key and value must outlive the request */
ngx_table_elt_t *ngx_http_dynroute_add_header(ngx_http_request_t *r,
    const ngx_str_t &key, const ngx_str_t &value) noexcept;

/* body as the whole response, with status and type; copy: copied to the
 * request's pool, else sent from where it is (static) */
ngx_int_t ngx_http_dynroute_send(ngx_http_request_t *r, ngx_int_t status,
    const char *type, std::string_view body, bool copy) noexcept;
