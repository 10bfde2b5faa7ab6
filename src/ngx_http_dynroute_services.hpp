/*
 * dynroute_services (ngx_http_dynroute_services.cpp): the one upstream{}
 * that carries the services created at run time (docs/design/
 * membership.md, "Services that exist only at run time").  It has no
 * "server" lines and is no target itself: a runtime host names a service,
 * whose requests go through this upstream's peer initialisation (and its
 * keepalive) to the service's servers.
 */
#pragma once

#include "ngx_http_dynroute.hpp"
#include "ngx_http_dynroute_zone.hpp"
#include "state.hpp"


struct ngx_http_dynroute_services_conf_t;

char *ngx_http_dynroute_services(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
ngx_int_t ngx_http_dynroute_services_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;

/* whether uscf is the carrier of the configuration */
bool ngx_http_dynroute_services_carrier(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_upstream_srv_conf_t *uscf) noexcept;

/* postconfiguration: the carrier and its limits into the schema */
void ngx_http_dynroute_services_info(ngx_http_dynroute_main_conf_t *dmcf,
    dynroute::Schema &schema);

/*
 * A worker's refresh (ngx_http_dynroute_view.cpp), beside the
 * dynroute_servers groups': fill() the services' lists from version v's
 * blocks, without allocating; commit() switches to them.
 */
void ngx_http_dynroute_services_fill(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_dynroute_live_t *live, ngx_http_dynroute_version_t *v) noexcept;
void ngx_http_dynroute_services_commit(ngx_http_dynroute_main_conf_t *dmcf)
    noexcept;

/* what a runtime host naming the service of key (service_key_bit | its
 * id) stands for in this worker, or NULL */
ngx_http_dynroute_rule_t *ngx_http_dynroute_services_rule(
    ngx_http_dynroute_main_conf_t *dmcf, uint32_t key) noexcept;

/* the carrier, or NULL */
ngx_http_upstream_srv_conf_t *ngx_http_dynroute_services_uscf(
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;

/* the incarnation of the service of key now (0: none) */
uint32_t ngx_http_dynroute_services_stamp_key(
    ngx_http_dynroute_main_conf_t *dmcf, uint32_t key) noexcept;

/* the incarnation of the service whose rule is rule, for the request's
 * context (0: rule is no service's) */
uint32_t ngx_http_dynroute_services_stamp(
    ngx_http_dynroute_main_conf_t *dmcf,
    const ngx_http_dynroute_rule_t *rule) noexcept;
