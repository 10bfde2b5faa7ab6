/*
 * ngx_http_dynroute_module: chooses the upstream for proxy_pass from the
 * Host header with nginx's own name semantics.  The decision is made when
 * first needed; its actions (a jump to a named location, a 421) are taken
 * in the precontent phase, after the location's access checks, and only
 * for the main request: see "Security model" in the README.
 *
 * The matching itself lives in src/core (no nginx headers); this file
 * translates between nginx and the core and owns nginx lifetimes.  Every
 * function nginx calls is noexcept and catches what the core may throw at
 * configuration time (noexcept itself would only turn an escape into an
 * abort); the request path calls nothing that throws.
 */

#include <deque>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "ngx_http_dynroute_module.hpp"
#include "metrics.hpp"
#include "table.hpp"


/* A dynroute_table block while it is read. */
typedef struct {
    ngx_http_dynroute_table_t *table;
    void                      *http_ctx;  /* the http{} context it replaced */
    dynroute::TableBuilder     builder;
} ngx_http_dynroute_table_parse_t;


/* One "dynroute NAME" directive; resolved in postconfiguration. */
struct ngx_http_dynroute_use_t {
    ngx_str_t                  name;
    ngx_http_dynroute_table_t *table;
    ngx_http_core_srv_conf_t  *cscf;
    u_char                    *file;
    ngx_uint_t                 line;
};


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
} ngx_http_dynroute_ctx_t;


static ngx_int_t ngx_http_dynroute_handler(ngx_http_request_t *r) noexcept;
static ngx_int_t ngx_http_dynroute_log_handler(ngx_http_request_t *r)
    noexcept;
static ngx_int_t ngx_http_dynroute_header_filter(ngx_http_request_t *r)
    noexcept;

static ngx_http_output_header_filter_pt  ngx_http_dynroute_next_header_filter;
static ngx_http_dynroute_ctx_t *ngx_http_dynroute_get_ctx(
    ngx_http_request_t *r) noexcept;
static ngx_http_dynroute_ctx_t *ngx_http_dynroute_decide(
    ngx_http_request_t *r, ngx_http_dynroute_ctx_t *ctx,
    ngx_http_dynroute_table_t *table) noexcept;
static void ngx_http_dynroute_ctx_cleanup(void *data) noexcept;
static ngx_uint_t ngx_http_dynroute_variant(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx) noexcept;
static ngx_int_t ngx_http_dynroute_no_upstream(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx, ngx_http_variable_value_t *v,
    uintptr_t data) noexcept;
static ngx_int_t ngx_http_dynroute_none_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept;
static ngx_http_dynroute_ctx_t *ngx_http_dynroute_variable_ctx(
    ngx_http_request_t *r) noexcept;

