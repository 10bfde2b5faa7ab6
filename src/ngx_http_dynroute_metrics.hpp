/*
 * The metrics (ngx_http_dynroute_metrics.cpp): counters in the zone, the
 * log-phase count, and their snapshot for {prefix}metrics and {prefix}stats.
 */
#pragma once

#include "ngx_http_dynroute.hpp"


namespace dynroute::metrics { struct Snapshot; }

/* in the zone being initialised, under its lock: the counters of every
 * table, rule and variant, found again after a reload or made */
ngx_int_t ngx_http_dynroute_metrics_init(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_slab_pool_t *shpool, ngx_rbtree_t *series, ngx_log_t *log) noexcept;

/* postconfiguration: the log-phase handler that counts */
ngx_int_t ngx_http_dynroute_metrics_log_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;

void ngx_http_dynroute_metrics_count(ngx_http_request_t *r,
    ngx_http_dynroute_rule_t *rule, ngx_uint_t id,
    ngx_http_dynroute_table_t *table, ngx_uint_t runtime, ngx_uint_t variant,
    ngx_uint_t served, ngx_uint_t reason) noexcept;

/* for {prefix}metrics and {prefix}stats, the counters: throws */
void ngx_http_dynroute_metrics_read(ngx_http_dynroute_main_conf_t *dmcf,
    dynroute::metrics::Snapshot &s);
