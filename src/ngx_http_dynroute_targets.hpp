/*
 * The target registry (ngx_http_dynroute_targets.cpp): what a name of the
 * configuration stands for, and whether a request may be routed to it.
 */
#pragma once

#include <functional>
#include <string_view>

#include "ngx_http_dynroute.hpp"


#define NGX_HTTP_DYNROUTE_TARGET_UPSTREAM  0
#define NGX_HTTP_DYNROUTE_TARGET_ROLLOUT   1

typedef struct {
    ngx_str_t                      name;     /* as the configuration has it */
    ngx_uint_t                     kind;     /* NGX_HTTP_DYNROUTE_TARGET_* */
    ngx_http_upstream_srv_conf_t  *uscf;     /* an upstream{} block */
    ngx_http_dynroute_rollout_t   *rollout;  /* a rollout */
    ngx_http_dynroute_rule_t      *rule;     /* what a runtime host entry
                                                naming it stands for (with
                                                a zone) */
    const char                    *why;      /* not NULL: may not be routed
                                                to, and why */
} ngx_http_dynroute_target_t;

ngx_int_t ngx_http_dynroute_targets_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
ngx_http_dynroute_target_t *ngx_http_dynroute_target_resolve(
    ngx_http_dynroute_main_conf_t *dmcf, std::string_view name,
    const char **why);
std::string_view ngx_http_dynroute_target_closest(
    ngx_http_dynroute_main_conf_t *dmcf, std::string_view name,
    bool upstreams);
ngx_http_dynroute_target_t *ngx_http_dynroute_target_exact(
    ngx_http_dynroute_main_conf_t *dmcf, std::string_view name) noexcept;
void ngx_http_dynroute_targets_each(ngx_http_dynroute_main_conf_t *dmcf,
    const std::function<void(ngx_http_dynroute_target_t &)> &f);
