/*
 * Rollouts in stream{}: "dynroute_rollout NAME { variant ...; key ...;
 * source ...; }", a stream table's target, split by the core's Rollout
 * (src/core/rollout.hpp) as the http rollouts are.  What the module's
 * frame (ngx_stream_dynroute_module.cpp) and the rollouts' file
 * (ngx_stream_dynroute_rollout.cpp) offer each other.
 */
#pragma once

#include <memory>
#include <vector>

#include "ngx_http_dynroute_conf.hpp"
#include "rollout.hpp"

extern "C" {
#include <ngx_stream.h>
}


/* one variant of a stream rollout, in the core's order */
typedef struct {
    ngx_str_t                          name;
    ngx_str_t                          upstream;
    ngx_stream_upstream_srv_conf_t    *uscf;     /* set by the checks */
    u_char                            *file;
    ngx_uint_t                         line;
    uint64_t                          *counters; /* the metrics' series,
                                                    or NULL */
} ngx_stream_dynroute_variant_t;


/* a "dynroute_rollout" block of stream{}: new, deleted with the cycle */
typedef struct {
    ngx_str_t                                   name;
    u_char                                     *file;
    ngx_uint_t                                  line;

    ngx_uint_t                                  index;  /* in the main
                                                           configuration's
                                                           rollouts */
    std::unique_ptr<dynroute::Rollout>          core;
    std::vector<ngx_stream_dynroute_variant_t>  variants;

    /* "key $a $b": the first non-empty, else the client address */
    std::vector<ngx_int_t>                      keys;
    std::vector<ngx_str_t>                      key_names;
    bool                                        sources;
} ngx_stream_dynroute_rollout_t;


/* ngx_stream_dynroute_rollout.cpp */

/* the block; rollouts: the main configuration's ngx_stream_dynroute_
 * rollout_t *, to add it to */
char *ngx_stream_dynroute_rollout_block(ngx_conf_t *cf,
    ngx_array_t *rollouts) noexcept;

/* once stream{} is read: each variant's upstream and each key */
ngx_int_t ngx_stream_dynroute_rollout_check(ngx_conf_t *cf,
    ngx_stream_dynroute_rollout_t *ro, ngx_array_t *upstreams) noexcept;

/* connection time: the session's variant (an index into variants) */
ngx_uint_t ngx_stream_dynroute_rollout_pick(ngx_stream_session_t *s,
    const ngx_stream_dynroute_rollout_t *ro, const dynroute::Split &split)
    noexcept;


/* ngx_stream_dynroute_module.cpp */

ngx_stream_upstream_srv_conf_t *ngx_stream_dynroute_find_upstream(
    ngx_array_t *upstreams, const ngx_str_t &name) noexcept;
bool ngx_stream_dynroute_http_upstream(ngx_conf_t *cf, const ngx_str_t &name)
    noexcept;
bool ngx_stream_dynroute_variable_exists(ngx_conf_t *cf,
    const ngx_str_t &name) noexcept;
bool ngx_stream_dynroute_is_balancer(ngx_stream_upstream_srv_conf_t *uscf)
    noexcept;
