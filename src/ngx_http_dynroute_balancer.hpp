/*
 * dynroute_balancer (ngx_http_dynroute_balancer.cpp): an upstream{} that
 * hands each request to the upstream{} that dynroute chose for it.
 */
#pragma once

#include "ngx_http_dynroute.hpp"


/*
 * An upstream{} block refuses to end without a server ("no servers are
 * inside upstream"): the blocks whose servers come from elsewhere
 * (dynroute_balancer, dynroute_servers, dynroute_services) add an empty
 * entry that stands in, which no "server" line can look like.
 */
ngx_int_t ngx_http_dynroute_upstream_stand_in(
    ngx_http_upstream_srv_conf_t *uscf) noexcept;

char *ngx_http_dynroute_balancer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
ngx_int_t ngx_http_dynroute_balancer_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
ngx_int_t ngx_http_dynroute_balancer_check_location(ngx_conf_t *cf,
    ngx_http_dynroute_loc_conf_t *conf) noexcept;