static ngx_int_t ngx_http_dynroute_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept;
static ngx_int_t ngx_http_dynroute_capture_not_found(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept;

static char *ngx_http_dynroute_table_block(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf) noexcept;
static char *ngx_http_dynroute_table_rule(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf) noexcept;
static char *ngx_http_dynroute(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
static ngx_int_t ngx_http_dynroute_add_captures(ngx_conf_t *cf,
    ngx_http_dynroute_table_parse_t *p);
static ngx_int_t ngx_http_dynroute_add_capture(ngx_conf_t *cf,
    const dynroute::NamedGroup &g,
    std::vector<ngx_http_dynroute_capture_t> &captures);

static ngx_int_t ngx_http_dynroute_add_variables(ngx_conf_t *cf) noexcept;
static void *ngx_http_dynroute_create_main_conf(ngx_conf_t *cf) noexcept;
static void *ngx_http_dynroute_create_loc_conf(ngx_conf_t *cf) noexcept;
static char *ngx_http_dynroute_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child) noexcept;
static ngx_int_t ngx_http_dynroute_init(ngx_conf_t *cf) noexcept;
static ngx_int_t ngx_http_dynroute_init_module(ngx_cycle_t *cycle) noexcept;
static ngx_int_t ngx_http_dynroute_init_process(ngx_cycle_t *cycle) noexcept;


static ngx_command_t  ngx_http_dynroute_commands[] = {

    { ngx_string("dynroute_table"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_dynroute_table_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_rollout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_dynroute_rollout_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_sticky_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_dynroute_sticky_secret,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dynroute,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_dynroute_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2|NGX_CONF_TAKE3|NGX_CONF_TAKE4,
      ngx_http_dynroute_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_dynroute_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_balancer"),
      NGX_HTTP_UPS_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_http_dynroute_balancer,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_dynroute_module_ctx = {
    ngx_http_dynroute_add_variables,       /* preconfiguration */
    ngx_http_dynroute_init,                /* postconfiguration */

    ngx_http_dynroute_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_dynroute_create_loc_conf,     /* create location configuration */
    ngx_http_dynroute_merge_loc_conf       /* merge location configuration */
};


extern "C" {

ngx_module_t  ngx_http_dynroute_module = {
    NGX_MODULE_V1,
    &ngx_http_dynroute_module_ctx,         /* module context */
    ngx_http_dynroute_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_dynroute_init_module,         /* init module */
    ngx_http_dynroute_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


enum {
    NGX_HTTP_DYNROUTE_VAR_UPSTREAM,
    NGX_HTTP_DYNROUTE_VAR_RULE,
    NGX_HTTP_DYNROUTE_VAR_VARIANT,
    NGX_HTTP_DYNROUTE_VAR_PRIMARY,
    NGX_HTTP_DYNROUTE_VAR_FALLBACK,
    NGX_HTTP_DYNROUTE_VAR_SERVED,
    NGX_HTTP_DYNROUTE_VAR_REASON
};


static ngx_http_variable_t  ngx_http_dynroute_vars[] = {

    { ngx_string("dynroute_upstream"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_UPSTREAM, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_rule"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_RULE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_variant"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_VARIANT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_primary"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_PRIMARY, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_fallback"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_FALLBACK, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_served"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_SERVED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_reason"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_REASON, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_dynroute_none = ngx_string("(none)");
static ngx_str_t  ngx_http_dynroute_rule_reason = ngx_string("rule");


/* the host as in $host: the validated Host header, or the server name */

static ngx_str_t
ngx_http_dynroute_host(ngx_http_request_t *r) noexcept
{
    ngx_http_core_srv_conf_t  *cscf;

    if (r->headers_in.server.len) {
        return r->headers_in.server;
    }

    cscf = static_cast<ngx_http_core_srv_conf_t *>(
               ngx_http_get_module_srv_conf(r, ngx_http_core_module));

    return cscf->server_name;
}


/* request time */


/*
 * The precontent phase: after rewrite, return and the access checks
 * (allow/deny, auth_basic, auth_request), so that a jump never skips them;
 * before try_files, mirror and the content handler.
 */

static ngx_int_t
ngx_http_dynroute_handler(ngx_http_request_t *r) noexcept
{
    ngx_str_t                      name, host;
    ngx_http_dynroute_ctx_t       *ctx;
    ngx_http_dynroute_table_t     *table;
    ngx_http_dynroute_loc_conf_t  *dlcf;

    dlcf = static_cast<ngx_http_dynroute_loc_conf_t *>(
               ngx_http_get_module_loc_conf(r, ngx_http_dynroute_module));

    /* health and API locations answer for this instance: never routed */

    if (dlcf->use == NULL || dlcf->health || dlcf->api) {
        return NGX_DECLINED;
    }

    /*
     * A subrequest (auth_request, mirror, SSI, addition, slice, a cache
     * update) is never answered by a jump or a 421: its variables still
     * carry the decision, and a *_pass that needs an upstream where there
     * is none gets a 500 (ngx_http_dynroute_no_upstream).
     */

    if (r != r->main) {
        return NGX_DECLINED;
    }

    table = dlcf->use->table;

    ctx = ngx_http_dynroute_get_ctx(r);

    if (ctx == NULL || ctx->table != table) {
        ctx = ngx_http_dynroute_decide(r, ctx, table);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->rule == NULL) {
        host = ngx_http_dynroute_host(r);
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "dynroute: no rule of table \"%V\" matches "
                      "host \"%V\", answering 421", &table->name, &host);
        return NGX_HTTP_MISDIRECTED_REQUEST;
    }

    /* a request jumps once: the named location serves it from then on */

    if (!ctx->rule->named || ctx->jumped) {
        return NGX_DECLINED;
    }

    ctx->jumped = &ctx->rule->target;
    name = ctx->rule->target;

    (void) ngx_http_named_location(r, &name);

    ngx_http_finalize_request(r, NGX_DONE);
    return NGX_DONE;
}


static ngx_http_dynroute_ctx_t *
ngx_http_dynroute_get_ctx(ngx_http_request_t *r) noexcept
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_dynroute_ctx_t  *ctx;

    ctx = static_cast<ngx_http_dynroute_ctx_t *>(
              ngx_http_get_module_ctx(r, ngx_http_dynroute_module));

    if (ctx || r != r->main) {
        return ctx;
    }

    /* after a jump to a named location or an internal redirect */

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_dynroute_ctx_cleanup) {
            ctx = static_cast<ngx_http_dynroute_ctx_t *>(cln->data);
            ngx_http_set_ctx(r, ctx, ngx_http_dynroute_module);
            return ctx;
        }
    }

    return NULL;
}


/* ctx: the request's context if it has one already, or NULL */

static ngx_http_dynroute_ctx_t *
ngx_http_dynroute_decide(ngx_http_request_t *r, ngx_http_dynroute_ctx_t *ctx,
    ngx_http_dynroute_table_t *table) noexcept
{
    size_t                        begin, end;
    ngx_str_t                     host;
    ngx_pool_cleanup_t           *cln;
    dynroute::Decision            d;
    ngx_http_variable_value_t    *vv;
    ngx_http_dynroute_main_conf_t *dmcf;

    if (ctx == NULL && r == r->main) {
        cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_dynroute_ctx_t));
        if (cln == NULL) {
            return NULL;
        }

        cln->handler = ngx_http_dynroute_ctx_cleanup;
        ctx = static_cast<ngx_http_dynroute_ctx_t *>(cln->data);
        ngx_memzero(ctx, sizeof(ngx_http_dynroute_ctx_t));

        ngx_http_set_ctx(r, ctx, ngx_http_dynroute_module);

    } else if (ctx == NULL) {
        ctx = static_cast<ngx_http_dynroute_ctx_t *>(
                  ngx_pcalloc(r->pool, sizeof(ngx_http_dynroute_ctx_t)));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_dynroute_module);
    }

    host = ngx_http_dynroute_host(r);

    ctx->table = table;
    ctx->picked = 0;

    /* a runtime host entry wins over the configured rules */

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_get_module_main_conf(r, ngx_http_dynroute_module));

    if (dmcf->zone) {
        ngx_http_dynroute_live_sync(dmcf->live);

        ctx->rule = ngx_http_dynroute_live_host(dmcf->live, table->index,
                                                host);
        if (ctx->rule) {
            ctx->runtime = 1;

            ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "dynroute: table \"%V\" host \"%V\" runtime "
                           "entry \"%V\"", &table->name, &host,
                           &ctx->rule->target);
            return ctx;
        }
    }

    ctx->runtime = 0;

    d = table->core.find(ngx_http_dynroute_view(host));

    if (d.error) {
        if (table->counters) {
            __atomic_fetch_add(
                &table->counters[dynroute::metrics::t_regex_errors], 1,
                __ATOMIC_RELAXED);
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: a regex of table \"%V\" failed on "
                      "host \"%V\", using the default", &table->name, &host);
    }

    ctx->rule = (d.rule == dynroute::no_rule) ? NULL : &table->rules[d.rule];

    if (d.regex >= 0) {
        for (const auto &c : table->captures[d.regex]) {
            vv = &r->variables[c.index];

            if (table->core.group(c.group, begin, end)) {
                vv->data = host.data + begin;
                vv->len = end - begin;

            } else {
                vv->data = host.data;
                vv->len = 0;
            }

            vv->valid = 1;
            vv->no_cacheable = 0;
            vv->not_found = 0;
        }
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dynroute: table \"%V\" host \"%V\" rule \"%V\"",
                   &table->name, &host,
                   ctx->rule ? &ctx->rule->text : &ngx_http_dynroute_none);

    return ctx;
}


