/*
 * dynroute_health_check (ngx_http_dynroute_health_check.cpp): active
 * health checks of a dynroute_servers upstream's servers, their state in
 * each server's cell (docs/design/canary.md, part 1).
 */
#pragma once

#include "ngx_http_dynroute.hpp"


char *ngx_http_dynroute_health_check(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;

/* postconfiguration: each checked group has a dynroute_zone */
ngx_int_t ngx_http_dynroute_health_check_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;

/* a worker of the configuration starts probing its share of the servers */
void ngx_http_dynroute_health_check_start(ngx_cycle_t *cycle,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
