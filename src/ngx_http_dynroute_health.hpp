/*
 * dynroute_health (ngx_http_dynroute_health.cpp): liveness and readiness.
 */
#pragma once

#include "ngx_http_dynroute.hpp"


char *ngx_http_dynroute_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