static void
ngx_http_dynroute_ctx_cleanup(void *data) noexcept
{
    /* nothing to free: the mark lets the context be found again */
}


/*
 * A rollout's response: the stickiness cookie for a first visit, and no
 * storing in a shared cache for a response that is one client's own (its
 * variant chosen by an override, or the cookie set): Cache-Control:
 * private for caches in front, and this nginx's own proxy_cache told not
 * to store it.
 */

static ngx_int_t
ngx_http_dynroute_header_filter(ngx_http_request_t *r) noexcept
{
    bool                          own, no_store;
    size_t                        len;
    u_char                       *p;
    ngx_table_elt_t              *h;
    ngx_http_dynroute_ctx_t      *ctx;
    ngx_http_dynroute_rollout_t  *ro;

    if (r != r->main) {
        return ngx_http_dynroute_next_header_filter(r);
    }

    ctx = ngx_http_dynroute_get_ctx(r);

    if (ctx == NULL || !ctx->picked || ctx->rule == NULL
        || ctx->rule->rollout == NULL)
    {
        return ngx_http_dynroute_next_header_filter(r);
    }

    ro = ctx->rule->rollout;

    own = ctx->reason
              == static_cast<unsigned>(dynroute::Rollout::Reason::header)
          || ctx->reason
              == static_cast<unsigned>(dynroute::Rollout::Reason::cookie);

    /* a failed variant's pick is not recorded: the next request picks */

    if (ctx->set_sticky && !ctx->fallback) {
        h = static_cast<ngx_table_elt_t *>(
                ngx_list_push(&r->headers_out.headers));
        if (h == NULL) {
            return NGX_ERROR;
        }

        /* NAME=<issue time><tag>; attributes, in the request's pool */

        len = ro->sticky.len + 1 + dynroute::sticky_value_size
              + ro->sticky_attrs.size();

        p = static_cast<u_char *>(ngx_pnalloc(r->pool, len));
        if (p == NULL) {
            return NGX_ERROR;
        }

        h->value.data = p;
        h->value.len = len;

        p = ngx_cpymem(p, ro->sticky.data, ro->sticky.len);
        *p++ = '=';
        dynroute::format_sticky({ctx->sticky_issued, ctx->sticky_tag},
                                reinterpret_cast<char *>(p));
        p += dynroute::sticky_value_size;
        ngx_memcpy(p, ro->sticky_attrs.data(), ro->sticky_attrs.size());

        h->hash = 1;
        ngx_str_set(&h->key, "Set-Cookie");
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif

        own = true;
    }

    ctx->set_sticky = 0;

    if (!own) {
        return ngx_http_dynroute_next_header_filter(r);
    }

    if (r->upstream) {
        r->upstream->cacheable = 0;
    }

    /* the upstream's Cache-Control gives way to "private" (no-store stays) */

    no_store = false;

    ngx_http_dynroute_each_header(&r->headers_out.headers,
        [&](ngx_table_elt_t &e) {

        if (e.hash && ngx_http_dynroute_header_is(e, "Cache-Control")
            && ngx_strlcasestrn(e.value.data, e.value.data + e.value.len,
                                (u_char *) "no-store", 8 - 1))
        {
            no_store = true;
        }
    });

    if (no_store) {
        return ngx_http_dynroute_next_header_filter(r);
    }

    ngx_http_dynroute_each_header(&r->headers_out.headers,
        [&](ngx_table_elt_t &e) {

        if (ngx_http_dynroute_header_is(e, "Cache-Control")) {
            e.hash = 0;
        }
    });

    h = static_cast<ngx_table_elt_t *>(ngx_list_push(&r->headers_out.headers));
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "private");
#if (nginx_version >= 1023000)
    h->next = NULL;     /* not r->headers_out.cache_control: "expires" would
                           rewrite it */
#endif

    return ngx_http_dynroute_next_header_filter(r);
}


/*
 * The log phase, with a dynroute_zone and its metrics: count the main
 * request once, by the table and rule of its last decision and, for a
 * rollout whose variant was picked, by the variant that served it.
 */

static ngx_int_t
ngx_http_dynroute_log_handler(ngx_http_request_t *r) noexcept
{
    ngx_http_dynroute_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_dynroute_get_ctx(r);

    if (ctx == NULL || ctx->table == NULL) {
        return NGX_OK;
    }

    ngx_http_dynroute_metrics_count(r, ctx->rule, ctx->table, ctx->runtime,
        ctx->picked ? ctx->variant : NGX_MAX_UINT32_VALUE,
        ctx->fallback ? ctx->primary_variant : ctx->variant,
        ctx->fallback ? static_cast<ngx_uint_t>(
                            dynroute::Rollout::Reason::fallback)
                      : ctx->reason);

    return NGX_OK;
}


