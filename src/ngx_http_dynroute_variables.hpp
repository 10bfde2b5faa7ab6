/*
 * The variables (ngx_http_dynroute_variables.cpp): $dynroute_upstream,
 * $dynroute_rule, $dynroute_variant, $dynroute_primary, $dynroute_fallback,
 * $dynroute_served, $dynroute_reason, and the named captures of a table's
 * regexes.
 */
#pragma once

#include "ngx_http_dynroute.hpp"


ngx_int_t ngx_http_dynroute_add_variables(ngx_conf_t *cf) noexcept;

/* a named capture's variable until a regex of a table matches */
ngx_int_t ngx_http_dynroute_capture_not_found(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept;
