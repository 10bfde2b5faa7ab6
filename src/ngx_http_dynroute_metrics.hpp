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

/* for {prefix}metrics and {prefix}stats, the counters: throws */
void ngx_http_dynroute_metrics_read(ngx_http_dynroute_main_conf_t *dmcf,
    dynroute::metrics::Snapshot &s);

/*
 * The cell of a "server" line of a dynroute_servers upstream (the
 * dynroute::metrics::ServerSlot words, cell_bytes of them zeroed when it
 * is made): found again by upstream and address as the series are, made
 * if missing, whatever the metrics= setting (the cells also count tries in
 * flight).  NULL: the zone is full.  Under the zone's mutex.
 */
uint64_t *ngx_http_dynroute_metrics_cell(ngx_slab_pool_t *shpool,
    ngx_rbtree_t *series, ngx_str_t *upstream, ngx_str_t *server) noexcept;

/*
 * A series of `width` counters keyed by kind and names (a, and b or NULL),
 * as the configuration's are: found again (a reload keeps its counts), or
 * made zeroed.  NULL: the zone is full, and *missing (if not NULL) grows by
 * the bytes it would take.  Under the zone's mutex.  For the stream
 * module's series (ngx_stream_dynroute_metrics.cpp): kinds 'T', 'R', 'V'.
 */
uint64_t *ngx_http_dynroute_metrics_series(ngx_slab_pool_t *shpool,
    ngx_rbtree_t *series, char kind, size_t width, const ngx_str_t *a,
    const ngx_str_t *b, size_t *missing) noexcept;