static ngx_uint_t
ngx_http_dynroute_variant(ngx_http_request_t *r, ngx_http_dynroute_ctx_t *ctx)
    noexcept
{
    ngx_uint_t                      v, p;
    dynroute::StickyValue           sticky;
    dynroute::Rollout::Reason       reason;
    ngx_http_dynroute_route_t       route;
    ngx_http_dynroute_main_conf_t  *dmcf;

    if (!ctx->picked || ctx->sockaddr != r->connection->sockaddr) {
        dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
                   ngx_http_get_module_main_conf(r, ngx_http_dynroute_module));

        route = ngx_http_dynroute_live_route(dmcf->live, ctx->rule->rollout);
        v = ngx_http_dynroute_rollout_pick(r, ctx->rule->rollout,
                                           route.split, &reason,
                                           r == r->main ? &sticky : NULL);
        p = route.split.primary;

        ctx->variant = static_cast<uint16_t>(v);
        ctx->primary_variant = static_cast<uint16_t>(p);
        ctx->chosen = route.upstreams[v];
        ctx->primary = route.upstreams[p];
        ctx->sockaddr = r->connection->sockaddr;
        ctx->reason = static_cast<unsigned>(reason);
        ctx->set_sticky = (reason == dynroute::Rollout::Reason::weight
                           && ctx->rule->rollout->sticky.len
                           && r == r->main);

        if (ctx->set_sticky) {
            ctx->sticky_issued = sticky.issued;
            ctx->sticky_tag = sticky.tag;
        }
        ctx->picked = 1;
    }

    return ctx->variant;
}


static ngx_http_dynroute_ctx_t *
ngx_http_dynroute_variable_ctx(ngx_http_request_t *r) noexcept
{
    ngx_http_dynroute_ctx_t       *ctx;
    ngx_http_dynroute_loc_conf_t  *dlcf;

    ctx = ngx_http_dynroute_get_ctx(r);

    if (ctx) {
        return ctx;
    }

    /* read before the precontent phase handler ran: decide now */

    dlcf = static_cast<ngx_http_dynroute_loc_conf_t *>(
               ngx_http_get_module_loc_conf(r, ngx_http_dynroute_module));

    if (dlcf->use == NULL) {
        return NULL;
    }

    return ngx_http_dynroute_decide(r, NULL, dlcf->use->table);
}


/*
 * $dynroute_upstream: the rule's upstream, or its rollout's chosen variant's;
 * $dynroute_rule: the rule as written; $dynroute_variant: the chosen
 * variant's name (rollouts only); $dynroute_primary: the rollout's primary
 * upstream, or the rule's upstream.  A named location is not an upstream:
 * see ngx_http_dynroute_no_upstream for what a *_pass gets then.
 */

