/*
 * ngx_stream_dynroute_module's configuration, as its files share it: the
 * module (ngx_stream_dynroute_module.cpp), the rollouts
 * (ngx_stream_dynroute_rollout.cpp) and the metrics
 * (ngx_stream_dynroute_metrics.cpp).
 */
#pragma once

#include <deque>
#include <vector>

#include "ngx_http_dynroute_conf.hpp"
#include "ngx_stream_dynroute_metrics.hpp"
#include "ngx_stream_dynroute_rollout.hpp"
#include "table.hpp"
#include "host.hpp"


/* resolved when ngx_stream_module is linked before this .so, else NULL */
#pragma weak ngx_stream_module
#pragma weak ngx_stream_core_module
#pragma weak ngx_stream_upstream_module
#pragma weak ngx_stream_add_variable
#pragma weak ngx_stream_get_variable_index
#pragma weak ngx_stream_get_indexed_variable


typedef struct ngx_stream_dynroute_dest_s  ngx_stream_dynroute_dest_t;

struct ngx_stream_dynroute_dest_s {
    ngx_str_t                        target;
    ngx_stream_upstream_srv_conf_t  *uscf;     /* set by the checks */
    u_char                          *file;     /* where first named */
    ngx_uint_t                       line;
    ngx_stream_dynroute_rollout_t   *rollout;  /* target is a rollout */
    ngx_str_t                       *variant;  /* a variant's own dest */
};


typedef struct ngx_stream_dynroute_rule_s  ngx_stream_dynroute_rule_t;

struct ngx_stream_dynroute_rule_s {
    ngx_str_t                        text;     /* the pattern, "default" */
    ngx_stream_dynroute_dest_t      *dest;

    /* the metrics' series (with an http dynroute_zone): the rule's (with
     * metrics=rules; a variant's copy shares it), and a variant copy's
     * variant's; NULL: not counted */
    uint64_t                        *counters;
    uint64_t                        *variant_counters;

    /* a rollout's: a copy of the rule per variant, whose dest is the
     * variant's upstream */
    ngx_stream_dynroute_rule_t      *variants;
};


typedef struct {
    unsigned                         group;
    ngx_int_t                        index;
} ngx_stream_dynroute_capture_t;


typedef struct {
    ngx_str_t                        name;
    u_char                          *file;
    ngx_uint_t                       line;

    ngx_str_t                        key;      /* "ssl_preread_server_name" */
    ngx_int_t                        key_index;

    dynroute::Table                  core;
    std::deque<ngx_stream_dynroute_rule_t>  rules;
    std::deque<ngx_stream_dynroute_dest_t>  dests;

    uint64_t                        *counters;  /* the metrics' series,
                                                   or NULL */
    uint32_t                         id;        /* the zone's NameId of
                                                   stream/NAME */

    /* the named captures of each regex, in the core's order */
    std::vector<std::vector<ngx_stream_dynroute_capture_t>>  captures;
} ngx_stream_dynroute_table_t;


typedef struct ngx_stream_dynroute_runtime_s  ngx_stream_dynroute_runtime_t;

typedef struct {
    ngx_array_t                      tables;     /* table_t * */
    ngx_array_t                      uses;       /* srv_conf_t * */
    ngx_array_t                      balancers;  /* upstream_srv_conf_t * */
    ngx_array_t                      rollouts;   /* rollout_t * */

    /* the runtime state's side (ngx_stream_dynroute_runtime.cpp) */
    ngx_stream_dynroute_runtime_t   *runtime;
} ngx_stream_dynroute_main_conf_t;


typedef struct {
    ngx_str_t                        name;
    ngx_stream_dynroute_table_t     *table;
    u_char                          *file;
    ngx_uint_t                       line;
} ngx_stream_dynroute_srv_conf_t;


extern "C" {
extern ngx_module_t  ngx_stream_dynroute_module;
}

/* whether nginx's stream module was there when this .so was loaded */
bool ngx_stream_dynroute_linked() noexcept;

/* ngx_stream_dynroute_metrics.cpp: postconfiguration, the log-phase
 * handler that counts the sessions of the servers with a table */
ngx_int_t ngx_stream_dynroute_metrics_log_init(ngx_conf_t *cf,
    ngx_stream_dynroute_main_conf_t *dmcf) noexcept;

/* ngx_stream_dynroute_module.cpp */

/* the stream module's main configuration of a cycle, or NULL (no stream{},
 * or nginx's stream module not loaded first) */
ngx_stream_dynroute_main_conf_t *ngx_stream_dynroute_cycle_conf(
    ngx_cycle_t *cycle) noexcept;

/* a rollout's rule: a copy per variant, each to the variant's upstream */
ngx_int_t ngx_stream_dynroute_rule_variants(ngx_pool_t *pool,
    ngx_stream_dynroute_rule_t *rule) noexcept;

/* ngx_stream_dynroute_runtime.cpp */

/* postconfiguration: the runtime side, empty until the http zone interns
 * the names */
ngx_int_t ngx_stream_dynroute_runtime_init(ngx_conf_t *cf,
    ngx_stream_dynroute_main_conf_t *dmcf) noexcept;

/* connection time: the runtime host's rule for key (a name) in table, or
 * NULL; never allocates or locks */
ngx_stream_dynroute_rule_t *ngx_stream_dynroute_runtime_host(
    ngx_stream_dynroute_runtime_t *rt, ngx_stream_dynroute_table_t *table,
    ngx_str_t key) noexcept;

/* connection time: what a rollout's pick goes by now, the runtime's
 * weights and primary or the configured ones */
dynroute::Split ngx_stream_dynroute_runtime_split(
    ngx_stream_dynroute_runtime_t *rt,
    const ngx_stream_dynroute_rollout_t *ro) noexcept;

