/*
 * dynroute_rollout and dynroute_sticky_secret (ngx_http_dynroute_rollout.cpp):
 * a rollout's block, its checks once everything is read, and what a request
 * offers its pick.
 */
#pragma once

#include "ngx_http_dynroute.hpp"
#include "rollout.hpp"


char *ngx_http_dynroute_rollout_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_dynroute_sticky_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;

ngx_int_t ngx_http_dynroute_rollout_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, ngx_http_dynroute_rollout_t *rollout)
    noexcept;
ngx_int_t ngx_http_dynroute_rollout_sign(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, ngx_http_dynroute_rollout_t *ro)
    noexcept;

/* request time: the variant for r under split; issue: the stickiness
 * cookie's value to set, for a pick by weight (NULL: none wanted) */
ngx_uint_t ngx_http_dynroute_rollout_pick(ngx_http_request_t *r,
    ngx_http_dynroute_rollout_t *rollout, const dynroute::Split &split,
    dynroute::Rollout::Reason *reason, dynroute::StickyValue *issue)
    noexcept;
