/*
 * The routing decision (ngx_http_dynroute_decision.cpp): for a request, the
 * rule of its table that its Host matches (or a runtime host's entry), and
 * for a rollout the variant; kept in the request's context for the
 * variables, the balancer, the rollout's response filter and the metrics.
 */
#pragma once

#include "ngx_http_dynroute.hpp"


/*
 * Per request.  The main request's is kept in a pool cleanup so that it
 * survives the jump to a named location and internal redirects, which
 * clear module contexts (a subrequest, which never jumps, decides again
 * after an internal redirect).  A rollout's variant is picked when first
 * read, and again if the client address changed since (realip applied in
 * a location, after the decision).  Kept small: it comes out of the
 * request's pool on every request.
 */
typedef struct {
    ngx_http_dynroute_table_t *table;
    ngx_http_dynroute_rule_t  *rule;     /* NULL: no rule matched */
    ngx_str_t                 *jumped;   /* the named location jumped to */
    struct sockaddr           *sockaddr; /* the address the pick saw */

    /* a rollout's pick, kept whatever the runtime API changes later */
    const ngx_http_upstream_srv_conf_t  *chosen;
    const ngx_http_upstream_srv_conf_t  *primary;
    uint16_t                   variant;
    uint16_t                   primary_variant;

    /* the stickiness cookie's value to set (set_sticky) */
    uint32_t                   sticky_issued;
    uint64_t                   sticky_tag;

    unsigned                   picked:1;
    unsigned                   fallback:1; /* the primary served instead */
    unsigned                   runtime:1;  /* a runtime host entry */
    unsigned                   reason:3;   /* dynroute::Rollout::Reason */
    unsigned                   set_sticky:1; /* Set-Cookie to send */

    uint32_t                   rule_index; /* of rule in its table, unless
                                              runtime */
} ngx_http_dynroute_ctx_t;


/* What a dynroute_balancer hands a request to. */
typedef struct {
    ngx_http_upstream_srv_conf_t  *chosen;
    ngx_http_upstream_srv_conf_t  *primary;  /* a rollout's, if not chosen */
} ngx_http_dynroute_choice_t;


/* the host as in $host: the validated Host header, or the server name */
ngx_str_t ngx_http_dynroute_host(ngx_http_request_t *r) noexcept;

/* the request's context, or NULL: what was decided so far */
ngx_http_dynroute_ctx_t *ngx_http_dynroute_get_ctx(ngx_http_request_t *r)
    noexcept;

/* the request's context, deciding now if nothing was: NULL where no table
 * is in effect (or out of memory) */
ngx_http_dynroute_ctx_t *ngx_http_dynroute_request_ctx(ngx_http_request_t *r)
    noexcept;

/* a rollout rule's variant for this request, picked when first asked */
ngx_uint_t ngx_http_dynroute_variant(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx) noexcept;

/* $dynroute_upstream (upstream: true) or another variable where the
 * decision has no upstream */
ngx_int_t ngx_http_dynroute_no_upstream(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, bool upstream) noexcept;

/* for dynroute_balancer */
ngx_int_t ngx_http_dynroute_choose(ngx_http_request_t *r,
    ngx_http_dynroute_choice_t *choice) noexcept;
void ngx_http_dynroute_fell_back(ngx_http_request_t *r) noexcept;

/* postconfiguration: the stand-in upstream, then the precontent handler
 * where the tables need it */
ngx_int_t ngx_http_dynroute_add_stand_in(ngx_conf_t *cf) noexcept;
ngx_int_t ngx_http_dynroute_decision_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
