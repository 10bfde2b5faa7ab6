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
    uint32_t                   service;  /* a runtime service's entry's
                                            incarnation, as decided */
    uint32_t                   service_key; /* a variant's service, or 0 */
    uint32_t                   primary_service;     /* the same for the */
    uint32_t                   primary_service_key; /* primary variant */
} ngx_http_dynroute_ctx_t;


/* the host as in $host: the validated Host header, or the server name */
static inline ngx_str_t *
ngx_http_dynroute_host_ref(ngx_http_request_t *r) noexcept
{
    ngx_http_core_srv_conf_t  *cscf;

    if (r->headers_in.server.len) {
        return &r->headers_in.server;
    }

    cscf = static_cast<ngx_http_core_srv_conf_t *>(
               ngx_http_get_module_srv_conf(r, ngx_http_core_module));

    return &cscf->server_name;
}


static inline ngx_str_t
ngx_http_dynroute_host(ngx_http_request_t *r) noexcept
{
    return *ngx_http_dynroute_host_ref(r);
}


/*
 * What table matches r by, for messages and $dynroute_rule: the host, or
 * the value of its key=$variable (in place; a value that is no name is
 * told, not shown), with what it is ("host", "$name") in *what.
 */
ngx_str_t ngx_http_dynroute_subject(ngx_http_request_t *r,
    ngx_http_dynroute_table_t *table, ngx_str_t *what) noexcept;


/* the out-of-line halves of the two below */
ngx_http_dynroute_ctx_t *ngx_http_dynroute_find_ctx(ngx_http_request_t *r)
    noexcept;
ngx_http_dynroute_ctx_t *ngx_http_dynroute_decide_here(ngx_http_request_t *r)
    noexcept;


/*
 * The request's context, or NULL: what was decided so far.  After a jump
 * to a named location or an internal redirect, which clear module
 * contexts, the main request's is found again by its pool cleanup.
 */
static inline ngx_http_dynroute_ctx_t *
ngx_http_dynroute_get_ctx(ngx_http_request_t *r) noexcept
{
    ngx_http_dynroute_ctx_t  *ctx;

    ctx = static_cast<ngx_http_dynroute_ctx_t *>(
              ngx_http_get_module_ctx(r, ngx_http_dynroute_module));

    if (ctx || r != r->main) {
        return ctx;
    }

    return ngx_http_dynroute_find_ctx(r);
}


/* the request's context, deciding now if nothing was: NULL where no table
 * is in effect (or out of memory) */
static inline ngx_http_dynroute_ctx_t *
ngx_http_dynroute_request_ctx(ngx_http_request_t *r) noexcept
{
    ngx_http_dynroute_ctx_t  *ctx;

    ctx = ngx_http_dynroute_get_ctx(r);

    return ctx ? ctx : ngx_http_dynroute_decide_here(r);
}


/* a rollout rule's variant for this request, picked when first asked */
ngx_uint_t ngx_http_dynroute_variant(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx) noexcept;

/* $dynroute_upstream (upstream: true) or another variable where the
 * decision has no upstream */
ngx_int_t ngx_http_dynroute_no_upstream(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, bool upstream) noexcept;

/* for dynroute_balancer */
void ngx_http_dynroute_log_no_upstream(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx) noexcept;

/*
 * For dynroute_balancer: the request's context where its decision has an
 * upstream{} (a rule's, or its rollout's variant, picked now if it was not
 * yet); NULL, with one error line, where it has none.  Inline: a rule's
 * upstream is the common case.
 */
static inline ngx_http_dynroute_ctx_t *
ngx_http_dynroute_upstream_ctx(ngx_http_request_t *r) noexcept
{
    ngx_http_dynroute_ctx_t  *ctx;

    ctx = ngx_http_dynroute_request_ctx(r);

    if (ctx == NULL || ctx->rule == NULL || ctx->rule->dest->named) {
        ngx_http_dynroute_log_no_upstream(r, ctx);
        return NULL;
    }

    if (ctx->rule->dest->rollout) {
        (void) ngx_http_dynroute_variant(r, ctx);
    }

    return ctx;
}

void ngx_http_dynroute_fell_back(ngx_http_request_t *r) noexcept;

/* postconfiguration: the stand-in upstream, then the precontent handler
 * where the tables need it */
ngx_int_t ngx_http_dynroute_add_stand_in(ngx_conf_t *cf) noexcept;
ngx_int_t ngx_http_dynroute_decision_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