static ngx_int_t
ngx_http_dynroute_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept
{
    const ngx_str_t              *s;
    ngx_str_t                     host;
    std::string_view              reason;
    ngx_http_dynroute_ctx_t      *ctx;
    ngx_http_dynroute_rule_t     *rule;
    ngx_http_dynroute_rollout_t  *ro;

    ctx = ngx_http_dynroute_variable_ctx(r);

    if (ctx == NULL || ctx->rule == NULL) {
        return ngx_http_dynroute_no_upstream(r, ctx, v, data);
    }

    rule = ctx->rule;
    ro = rule->rollout;
    s = NULL;

    switch (data) {

    case NGX_HTTP_DYNROUTE_VAR_RULE:
        if (ctx->runtime) {
            host = ngx_http_dynroute_host(r);
            s = &host;
            break;
        }

        s = &rule->text;
        break;

    case NGX_HTTP_DYNROUTE_VAR_VARIANT:
        s = ro ? &ro->variants[ngx_http_dynroute_variant(r, ctx)].name : NULL;
        break;

    case NGX_HTTP_DYNROUTE_VAR_FALLBACK:
        s = (ro && ctx->fallback) ? &ro->variants[ctx->primary_variant].name
                                  : NULL;
        break;

    case NGX_HTTP_DYNROUTE_VAR_SERVED:
        if (ro) {
            (void) ngx_http_dynroute_variant(r, ctx);
            s = &ro->variants[ctx->fallback ? ctx->primary_variant
                                            : ctx->variant].name;
        }

        break;

    case NGX_HTTP_DYNROUTE_VAR_REASON:
        if (ro) {
            (void) ngx_http_dynroute_variant(r, ctx);
            reason = dynroute::Rollout::reason_name(
                ctx->fallback ? dynroute::Rollout::Reason::fallback
                    : static_cast<dynroute::Rollout::Reason>(ctx->reason));
            host.data = reinterpret_cast<u_char *>(
                            const_cast<char *>(reason.data()));
            host.len = reason.size();
            s = &host;

        } else if (!rule->named) {
            s = &ngx_http_dynroute_rule_reason;
        }

        break;

    case NGX_HTTP_DYNROUTE_VAR_PRIMARY:
        if (ro) {
            (void) ngx_http_dynroute_variant(r, ctx);
            s = &ctx->primary->host;
            break;
        }

        /* fall through */

    default: /* NGX_HTTP_DYNROUTE_VAR_UPSTREAM */
        if (ro) {
            (void) ngx_http_dynroute_variant(r, ctx);
            s = &ctx->chosen->host;

        } else if (!rule->named) {
            s = &rule->target;
        }
    }

    if (s == NULL) {
        return ngx_http_dynroute_no_upstream(r, ctx, v, data);
    }

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * The decision has no upstream (a named location, no rule, no table here).
 * For logs, "if" and "set" the variable is not found.  A proxy_pass (or
 * grpc_pass, fastcgi_pass...) evaluating its target from it -- r->upstream
 * exists but has no configuration yet -- would fail with "invalid URL
 * prefix in "http://""; it gets the name of an upstream{} of the module's
 * own instead, whose peer initialisation logs why and fails: a 500.
 */

static ngx_str_t  ngx_http_dynroute_none_name =
    ngx_string("dynroute.no-upstream.invalid");


static ngx_int_t
ngx_http_dynroute_no_upstream(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx, ngx_http_variable_value_t *v,
    uintptr_t data) noexcept
{
    if ((data != NGX_HTTP_DYNROUTE_VAR_UPSTREAM
         && data != NGX_HTTP_DYNROUTE_VAR_PRIMARY)
        || r->upstream == NULL || r->upstream->conf != NULL)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = ngx_http_dynroute_none_name.data;
    v->len = ngx_http_dynroute_none_name.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * Added last, after the upstream module initialised the others, so that
 * looking up a real upstream by name never passes it.
 */

static ngx_int_t
ngx_http_dynroute_add_none(ngx_conf_t *cf) noexcept
{
    ngx_url_t                      u;
    ngx_http_upstream_srv_conf_t  *uscf;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.host = ngx_http_dynroute_none_name;
    u.no_resolve = 1;

    uscf = ngx_http_upstream_add(cf, &u, NGX_HTTP_UPSTREAM_CREATE);
    if (uscf == NULL) {
        return NGX_ERROR;
    }

    uscf->peer.init = ngx_http_dynroute_none_init_peer;

    return NGX_OK;
}


/* one error line: why r has no upstream to be passed to */

static void
ngx_http_dynroute_log_no_upstream(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx) noexcept
{
    ngx_str_t                  host;
    ngx_http_dynroute_rule_t  *rule;

    if (ctx == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: no dynroute table "
                      "is in effect here");
        return;
    }

    host = ngx_http_dynroute_host(r);
    rule = ctx->rule;

    if (rule == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: no rule of table "
                      "\"%V\" matches host \"%V\"",
                      &ctx->table->name, &host);

    } else if (r != r->main) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: table \"%V\" sends "
                      "host \"%V\" to the named location \"%V\", which a "
                      "subrequest does not jump to",
                      &ctx->table->name, &host, &rule->target);

    } else if (ctx->jumped == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: table \"%V\" sends "
                      "host \"%V\" to the named location \"%V\"",
                      &ctx->table->name, &host, &rule->target);

    } else if (ngx_http_dynroute_eq(*ctx->jumped, rule->target)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: table \"%V\" sends "
                      "host \"%V\" to the named location \"%V\", and the "
                      "request came back from there by an internal "
                      "redirect", &ctx->table->name, &host, &rule->target);

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: table \"%V\" sends "
                      "host \"%V\" to the named location \"%V\", and the "
                      "request was already sent to \"%V\": a request jumps "
                      "to a named location only once",
                      &ctx->table->name, &host, &rule->target, ctx->jumped);
    }
}


static ngx_int_t
ngx_http_dynroute_none_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept
{
    ngx_http_dynroute_log_no_upstream(r, ngx_http_dynroute_get_ctx(r));
    return NGX_ERROR;
}


/*
 * For dynroute_balancer: the upstream{} of this request's decision (a
 * rule's, or its rollout's chosen variant's) and, for a rollout whose
 * chosen variant is not the primary, the primary's.  NGX_DECLINED (with one
 * error line) where the decision has no upstream.
 */

ngx_int_t
ngx_http_dynroute_choose(ngx_http_request_t *r,
    ngx_http_dynroute_choice_t *choice) noexcept
{
    ngx_http_dynroute_ctx_t      *ctx;
    ngx_http_dynroute_rule_t     *rule;
    ngx_http_dynroute_rollout_t  *ro;

    ctx = ngx_http_dynroute_variable_ctx(r);

    if (ctx == NULL || ctx->rule == NULL || ctx->rule->named) {
        ngx_http_dynroute_log_no_upstream(r, ctx);
        return NGX_DECLINED;
    }

    rule = ctx->rule;
    ro = rule->rollout;

    if (ro == NULL) {
        choice->chosen = rule->uscf;
        choice->primary = NULL;
        return NGX_OK;
    }

    (void) ngx_http_dynroute_variant(r, ctx);

    choice->chosen = const_cast<ngx_http_upstream_srv_conf_t *>(ctx->chosen);
    choice->primary = (ctx->chosen == ctx->primary)
        ? NULL : const_cast<ngx_http_upstream_srv_conf_t *>(ctx->primary);

    return NGX_OK;
}


void
ngx_http_dynroute_fell_back(ngx_http_request_t *r) noexcept
{
    ngx_http_dynroute_ctx_t  *ctx;

    ctx = ngx_http_dynroute_get_ctx(r);

    if (ctx) {
        ctx->fallback = 1;
    }
}


void
ngx_http_dynroute_table_info(ngx_http_dynroute_main_conf_t *dmcf,
    dynroute::Schema &schema)
{
    ngx_uint_t                   i;
    ngx_http_dynroute_table_t  **tp;

    tp = static_cast<ngx_http_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        schema.tables.emplace_back(ngx_http_dynroute_view(tp[i]->name));
        schema.table_rules.push_back(tp[i]->rules.size());
    }
}


