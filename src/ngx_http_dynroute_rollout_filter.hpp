/*
 * A rollout's response filter (ngx_http_dynroute_rollout_filter.cpp): the
 * stickiness cookie, and Cache-Control: private for a response that is one
 * client's own.
 */
#pragma once

#include "ngx_http_dynroute.hpp"


ngx_int_t ngx_http_dynroute_rollout_filter_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
