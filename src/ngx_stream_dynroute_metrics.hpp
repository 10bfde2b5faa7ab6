/*
 * The stream module's metrics (ngx_stream_dynroute_metrics.cpp), counted
 * in the http dynroute_zone's series: what the http side calls.  Built only
 * when nginx has stream; the declarations are weak, so the http side finds
 * them NULL when the stream part was not built.  No stream header here.
 */
#pragma once

#include "ngx_http_dynroute.hpp"


namespace dynroute::metrics { struct Snapshot; }

/*
 * In the zone being initialised, under its lock (after the http
 * configuration's series): the series of the cycle's stream tables, rules
 * (per_rule) and rollout variants, found again or made.  NGX_ERROR, with an
 * [emerg] naming the zone's file and line, when the zone is too small.
 */
ngx_int_t ngx_stream_dynroute_metrics_init(ngx_cycle_t *cycle,
    ngx_http_dynroute_main_conf_t *hmcf, ngx_slab_pool_t *shpool,
    ngx_rbtree_t *series, ngx_log_t *log) noexcept __attribute__((weak));

/* for {prefix}metrics and {prefix}stats: the cycle's stream counters.
 * Throws. */
void ngx_stream_dynroute_metrics_read(ngx_cycle_t *cycle,
    dynroute::metrics::Snapshot &s) __attribute__((weak));