static ngx_int_t
ngx_http_dynroute_capture_not_found(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept
{
    v->not_found = 1;
    return NGX_OK;
}


/* configuration */


static char *
ngx_http_dynroute_table_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_dynroute_main_conf_t *dmcf =
        static_cast<ngx_http_dynroute_main_conf_t *>(conf);

    char                       *rv;
    ngx_http_dynroute_table_t  *table;

    table = ngx_http_dynroute_conf_new_named<ngx_http_dynroute_table_t>(cf,
                &dmcf->tables, "dynroute table");
    if (table == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    table->index = dmcf->tables.nelts - 1;

    try {
        ngx_http_dynroute_table_parse_t  p{table, cf->ctx, {}};

        rv = ngx_http_dynroute_conf_block(cf, ngx_http_dynroute_table_rule,
                                          &p, conf);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        table->core = p.builder.build();

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_dynroute_table_rule(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf) noexcept
{
    ngx_http_dynroute_table_parse_t *p =
        static_cast<ngx_http_dynroute_table_parse_t *>(cf->ctx);

    ngx_http_dynroute_table_t  *table = p->table;

    ngx_str_t                  *value;
    dynroute::RuleId            id;
    ngx_http_dynroute_rule_t    rule{}, *prev;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    if (cf->args->nelts == 2 && ngx_http_dynroute_is(value[0], "include")) {
        return ngx_conf_include(cf, dummy, conf);
    }

    if (cf->args->nelts != 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number of parameters in dynroute table "
                           "\"%V\": expected a host pattern and a target",
                           &table->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    rule.text = value[0];
    rule.target = value[1];
    rule.named = (value[1].len && value[1].data[0] == '@');
    rule.rollout = NULL;
    rule.file = cf->conf_file->file.name.data;
    rule.line = cf->conf_file->line;

    if (value[1].len == 0 || (rule.named && value[1].len == 1)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid target \"%V\" in dynroute table \"%V\"",
                           &value[1], &table->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    try {
        id = static_cast<dynroute::RuleId>(table->rules.size());
        table->rules.push_back(rule);

        if (ngx_http_dynroute_is(value[0], "default")) {
            p->builder.set_default(id);

        } else if (ngx_http_dynroute_is(value[0], "ip")) {
            p->builder.set_ip(id);

        } else {
            p->builder.add(ngx_http_dynroute_view(value[0]), id);

            if (p->builder.regex_count() > table->captures.size()
                && ngx_http_dynroute_add_captures(cf, p) != NGX_OK)
            {
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }
        }

    } catch (const dynroute::ConflictError &e) {
        prev = &table->rules[e.previous];

        if (ngx_http_dynroute_eq(prev->text, value[0])) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate \"%V\" in dynroute table \"%V\", "
                               "first defined in %s:%ui",
                               &value[0], &table->name, prev->file,
                               prev->line);

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "host \"%V\" conflicts with \"%V\" in "
                               "dynroute table \"%V\", defined in %s:%ui",
                               &value[0], &prev->text, &table->name,
                               prev->file, prev->line);
        }

        return NGX_HTTP_DYNROUTE_CONF_ERROR;

    } catch (const dynroute::ConfigError &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in dynroute table \"%V\"",
                           e.what(), &table->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    return NGX_CONF_OK;
}


/*
 * The named captures of a regex become variables, as with map and
 * server_name; they share the variables of those regexes of the same name.
 */

static ngx_int_t
ngx_http_dynroute_add_captures(ngx_conf_t *cf,
    ngx_http_dynroute_table_parse_t *p)
{
    void                                      *ctx;
    ngx_int_t                                  rc;
    std::vector<ngx_http_dynroute_capture_t>   captures;

    const dynroute::Regex &re =
        p->builder.regex(p->builder.regex_count() - 1);

    /* the variables API needs the http{} context that the block replaced */

    ctx = cf->ctx;
    cf->ctx = p->http_ctx;

    rc = NGX_OK;

    for (const auto &g : re.named_groups()) {
        rc = ngx_http_dynroute_add_capture(cf, g, captures);
        if (rc != NGX_OK) {
            break;
        }
    }

    cf->ctx = ctx;

    if (rc != NGX_OK) {
        return rc;
    }

    p->table->captures.push_back(std::move(captures));

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynroute_add_capture(ngx_conf_t *cf, const dynroute::NamedGroup &g,
    std::vector<ngx_http_dynroute_capture_t> &captures)
{
    ngx_int_t             index;
    ngx_str_t             name;
    ngx_http_variable_t  *var;

    name.len = g.name.size();
    name.data = static_cast<u_char *>(ngx_pnalloc(cf->pool, name.len));
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(name.data, g.name.data(), name.len);

    var = ngx_http_add_variable(cf, &name, NGX_HTTP_VAR_CHANGEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    if (var->get_handler == NULL) {
        var->get_handler = ngx_http_dynroute_capture_not_found;
    }

    index = ngx_http_get_variable_index(cf, &name);
    if (index == NGX_ERROR) {
        return NGX_ERROR;
    }

    captures.push_back({g.number, index});

    return NGX_OK;
}


static char *
ngx_http_dynroute(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    ngx_http_dynroute_loc_conf_t *dlcf =
        static_cast<ngx_http_dynroute_loc_conf_t *>(conf);

    ngx_str_t                      *value;
    ngx_http_dynroute_use_t        *use, **up;
    ngx_http_dynroute_main_conf_t  *dmcf;

    if (dlcf->use != NGX_CONF_UNSET_PTR) {
        return const_cast<char *>("is duplicate");
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);

    if (ngx_http_dynroute_is(value[1], "off")) {
        dlcf->use = NULL;
        return NGX_CONF_OK;
    }

    use = static_cast<ngx_http_dynroute_use_t *>(
              ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_use_t)));
    if (use == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    use->name = value[1];
    use->cscf = static_cast<ngx_http_core_srv_conf_t *>(
                    ngx_http_conf_get_module_srv_conf(cf,
                                                      ngx_http_core_module));
    use->file = cf->conf_file->file.name.data;
    use->line = cf->conf_file->line;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_dynroute_module));

    up = static_cast<ngx_http_dynroute_use_t **>(
             ngx_array_push(&dmcf->uses));
    if (up == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    *up = use;
    dlcf->use = use;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_dynroute_add_variables(ngx_conf_t *cf) noexcept
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_dynroute_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_http_dynroute_create_main_conf(ngx_conf_t *cf) noexcept
{
    ngx_http_dynroute_main_conf_t  *dmcf;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_main_conf_t)));
    if (dmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&dmcf->tables, cf->pool, 4,
                       sizeof(ngx_http_dynroute_table_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&dmcf->uses, cf->pool, 4,
                       sizeof(ngx_http_dynroute_use_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&dmcf->rollouts, cf->pool, 4,
                       sizeof(ngx_http_dynroute_rollout_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&dmcf->balancers, cf->pool, 1,
                       sizeof(ngx_http_upstream_srv_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&dmcf->apis, cf->pool, 1, sizeof(void *)) != NGX_OK
        || ngx_array_init(&dmcf->readiness, cf->pool, 1,
                          sizeof(ngx_http_dynroute_where_t))
           != NGX_OK)
    {
        return NULL;
    }

    return dmcf;
}


static void *
ngx_http_dynroute_create_loc_conf(ngx_conf_t *cf) noexcept
{
    ngx_http_dynroute_loc_conf_t  *conf;

    conf = static_cast<ngx_http_dynroute_loc_conf_t *>(
               ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_loc_conf_t)));
    if (conf == NULL) {
        return NULL;
    }

    conf->use = static_cast<ngx_http_dynroute_use_t *>(NGX_CONF_UNSET_PTR);

    /* conf->health = 0: a content handler of this location only */

    return conf;
}


static char *
ngx_http_dynroute_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child) noexcept
{
    ngx_http_dynroute_loc_conf_t *prev =
        static_cast<ngx_http_dynroute_loc_conf_t *>(parent);
    ngx_http_dynroute_loc_conf_t *conf =
        static_cast<ngx_http_dynroute_loc_conf_t *>(child);

    ngx_conf_merge_ptr_value(conf->use, prev->use, NULL);

    if (ngx_http_dynroute_balancer_check_location(cf, conf) != NGX_OK) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Everything is parsed: check that each table's targets exist, that each
 * "dynroute NAME" names a table, and that the named locations a table jumps
 * to exist in every server that uses it.  Fail closed: an unknown upstream
 * would otherwise be resolved through DNS at request time.
 */

static ngx_int_t
ngx_http_dynroute_check_upstreams(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, ngx_http_dynroute_table_t *table)
    noexcept
{
    const char                  *why;
    ngx_http_dynroute_target_t  *t;

    for (auto &rule : table->rules) {
        if (rule.named) {
            continue;
        }

        try {
            t = ngx_http_dynroute_target_resolve(dmcf,
                    ngx_http_dynroute_view(rule.target), &why);

        } catch (...) {
            (void) ngx_http_dynroute_conf_caught(cf, "dynroute");
            return NGX_ERROR;
        }

        if (t == NULL && why) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "upstream \"%V\" in dynroute table \"%V\" %s, "
                          "in %s:%ui", &rule.target, &table->name, why,
                          rule.file, rule.line);
            return NGX_ERROR;
        }

        if (t == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown upstream \"%V\" in dynroute table \"%V\": "
                          "a target must be an upstream{} block, a "
                          "dynroute_rollout or a named location in %s:%ui",
                          &rule.target, &table->name, rule.file, rule.line);
            return NGX_ERROR;
        }

        rule.rollout = t->rollout;
        rule.uscf = t->uscf;
    }

    return NGX_OK;
}


