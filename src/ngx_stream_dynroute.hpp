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

    /* the named captures of each regex, in the core's order */
    std::vector<std::vector<ngx_stream_dynroute_capture_t>>  captures;
} ngx_stream_dynroute_table_t;


typedef struct {
    ngx_array_t                      tables;     /* table_t * */
    ngx_array_t                      uses;       /* srv_conf_t * */
    ngx_array_t                      balancers;  /* upstream_srv_conf_t * */
    ngx_array_t                      rollouts;   /* rollout_t * */
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
