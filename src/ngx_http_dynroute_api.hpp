/*
 * dynroute_api (ngx_http_dynroute_api.cpp): the runtime API, JSON under the
 * location's prefix.
 */
#pragma once

#include "ngx_http_dynroute.hpp"


char *ngx_http_dynroute_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept;
ngx_int_t ngx_http_dynroute_api_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