static ngx_http_core_loc_conf_t *
ngx_http_dynroute_named_location(ngx_http_core_srv_conf_t *cscf,
    const ngx_str_t &name) noexcept
{
    ngx_http_core_loc_conf_t  **clcfp;

    for (clcfp = cscf->named_locations; clcfp && *clcfp; clcfp++) {
        if (ngx_http_dynroute_eq((*clcfp)->name, name)) {
            return *clcfp;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_dynroute_check_use(ngx_conf_t *cf, ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_dynroute_use_t *use) noexcept
{
    use->table = ngx_http_dynroute_find_named<ngx_http_dynroute_table_t>(
                     dmcf->tables, use->name);

    if (use->table == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "unknown dynroute table \"%V\" in %s:%ui",
                      &use->name, use->file, use->line);
        return NGX_ERROR;
    }

    for (const auto &rule : use->table->rules) {
        if (!rule.named) {
            continue;
        }

        if (ngx_http_dynroute_named_location(use->cscf, rule.target) == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown named location \"%V\" in dynroute table "
                          "\"%V\" (%s:%ui): the server using the table in "
                          "%s:%ui has no such location",
                          &rule.target, &use->table->name, rule.file,
                          rule.line, use->file, use->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A request jumps to a named location once.  Where the configuration
 * proves that a second jump would be needed, refuse it: the table's "ip"
 * rule sends IP hosts to a named location that routes with another table
 * whose "ip" rule sends them to yet another named location (two tables
 * jumping to each other's locations are the simplest case).  Other rules
 * cannot be proven to meet the same hosts; at run time such a request is
 * served by the first named location (see ngx_http_dynroute_no_upstream).
 */

static ngx_int_t
ngx_http_dynroute_check_jumps(ngx_conf_t *cf, ngx_http_dynroute_use_t *use)
    noexcept
{
    dynroute::RuleId               id;
    ngx_http_dynroute_rule_t      *rule, *next_rule;
    ngx_http_dynroute_table_t     *table, *next;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_dynroute_loc_conf_t  *dlcf;

    table = use->table;
    id = table->core.ip_rule();

    if (id == dynroute::no_rule || !table->rules[id].named) {
        return NGX_OK;
    }

    rule = &table->rules[id];
    clcf = ngx_http_dynroute_named_location(use->cscf, rule->target);

    dlcf = static_cast<ngx_http_dynroute_loc_conf_t *>(
               clcf->loc_conf[ngx_http_dynroute_module.ctx_index]);

    if (dlcf->use == NULL || dlcf->health || dlcf->use->table == table) {
        return NGX_OK;
    }

    next = dlcf->use->table;
    id = next->core.ip_rule();

    if (id == dynroute::no_rule || !next->rules[id].named) {
        return NGX_OK;
    }

    next_rule = &next->rules[id];

    if (ngx_http_dynroute_eq(next_rule->target, rule->target)) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "dynroute table \"%V\" (used in %s:%ui) sends IP hosts to "
                  "the named location \"%V\", but it runs in \"%V\", where "
                  "table \"%V\" (%s:%ui) sends them: a request jumps to a "
                  "named location only once",
                  &next->name, dlcf->use->file, dlcf->use->line,
                  &next_rule->target, &rule->target, &table->name,
                  rule->file, rule->line);

    return NGX_ERROR;
}


/*
 * The precontent handler acts only where a table can jump to a named
 * location, answer 421 (no default), or set named captures that other
 * directives may read before the upstream is chosen.  Otherwise the
 * decision is made by whatever first needs it ($dynroute_*, the balancer),
 * with the same result, and the handler is not registered at all.
 */

static bool
ngx_http_dynroute_needs_handler(ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                  i;
    ngx_http_dynroute_use_t   **up;
    ngx_http_dynroute_table_t  *t;

    up = static_cast<ngx_http_dynroute_use_t **>(dmcf->uses.elts);

    for (i = 0; i < dmcf->uses.nelts; i++) {
        t = up[i]->table;

        if (t->core.default_rule() == dynroute::no_rule) {
            return true;
        }

        for (const auto &rule : t->rules) {
            if (rule.named) {
                return true;
            }
        }

        for (const auto &c : t->captures) {
            if (!c.empty()) {
                return true;
            }
        }
    }

    return false;
}


/*
 * The header filter, for rollouts that take overrides or set cookies.  Put
 * on top of the chain once every module's postconfiguration has run: in a
 * static build this module's runs before the header filter module's, which
 * starts the chain afresh.  Either way it runs before nginx's own filters.
 */

static ngx_int_t
ngx_http_dynroute_init_module(ngx_cycle_t *cycle) noexcept
{
    ngx_uint_t                      i;
    ngx_http_dynroute_rollout_t   **rp;
    ngx_http_dynroute_main_conf_t  *dmcf;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_dynroute_module));
    if (dmcf == NULL) {
        return NGX_OK;
    }

    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        if (rp[i]->header.len || rp[i]->cookie.len || rp[i]->sticky.len) {
            ngx_http_dynroute_next_header_filter = ngx_http_top_header_filter;
            ngx_http_top_header_filter = ngx_http_dynroute_header_filter;
            break;
        }
    }

    return NGX_OK;
}


/* a worker of a new configuration adopts the runtime state */

static ngx_int_t
ngx_http_dynroute_init_process(ngx_cycle_t *cycle) noexcept
{
    ngx_http_dynroute_main_conf_t  *dmcf;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_dynroute_module));

    if (dmcf && dmcf->zone) {
        ngx_http_dynroute_live_adopt(dmcf->live, cycle->log);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynroute_init(ngx_conf_t *cf) noexcept
{
    ngx_uint_t                      i;
    ngx_http_handler_pt            *h;
    ngx_http_dynroute_use_t       **up;
    ngx_http_dynroute_table_t     **tp;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_dynroute_rollout_t   **rp;
    ngx_http_dynroute_main_conf_t  *dmcf;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_dynroute_module));

    /* before the stand-in upstream is added: it is no target */

    if (ngx_http_dynroute_targets_init(cf, dmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        if (ngx_http_dynroute_rollout_check(cf, dmcf, rp[i]) != NGX_OK
            || ngx_http_dynroute_rollout_sign(cf, dmcf, rp[i]) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    tp = static_cast<ngx_http_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        if (ngx_http_dynroute_check_upstreams(cf, dmcf, tp[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    up = static_cast<ngx_http_dynroute_use_t **>(dmcf->uses.elts);

    for (i = 0; i < dmcf->uses.nelts; i++) {
        if (ngx_http_dynroute_check_use(cf, dmcf, up[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < dmcf->uses.nelts; i++) {
        if (ngx_http_dynroute_check_jumps(cf, up[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_dynroute_live_init(cf, dmcf) != NGX_OK
        || ngx_http_dynroute_api_check(cf, dmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_dynroute_add_none(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_dynroute_balancer_check(cf, dmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    cmcf = static_cast<ngx_http_core_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));

    if (dmcf->zone && dmcf->metrics != NGX_HTTP_DYNROUTE_METRICS_OFF
        && (dmcf->tables.nelts || dmcf->rollouts.nelts))
    {
        h = static_cast<ngx_http_handler_pt *>(
                ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers));
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = ngx_http_dynroute_log_handler;
    }

    if (!ngx_http_dynroute_needs_handler(dmcf)) {
        return NGX_OK;
    }

    h = static_cast<ngx_http_handler_pt *>(
            ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers));
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_dynroute_handler;

    return NGX_OK;
}
