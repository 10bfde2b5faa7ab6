/*
 * Reading the configuration from C++: NGX_CONF_ERROR as the char * that
 * directive handlers return, the one way a C++ exception becomes an
 * [emerg] with the file and line being read, and the upstream{} look-up.
 * Shared by the glue of every dynroute module.
 */
#pragma once

#include <exception>

#include "ngx.hpp"


#define NGX_HTTP_DYNROUTE_CONF_ERROR  static_cast<char *>(NGX_CONF_ERROR)


/*
 * Called inside a catch block of a directive handler: logs the exception
 * being handled, with cf's file and line, and returns NGX_CONF_ERROR.
 * what: a prefix naming the block or directive, e.g. "dynroute".
 */
static inline char *
ngx_http_dynroute_conf_caught(ngx_conf_t *cf, const char *what) noexcept
{
    try {
        throw;

    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: %s", what, e.what());

    } catch (...) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: unknown error", what);
    }

    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


/* the upstream{} block of that name, or NULL */
ngx_http_upstream_srv_conf_t *ngx_http_dynroute_find_upstream(ngx_conf_t *cf,
    const ngx_str_t &name) noexcept;
